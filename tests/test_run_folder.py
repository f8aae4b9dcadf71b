"""The run folder: a resume checks its config, writes are atomic, a full disk is one line, and
the command line's own checks (--stage, TensorFlow's start-up noise).

Runs go through `train.main` in this process on the tiny config (tests/helpers/tiny.py).
"""

import errno
import json
import os
import subprocess
import sys

import pytest

from helpers import tiny
from tfmm import atomic_write


def _train_main(arguments, capsys):
    """`python train.py ARGUMENTS` in this process: (exit code, stderr lines)."""
    import train  # the repository root is on sys.path (conftest.py)

    capsys.readouterr()
    code = train.main(arguments)
    return code, capsys.readouterr().err.splitlines()


def _errors(stderr_lines):
    return [line for line in stderr_lines if line.startswith("error:")]


def _history(run_dir):
    with open(os.path.join(run_dir, "history.json")) as handle:
        return json.load(handle)


def _leftovers(run_dir):
    return [os.path.join(folder, name) for folder, folders, files in os.walk(run_dir)
            for name in folders + files if atomic_write.PARTIAL_MARK in name]


# ------------------------------------------------------------------------------------------------
# A resume checks its config (defect 4).

def test_resume_with_another_learning_rate_stops_unless_allowed(tiny_config, capsys):
    config, run_dir = tiny_config(modalities=("audio",), epochs=1, dropout_masks="keras")
    code, stderr = _train_main([config], capsys)
    assert code == 0, stderr
    history = _history(run_dir)

    # A computation-neutral change resumes (the finished run trains zero steps).
    code, stderr = _train_main([config, "--set", "training.checkpoint_every_steps=5"], capsys)
    assert code == 0, stderr
    saved = open(os.path.join(run_dir, "config.json")).read()

    code, stderr = _train_main([config, "--set", "training.learning_rate=0.01"], capsys)
    assert code == 2, stderr
    assert _errors(stderr) == stderr and len(stderr) == 1, stderr
    assert "training.learning_rate 0.003 -> 0.01" in stderr[0]
    assert "--run-dir" in stderr[0] and "--allow-config-change" in stderr[0]
    assert json.loads(open(os.path.join(run_dir, "config.json")).read()) == json.loads(saved)

    code, stderr = _train_main([config, "--set", "training.learning_rate=0.01",
                                "--allow-config-change"], capsys)
    assert code == 0, stderr
    assert json.load(open(os.path.join(run_dir, "config.json")))["training"][
        "learning_rate"] == 0.01
    changes = json.load(open(os.path.join(run_dir, "config_changes.json")))
    assert changes == [{"training.learning_rate": {"before": 0.003, "after": 0.01}}]
    assert _history(run_dir) == history  # resumed from the finished checkpoint


def test_changed_keys_ignores_only_computation_neutral_fields():
    from tfmm.config import Config
    from tfmm.training.resume_check import COMPUTATION_NEUTRAL_KEYS, _flatten, changed_keys

    before, after = Config(), Config()
    after.training.epochs = 20
    after.training.export = False
    after.data.modalities = ("text",)
    changed = changed_keys(_flatten(before.to_dict()), _flatten(after.to_dict()))
    assert changed == ["data.modalities", "training.epochs", "training.export"]
    assert [key for key in changed if key not in COMPUTATION_NEUTRAL_KEYS] == [
        "data.modalities", "training.epochs"]


# ------------------------------------------------------------------------------------------------
# Writes a crash cannot leave half-done (defect 5).

def test_atomic_file_write_keeps_the_old_content_when_interrupted(tmp_path):
    path = str(tmp_path / "report.json")
    atomic_write.write_json(path, {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_write.atomic_path(path) as partial:
            with open(partial, "w") as handle:
                handle.write('{"version": ')  # a crash in the middle of the write
            raise RuntimeError("killed")
    assert json.load(open(path)) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]
    atomic_write.write_json(path, {"version": 2})
    assert json.load(open(path)) == {"version": 2}
    assert os.listdir(tmp_path) == ["report.json"]


def test_atomic_directory_publishes_a_version_only_when_complete(tmp_path):
    version = str(tmp_path / "export" / "1")
    os.makedirs(os.path.dirname(version))
    with pytest.raises(RuntimeError):
        with atomic_write.atomic_directory(version) as partial:
            os.makedirs(partial)
            open(os.path.join(partial, "saved_model.pb"), "wb").write(b"half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path / "export") == []  # TF Serving sees no version at all
    for content in (b"first", b"second"):
        with atomic_write.atomic_directory(version) as partial:
            assert not os.path.basename(partial).isdigit()  # TF Serving ignores it meanwhile
            os.makedirs(partial)
            open(os.path.join(partial, "saved_model.pb"), "wb").write(content)
        assert os.listdir(tmp_path / "export") == ["1"]
        assert open(os.path.join(version, "saved_model.pb"), "rb").read() == content


def test_full_disk_ends_with_one_line_and_the_run_resumes(tiny_config, tiny_manifest, capsys,
                                                           monkeypatch):
    config, run_dir = tiny_config(modalities=("audio",), data={"test_manifest": tiny_manifest},
                                  epochs=1, dropout_masks="keras")
    real_write = atomic_write._write

    def write_until_full(path, data):  # the disk fills up while the test report is written
        if "test_report" in os.path.basename(path):
            with open(path, "wb") as handle:
                handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real_write(path, data)

    monkeypatch.setattr(atomic_write, "_write", write_until_full)
    code, stderr = _train_main([config], capsys)
    report = os.path.join(run_dir, "test_report.json")
    assert code == 2, stderr
    assert stderr == [f"error: {report}: no space left on device"]
    assert not os.path.exists(report) and not _leftovers(run_dir)
    history = _history(run_dir)

    monkeypatch.setattr(atomic_write, "_write", real_write)  # space freed: run again
    code, stderr = _train_main([config], capsys)
    assert code == 0, stderr
    assert json.load(open(report))["num_examples"] == 32
    assert _history(run_dir) == history  # resumed, not retrained


def test_disk_full_from_tensorflow_is_recognised():
    import tensorflow as tf

    error = tf.errors.ResourceExhaustedError(None, None, "x; No space left on device")
    assert atomic_write.is_disk_full(error)
    assert atomic_write.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not atomic_write.is_disk_full(OSError(errno.EACCES, "Permission denied"))


# ------------------------------------------------------------------------------------------------
# The command line (defect 7).

def test_stage_that_no_stage_has_is_an_error_listing_the_stages(tmp_path, capsys):
    path = tiny.write_config(tmp_path / "recipe.py",
                             [{"name": "encoder", "data": {"train_manifest": "a.jsonl"}},
                              {"name": "fused", "data": {"train_manifest": "a.jsonl"}}])
    code, stderr = _train_main([str(path), "--stage", "fusd"], capsys)
    assert code == 2
    assert stderr == [f"error: {path}: --stage fusd names no stage; the stages are "
                      "encoder, fused"]


def test_stage_overrides_are_checked_on_the_chosen_stages_only(tmp_path):
    """DP-SGD refuses a trainable ResNet50 (BatchNorm): `--stage fused --set dp...` must not
    fail on the encoder stage that does not run."""
    from tfmm.config import ConfigError, load_stages

    path = tiny.write_config(tmp_path / "recipe.py", [
        {"name": "encoder", "data": {"train_manifest": "a.jsonl", "modalities": ["image"]}},
        {"name": "fused", "data": {"train_manifest": "a.jsonl", "modalities": ["image"]},
         "model": {"freeze_image_encoder": True}}])
    overrides = ["training.dp_l2_clip=1.0"]
    with pytest.raises(ConfigError, match="cannot train the ResNet50 image encoder"):
        load_stages(str(path), overrides)
    stages = load_stages(str(path), overrides, only=["fused"])
    assert [name for name, _ in stages] == ["fused"]
    assert stages[0][1].training.dp_l2_clip == 1.0


NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796149532.037608    5469 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results.",
    "I0000 00:00:1796149532.037903    5469 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796149542.500193    5469 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796149410.626739    3697 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.",
]


def run_after_importing_train(lines: str, timeout: int = 60, **env):
    """Runs `lines` in a fresh Python that has imported train.py (as `train`); `env` as
    `tiny.subprocess_env`'s."""
    script = "import os, sys\nsys.argv = ['train.py']\nimport train\n" + lines
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tiny.REPO_ROOT, timeout=timeout, env=tiny.subprocess_env(**env))


def test_native_start_up_noise_is_filtered_and_everything_else_kept():
    """What train.py and evaluate.py install before TensorFlow loads, on descriptor 2."""
    result = run_after_importing_train(
        "train.native_log_filter().filter_native_stderr()\n"
        f"for line in {NOISE_LINES!r}:\n"
        "    os.write(2, (line + '\\n').encode())\n"
        "os.write(2, b'W0000 00:00:1796149849.774226    8223 assert_op.cc:39] Ignoring Assert\\n')\n"
        "os.write(2, b'E0000 00:00:1796149849.774226    8223 x.cc:9] a native error\\n')\n"
        "print('error: x.json:1: a tfmm error', file=sys.stderr)\n"
        "raise SystemExit(3)\n")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "E0000 00:00:1796149849.774226    8223 x.cc:9] a native error",
                                          "error: x.json:1: a tfmm error"]


def test_after_start_up_native_lines_reach_the_terminal_directly():
    """The filter covers TensorFlow's start-up only: the start-up noise is gone, and the last line
    of a process that aborts afterwards (no thread left to forward it) still reaches stderr."""
    result = run_after_importing_train(
        "train.prepare_tensorflow()\n"
        "os.write(1, os.environ['TF_ENABLE_ONEDNN_OPTS'].encode())\n"
        "os.write(2, b'F0000 00:00:1796149849.774226    8223 x.cc:9] a fatal native error\\n')\n"
        "os.abort()\n", timeout=120, TF_ENABLE_ONEDNN_OPTS=None)
    assert result.returncode != 0
    assert result.stdout == "1"  # oneDNN's kernels on (no TF_ENABLE_ONEDNN_OPTS was set)
    assert "a fatal native error" in result.stderr
    assert not [line for line in result.stderr.splitlines()
                if "cuInit" in line or "oneDNN custom operations" in line], result.stderr
