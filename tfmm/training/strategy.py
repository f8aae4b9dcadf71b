"""Choosing the tf.distribute strategy, mixed precision and XLA for a run."""

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
            GPU), "tpu" (TPUStrategy on `tpu_address`, or Colab/Cloud auto-detection when empty),
            "multiworker" (MultiWorkerMirroredStrategy, cluster from the TF_CONFIG variable).
        tpu_address: gRPC address of the TPU, for "tpu".
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
                                "(cluster and task); see README 'Several machines'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            raise StrategyError(f"no TPU found (address {tpu_address or 'auto-detect'!r}): "
                                f"{error}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise StrategyError(f"unknown strategy {name!r}")


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


def set_mixed_precision(mode: str):
    """Sets the global Keras dtype policy: "none" (float32), "bfloat16" or "float16"."""
    policy = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[mode]
    keras.mixed_precision.set_global_policy(policy)


def resolve_jit_compile(setting: str, strategy: tf.distribute.Strategy) -> bool:
    """XLA for the gradient computation: "auto" turns it on for a single replica off TPU.

    Measured (DESIGN.md): MirroredStrategy over logical CPU devices fails with XLA, and TPU
    compiles the whole step anyway, so "auto" leaves those to plain graph mode.
    """
    setting = str(setting).lower()
    if setting in ("true", "false"):
        return setting == "true"
    is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    return strategy.num_replicas_in_sync == 1 and not is_tpu
