"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1, each a Python process of its own."""

import json
import subprocess
import sys
import time

from helpers import tiny


def run_two_workers(arguments_of, timeout: float, env_of=None) -> list:
    """Starts two loopback workers and waits for both.

    Args:
        arguments_of: function worker index -> the arguments after `python` (script, flags).
        timeout: seconds for both together; a worker still running then is killed.
        env_of: optional function worker index -> extra environment variables.

    Returns:
        [(exit code, combined stdout and stderr)] of worker 0 and worker 1.
    """
    cluster = {"worker": [f"127.0.0.1:{tiny.free_port()}" for _ in range(2)]}
    processes = []
    try:
        for index in range(2):
            env = tiny.subprocess_env(
                TF_CONFIG=json.dumps({"cluster": cluster,
                                      "task": {"type": "worker", "index": index}}),
                **(env_of(index) if env_of else {}))
            processes.append(subprocess.Popen(
                [sys.executable, *arguments_of(index)], cwd=tiny.REPO_ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.time() + timeout
        outputs = [process.communicate(timeout=max(1.0, deadline - time.time()))[0]
                   for process in processes]
        return [(process.returncode, output) for process, output in zip(processes, outputs)]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
