"""A whole run, top to bottom: config -> data -> model -> training loop -> evaluation -> export."""

import os
import shutil

import keras
import tensorflow as tf

from tfmm.atomic_write import atomic_directory, atomic_path, write_json
from tfmm.config import ConfigError, save_config
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.errors import UserError
from tfmm.evaluation.report import evaluate_pipeline, headline
from tfmm.export.serving_model import export_serving_model
from tfmm.models.encoder_transfer import load_encoder_weights
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.training.feature_cache import cache_frozen_features
from tfmm.training.resume_check import check_resume_config
from tfmm.training.strategy import (create_strategy, describe_strategy, is_chief,
                                    set_mixed_precision, synchronize_batch_norm)
from tfmm.tasks import get_task
from tfmm.training.trainer import Trainer

MODEL_FILE = "model.keras"
EXPORT_DIR = "export/1"
RUN_INFO_FILE = "run_info.json"


class RunDirError(UserError):
    """A run folder that cannot be written."""


def check_run_dir(run_dir: str, minimum_free_bytes: int = 500 * 2**20):
    """Fails now, not after an hour of training, when the run folder is unwritable or full."""
    try:
        tf.io.gfile.makedirs(run_dir)
        probe = os.path.join(run_dir, ".write_probe")
        with tf.io.gfile.GFile(probe, "w") as handle:
            handle.write("ok")
        tf.io.gfile.remove(probe)
    except (OSError, tf.errors.OpError) as error:
        raise RunDirError(f"run folder {run_dir} is not writable: {error}") from None
    if "://" not in run_dir:
        free = shutil.disk_usage(run_dir).free
        if free < minimum_free_bytes:
            raise RunDirError(f"run folder {run_dir} has {free / 2**20:.0f} MiB free; checkpoints "
                              f"and exports need at least {minimum_free_bytes / 2**20:.0f} MiB")


def prepare_data(config, log=print):
    """Writes a bundled data set when the config names one and its manifests are missing.

    The rows are drawn with `data.seed`, never `training.seed`: a run's seed does not touch
    written data. A data set already written with another `data.seed` is kept and the run stops
    (`tfmm.data.av_digits.DataSeedError`).
    """
    data = config.data
    if not data.builder:
        return
    if data.builder != "av_digits":
        raise ConfigError(f"`data.builder` must be '' or 'av_digits'. Received: {data.builder!r}")
    from tfmm.data.av_digits import build_av_digits

    out_dir = os.path.dirname(data.train_manifest) or "."
    if not (tf.io.gfile.exists(data.train_manifest) and tf.io.gfile.exists(data.test_manifest)):
        log(f"writing the AV-digits QA data set to {out_dir}")
    build_av_digits(out_dir, seed=data.seed)


def read_manifests(config, log=print):
    """Validates every manifest the config names, before any training starts."""
    data = config.data
    train = read_manifest_for_config(data.train_manifest, data)
    log(train.summary())
    labels = train.labels
    others = {}
    for name in ("validation_manifest", "test_manifest"):
        path = getattr(data, name)
        if path:
            others[name] = read_manifest_for_config(path, data, labels=labels)
            log(others[name].summary())
    return train, others.get("validation_manifest"), others.get("test_manifest")


def start_run(config, log=print):
    """What every run does first: seed, a writable run folder, mixed precision, the strategy.

    Returns:
        (strategy, chief): the `tf.distribute.Strategy` and whether this worker writes files.

    Raises:
        RunDirError: an unwritable or full run folder; ConfigError: a global batch the
        replicas cannot share.
    """
    training = config.training
    keras.utils.set_random_seed(training.seed)
    chief = is_chief()
    if chief:
        check_run_dir(training.run_dir)
    set_mixed_precision(training.mixed_precision)
    strategy = create_strategy(training.strategy, training.tpu)
    replicas = strategy.num_replicas_in_sync
    log(f"strategy {describe_strategy(strategy)}; global batch "
        f"{config.data.batch_size} = {replicas} x {config.data.batch_size // replicas} per "
        f"replica; peak learning rate {training.learning_rate} for the global batch (not scaled "
        f"with the replica count); mixed precision {training.mixed_precision}")
    if config.data.batch_size % replicas:
        raise ConfigError(f"`data.batch_size` ({config.data.batch_size}) must be divisible by the "
                          f"number of replicas ({replicas})")
    return strategy, chief


def count_steps_per_epoch(config, pipeline, what: str) -> int:
    """`training.steps_per_epoch`, or the full batches the pipeline's examples fill."""
    steps = config.training.steps_per_epoch or pipeline.steps_per_epoch(
        config.data.batch_size, drop_remainder=True)
    if steps < 1:
        raise ConfigError(f"{what}: {pipeline.num_examples} examples do not fill one batch of "
                          f"{config.data.batch_size}; lower data.batch_size")
    return steps


def write_run_info(run_dir: str, info: dict):
    """run_info.json: what evaluate.py needs to know about a run (labels, task, sizes)."""
    write_json(os.path.join(run_dir, RUN_INFO_FILE), info)


def save_keras_model(model, run_dir: str, log=print):
    """The trained model as run_dir/model.keras (reloads without custom_objects)."""
    path = os.path.join(run_dir, MODEL_FILE)
    with atomic_path(path) as partial:
        model.save(partial)
    log(f"saved {path}")


def run_training(config, log=print, allow_config_change: bool = False) -> dict:
    """Trains, evaluates on the test manifest and exports, as the config says.

    Args:
        config: a validated `tfmm.config.Config`.
        log: function taking one line of text.
        allow_config_change: resume a run folder whose saved config differs in fields that
            change the computation (tfmm/training/resume_check.py); otherwise that stops.

    Returns:
        {"run_dir", "history", "test_report" (or None), "export_dir" (or None), "model" (the
        trained keras.Model), "replicas" (replicas in sync)}.
    """
    training = config.training
    run_dir = training.run_dir
    strategy, chief = start_run(config, log)
    replicas = strategy.num_replicas_in_sync
    check_resume_config(config, run_dir, allow_config_change, chief, log)
    if chief:
        save_config(config, os.path.join(run_dir, "config.json"))

    # Data: validate every row first, then the pipelines.
    if chief:
        prepare_data(config, log)
    train_manifest, validation_manifest, test_manifest = read_manifests(config, log)
    task = config.data.task
    labels = train_manifest.labels
    num_outputs = get_task(task).num_outputs(labels, config.data.num_targets)
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    train_pipeline = ExamplePipeline(train_manifest, preprocessor, task, config.data.cache,
                                     text_length_buckets=config.data.text_length_buckets)
    validation_pipeline = (ExamplePipeline(validation_manifest, preprocessor, task, False)
                           if validation_manifest else None)
    # Checked before any model is built: a data set smaller than one batch fails now.
    steps_per_epoch = count_steps_per_epoch(config, train_pipeline, train_manifest.path)

    # Model and training loop.
    with strategy.scope():
        model = build_multimodal_model(config, num_outputs)
        if config.model.init_encoders_from:
            load_encoder_weights(model, config.model.init_encoders_from, log)
    if replicas > 1:
        # BatchNorm statistics over the global batch, as on one replica (docs/distributed.md).
        synchronized = synchronize_batch_norm(model)
        log(f"{synchronized} BatchNormalization layers compute their statistics across the "
            f"{replicas} replicas")
    trained_model = model
    if training.cache_frozen_features:
        # Fusion and head train on features the frozen encoders compute once; `model` shares
        # the trained weights and is what gets saved, evaluated and exported below.
        with strategy.scope():
            trained_model, train_pipeline, validation_pipeline = cache_frozen_features(
                model, config, train_pipeline, validation_pipeline, log)
        # Cached features are not length-bucketed: the count may differ from the one above.
        steps_per_epoch = count_steps_per_epoch(config, train_pipeline, train_manifest.path)
    if chief:
        write_run_info(run_dir, {"labels": list(labels), "task": task,
                                 "train_examples": train_pipeline.num_examples,
                                 "steps_per_epoch": steps_per_epoch})
    trainer = Trainer(trained_model, config.data.task, training, strategy, steps_per_epoch, run_dir,
                      config.data.batch_size, config.data.shuffle_buffer, log=log)
    history = trainer.fit(train_pipeline, validation_pipeline)
    result = {"run_dir": run_dir, "history": history, "test_report": None, "export_dir": None,
              "model": model, "replicas": replicas}
    if not chief:
        return result
    save_keras_model(model, run_dir, log)

    # Evaluation and export.
    if test_manifest is not None:
        test_pipeline = ExamplePipeline(test_manifest, preprocessor, task, cache=False)
        report = evaluate_pipeline(model, test_pipeline, task, labels, run_dir,
                                   config.data.batch_size, history=history,
                                   group_field=config.data.report_group_field)
        log(f"test: {headline(report)}")
        result["test_report"] = report
    if training.export:
        export_dir = os.path.join(run_dir, EXPORT_DIR)
        preprocessor_for_export = MultimodalPreprocessor.from_data_config(
            config.data, config.model.text_preset)
        # Written beside and renamed: TF Serving never sees a half-written version.
        with atomic_directory(export_dir) as partial_dir:
            export_serving_model(model, preprocessor_for_export, task, labels, partial_dir)
        log(f"exported the serving SavedModel to {export_dir}")
        result["export_dir"] = export_dir
    return result
