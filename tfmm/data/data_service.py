"""The training input pipeline on tf.data service workers (`data.service`), and their launch.

With `data.service = {"dispatcher": "grpc://host:5050"}` (and `data.train_records`), every
training epoch's pipeline of shards (read, decode, shuffle, batch) runs on the service's workers,
not in the trainer's process: `tf.data.experimental.service.distribute` sends the pipeline to the
dispatcher, the workers run it, and the trainer receives finished batches. Evaluation, validation
and the inference check stay local (their order must follow the rows).

Processing modes (`processing_mode`):
    "distributed_epoch" (default): the shards are handed out to the workers as they ask for
        them, so each shard of an epoch is read by one worker (tf.data's dynamic sharding).
    "parallel_epochs": every worker runs the whole pipeline (the same seeded order each): for
        input that is not split by shard; each example then comes once per worker.
Batches arrive in the order the workers finish them, so a resumed run does not replay its epoch
exactly, as it does without the service.

Launch (each command runs until stopped; the workers must reach the shards by the same path,
e.g. `gs://` or a shared folder):

    python -m tfmm.data_service dispatcher --port 5050
    python -m tfmm.data_service worker --dispatcher dispatcher-host:5050 --port 5051
    python train.py config.py --set 'data.train_records=gs://bucket/records/train-*' \\
        --set 'data.service={"dispatcher": "grpc://dispatcher-host:5050"}'
"""

import argparse
import dataclasses
import json
import sys

PROCESSING_MODES = ("distributed_epoch", "parallel_epochs")


@dataclasses.dataclass(frozen=True)
class DataService:
    """`data.service`: where the training input pipeline runs.

    Attributes:
        dispatcher: address of the dispatcher, "grpc://host:port".
        processing_mode: "distributed_epoch" or "parallel_epochs" (module docstring).
        job_name: "" (a job of its own for every epoch of this trainer) or a name several
            trainers share, so that they read one job's batches between them.
    """

    dispatcher: str
    processing_mode: str = "distributed_epoch"
    job_name: str = ""


def coerce_service(value, default, key: str, source: str):
    """A `data.service` value from a config file or `--set`: None / "" / "none" (off), a dict of
    `DataService` fields, its JSON text, or a bare dispatcher address. Returns a dict or None."""
    from tfmm.config import ConfigError

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("{") else {"dispatcher": text}
    fields = {field.name for field in dataclasses.fields(DataService)}
    if not isinstance(value, dict) or not value.get("dispatcher") or set(value) - fields:
        raise ConfigError(f"{source}: `{key}` must be a dict with \"dispatcher\" "
                          f"(\"grpc://host:port\") and optionally {sorted(fields - {'dispatcher'})}"
                          f". Received: {value!r}")
    if value.get("processing_mode", PROCESSING_MODES[0]) not in PROCESSING_MODES:
        raise ConfigError(f"{source}: `{key}.processing_mode` must be one of "
                          f"{list(PROCESSING_MODES)}. Received: {value['processing_mode']!r}")
    return dataclasses.asdict(DataService(**value))


def distribute(dataset, service: dict):
    """`dataset` run on the tf.data service `service` (a `coerce_service` dict): the batches
    the service's workers make."""
    import tensorflow as tf

    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=service["processing_mode"], service=service["dispatcher"],
        job_name=service["job_name"] or None))


def start_dispatcher(port: int = 0):
    """A started `tf.data.experimental.service.DispatchServer` (port 0: a free port); its
    `.target` is the address for `data.service`."""
    import tensorflow as tf

    service = tf.data.experimental.service
    return service.DispatchServer(service.DispatcherConfig(port=port))


def start_worker(dispatcher: str, port: int = 0, worker_address: str = ""):
    """A started `WorkerServer` registered with the dispatcher at "host:port"."""
    import tensorflow as tf

    service = tf.data.experimental.service
    options = {"worker_address": worker_address} if worker_address else {}
    return service.WorkerServer(service.WorkerConfig(
        dispatcher_address=dispatcher.replace("grpc://", ""), port=port, **options))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run a tf.data service dispatcher or worker "
                                     "for `data.service` (tfmm.data.data_service).")
    parser.add_argument("role", choices=("dispatcher", "worker"))
    parser.add_argument("--port", type=int, required=True, help="port this server listens on")
    parser.add_argument("--dispatcher", default="",
                        help="worker: the dispatcher's host:port")
    parser.add_argument("--worker-address", default="",
                        help="worker: the host:port the trainers reach it by (default: "
                        "localhost:PORT)")
    arguments = parser.parse_args(argv)
    if arguments.role == "dispatcher":
        server = start_dispatcher(arguments.port)
        print(f"tf.data service dispatcher at {server.target}", flush=True)
    else:
        if not arguments.dispatcher:
            parser.error("a worker needs --dispatcher HOST:PORT")
        server = start_worker(arguments.dispatcher, arguments.port, arguments.worker_address)
        print(f"tf.data service worker on port {arguments.port}, dispatcher "
              f"{arguments.dispatcher}", flush=True)
    server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
