"""A whole run, top to bottom, for every task: config -> data -> model -> training loop ->
evaluation -> export. What differs between tasks comes from the task's recipe (`tfmm.recipes`).
"""

import time

import keras

from tfmm.atomic_write import atomic_directory, write_json
from tfmm.config import ConfigError
from tfmm.recipes import recipe_for
from tfmm.run_folder import RunFolder
from tfmm.training.resume_check import check_resume_config
from tfmm.training.strategy import (create_strategy, describe_strategy, is_chief,
                                    set_mixed_precision)
from tfmm.training.trainer import Trainer


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
        RunFolder(training.run_dir).check_writable()
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


def run_training(config, log=print, allow_config_change: bool = False) -> dict:
    """Trains, evaluates on the held-out data and exports, as the config says.

    Args:
        config: a validated `tfmm.config.Config` (any `data.task`).
        log: function taking one line of text.
        allow_config_change: resume a run folder whose saved config differs in fields that
            change the computation (tfmm/training/resume_check.py); otherwise that stops.

    Returns:
        The same keys for every task: {"run_dir", "task" (the `tfmm.tasks.Task`), "history"
        ({metric: [per epoch]}), "report" (the test or eval report; None without held-out data
        or off the chief), "export_dir" (or None), "model" (the trained keras.Model),
        "replicas" (replicas in sync), "privacy" (DP-SGD's epsilon at delta and its terms,
        `tfmm.training.privacy_accounting.privacy_spent`; None when training.dp_l2_clip is 0),
        "seconds"}. With DP-SGD the report holds the same dict under "privacy".
    """
    started = time.time()
    training = config.training
    folder = RunFolder(training.run_dir)
    recipe = recipe_for(config.data.task)
    strategy, chief = start_run(config, log)
    replicas = strategy.num_replicas_in_sync

    # Data first: every example is validated before a model is built; the recipe may complete
    # the config from the data, so the resume check and the saved config come after.
    data = recipe.load_data(config, chief, log)
    check_resume_config(config, folder.path, allow_config_change, chief, log)
    if chief:
        folder.write_config(config)
    train_pipeline, validation_pipeline, what = recipe.pipelines(config, data, log)
    # Checked before any model is built: a data set smaller than one batch fails now.
    steps_per_epoch = count_steps_per_epoch(config, train_pipeline, what)

    with strategy.scope():
        model = recipe.build_model(config, data, log)
    trained_model, trained_pipeline, validation_pipeline = recipe.prepare_training(
        model, config, train_pipeline, validation_pipeline, strategy, log)
    if trained_pipeline is not train_pipeline:  # e.g. cached features: no length buckets
        steps_per_epoch = count_steps_per_epoch(config, trained_pipeline, what)
    if chief:
        folder.write_run_info({"task": recipe.task.name, "labels": [],
                               **recipe.run_info(config, data),
                               "train_examples": trained_pipeline.num_examples,
                               "steps_per_epoch": steps_per_epoch})
    trainer = Trainer(trained_model, recipe.task, training, strategy, steps_per_epoch,
                      folder.path, config.data.batch_size, config.data.shuffle_buffer, log=log)
    history = trainer.fit(trained_pipeline, validation_pipeline)
    result = {"run_dir": folder.path, "task": recipe.task, "history": history, "report": None,
              "export_dir": None, "model": model, "replicas": replicas, "seconds": None,
              "privacy": trainer.private.spent(trained_pipeline.num_examples)
              if trainer.private else None}
    if result["privacy"]:
        log(f"privacy spent: epsilon {result['privacy']['epsilon']} at delta "
            f"{result['privacy']['delta']:.3g} after {result['privacy']['steps']} steps")
    if chief:
        log(f"saved {folder.save_model(model)}")
        result["report"] = recipe.evaluate(model, config, data, folder.path, history, log)
        if result["report"] is not None and result["privacy"]:
            result["report"]["privacy"] = result["privacy"]
            write_json(folder.report(recipe.report_name), result["report"])
        if result["report"] is not None:
            log(f"{recipe.report_name}: {recipe.task.headline(result['report'])}")
        if training.export:
            # Written beside and renamed: TF Serving never sees a half-written version.
            with atomic_directory(folder.export_version) as partial_dir:
                recipe.export(model, config, data, partial_dir)
            log(f"exported {recipe.export_description} to {folder.export_version}")
            result["export_dir"] = folder.export_version
    result["seconds"] = round(time.time() - started, 1)
    log(f"done in {result['seconds']:.0f} s")
    return result
