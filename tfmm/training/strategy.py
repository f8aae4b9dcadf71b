"""Choosing the tf.distribute strategy, mixed precision and XLA for a run."""

import glob
import json
import os

import keras
import tensorflow as tf
from tfmm.errors import UserError


class StrategyError(UserError, RuntimeError):
    """A strategy that cannot be set up on this machine."""


def create_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
    """Builds the tf.distribute strategy the config names.

    Args:
        name: "auto" (MirroredStrategy when GPUs are visible, else the default strategy),
            "default", "mirrored" (all local GPUs, or all logical CPU devices when there is no
            GPU), "tpu" (TPUStrategy on `tpu_address`, or auto-detection when empty: see
            `resolve_tpu_address`), "multiworker" (MultiWorkerMirroredStrategy, cluster from the
            TF_CONFIG variable).
        tpu_address: for "tpu": a TPU name, "grpc://host:port", "local" (TPU VM), or "".
    """
    if name == "auto":
        name = "mirrored" if tf.config.list_physical_devices("GPU") else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise StrategyError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                                "(cluster and task); see docs/distributed.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        tpu_address = resolve_tpu_address(tpu_address)
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, OSError, tf.errors.OpError) as error:
            # OSError: the Cloud TPU API / metadata server cannot be reached for a TPU name.
            raise StrategyError(f"no TPU found (address {tpu_address or 'auto-detect'!r}): "
                                f"{error}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise StrategyError(f"unknown strategy {name!r}")


def resolve_tpu_address(address: str = "", environ=None, device_paths=None):
    """The `tpu` argument of TPUClusterResolver for a configured address ("" = auto-detect).

    TensorFlow's own auto-detection only reads TPU_NAME / TPU_CONFIG (Cloud TPU nodes, GKE).
    Colab's TPU runtimes and Cloud TPU VMs set neither, so an empty address also checks, in
    order: COLAB_TPU_ADDR (the older Colab TPU-node runtime: "grpc://" + its value), then TPU
    chips attached to this machine (/dev/accel* or /dev/vfio/<n>: "local").

    Args:
        address: the configured `training.tpu`; returned as is when not empty.
        environ: environment variables (os.environ by default).
        device_paths: paths of TPU devices on this machine (found with glob by default).

    Returns:
        The address, "grpc://...", "local", or None (TensorFlow's own auto-detection).
    """
    if address:
        return address
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS",
                                          "TPU_CONFIG")):
        return None
    if environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + environ["COLAB_TPU_ADDR"]
    if device_paths is None:
        device_paths = glob.glob("/dev/accel*") + [
            path for path in glob.glob("/dev/vfio/*") if os.path.basename(path).isdigit()]
    return "local" if device_paths else None


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """A readable name for log lines, e.g. "default (one device)", "MirroredStrategy over 2
    devices", "MultiWorkerMirroredStrategy over 2 workers (4 replicas)", "TPUStrategy over 8
    cores" (never a private class such as `_DefaultDistributionStrategy`)."""
    replicas = strategy.num_replicas_in_sync
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        workers = strategy.extended._num_workers  # no public accessor
        return (f"MultiWorkerMirroredStrategy over {workers} worker{'s' * (workers != 1)} "
                f"({replicas} replica{'s' * (replicas != 1)})")
    for public in (tf.distribute.MirroredStrategy, tf.distribute.TPUStrategy,
                   tf.distribute.OneDeviceStrategy):
        if isinstance(strategy, public):
            unit = "cores" if public is tf.distribute.TPUStrategy else "devices"
            if replicas == 1:
                unit = unit[:-1]
            return f"{public.__name__} over {replicas} {unit}"
    if not tf.distribute.has_strategy() or strategy is tf.distribute.get_strategy():
        return "default (one device)"
    return f"{type(strategy).__name__.lstrip('_')} with {replicas} replica(s)"


def is_chief() -> bool:
    """True on the worker that writes checkpoints, models and reports (always, off-cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    task_type = task.get("type")
    if task_type in (None, "chief"):
        return True
    if task_type == "worker":
        has_chief = "chief" in config.get("cluster", {})
        return not has_chief and int(task.get("index", 0)) == 0
    return False


def synchronize_batch_norm(model: keras.Model) -> int:
    """Makes every BatchNormalization layer of `model` (nested models included) compute its batch
    statistics over all replicas (`synchronized=True`), so N replicas normalise with the same
    mean and variance as one replica at the same global batch. Costs three small all-reduces per
    layer and training step; inference (moving statistics) is unchanged.

    Returns:
        The number of layers changed.
    """
    changed, stack, seen = 0, [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
        stack.extend(getattr(layer, "layers", ()))
    return changed


def set_mixed_precision(mode: str):
    """Sets the global Keras dtype policy: "none" (float32), "bfloat16" or "float16"."""
    policy = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[mode]
    keras.mixed_precision.set_global_policy(policy)


def resolve_jit_compile(setting: str, strategy: tf.distribute.Strategy) -> bool:
    """XLA for the gradient computation: "auto" turns it on for a single replica off TPU.

    Measured (docs/distributed.md, "One machine, several GPUs"): MirroredStrategy over logical
    CPU devices fails with XLA, and TPU compiles the whole step anyway, so "auto" leaves those to
    plain graph mode.
    """
    setting = str(setting).lower()
    if setting in ("true", "false"):
        return setting == "true"
    is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    return strategy.num_replicas_in_sync == 1 and not is_tpu
