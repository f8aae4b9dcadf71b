"""One training loop for every strategy: default, Mirrored, MultiWorkerMirrored and TPU.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so tfmm
owns its step: a `tf.function` around `strategy.run`, gradients from a `GradientTape` (optionally
XLA-compiled), `keras.optimizers.AdamW` applying them. The same step serves a laptop CPU and a
TPU pod. State (model, optimizer, epoch, position in the epoch) lives in a
`tf.train.CheckpointManager` in the run folder, so a killed run resumes where its last checkpoint
was written, replaying the same shuffled order.
"""

import json
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.evaluation.predict import predict_dataset
from tfmm.models.heads.task_losses import SCORE_NAMES, per_example_loss, per_example_score
from tfmm.training.optimizer import build_optimizer
from tfmm.training.strategy import is_chief, resolve_jit_compile


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


class Trainer:
    """Trains a tfmm model on an `ExamplePipeline`.

    Args:
        model: a Keras model built under `strategy.scope()`.
        config: the run's `tfmm.config.Config`.
        strategy: the tf.distribute strategy the model was built under.
        steps_per_epoch: optimizer steps per epoch.
        run_dir: folder for checkpoints, TensorBoard logs and history.
        log: function taking one line of text (print by default).
    """

    def __init__(self, model, config, strategy, steps_per_epoch: int, run_dir: str, log=print):
        self.model = model
        self.config = config
        self.task = config.data.task
        self.strategy = strategy
        self.steps_per_epoch = steps_per_epoch
        self.run_dir = run_dir
        self.log = log
        self.is_chief = is_chief()
        self.jit_compile = resolve_jit_compile(config.training.jit_compile, strategy)
        total_steps = steps_per_epoch * config.training.epochs
        with strategy.scope():
            self.optimizer = build_optimizer(config.training, total_steps)
            self.optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                                             name="step_in_epoch")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer,
                                              epoch=self.epoch, step_in_epoch=self.step_in_epoch)
        # Every worker writes (saving is collective); only the chief's copy is kept.
        checkpoint_dir = (os.path.join(run_dir, "checkpoints") if self.is_chief
                          else tempfile.mkdtemp(prefix="tfmm-worker-checkpoints-"))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, checkpoint_dir, max_to_keep=config.training.keep_checkpoints)
        self.history_path = os.path.join(run_dir, "history.json")
        self.history = self._load_history()
        self._train_step = self._build_train_step()

    # ----------------------------------------------------------------------------------------
    def _build_train_step(self):
        model, optimizer, task = self.model, self.optimizer, self.task
        smoothing = self.config.training.label_smoothing
        variables = model.trainable_variables

        def compute_gradients(features, targets):
            with tf.GradientTape() as tape:
                outputs = model(features, training=True)
                losses = per_example_loss(task, targets, outputs, smoothing)
                loss = tf.nn.compute_average_loss(losses)
                scaled_loss = optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled_loss, variables)
            score = tf.nn.compute_average_loss(per_example_score(task, targets, outputs))
            return gradients, loss, score

        if self.jit_compile:
            compute_gradients = tf.function(compute_gradients, jit_compile=True)

        def replica_step(features, targets):
            gradients, loss, score = compute_gradients(features, targets)
            optimizer.apply_gradients(zip(gradients, variables))
            return loss, score

        @tf.function
        def train_step(batch):
            features, targets = batch
            loss, score = self.strategy.run(replica_step, args=(features, targets))
            reduce = tf.distribute.ReduceOp.SUM
            return (self.strategy.reduce(reduce, loss, axis=None),
                    self.strategy.reduce(reduce, score, axis=None))

        return train_step

    # ----------------------------------------------------------------------------------------
    def restore(self) -> bool:
        """Loads the latest checkpoint of the run folder; True when there was one."""
        latest = self.manager.latest_checkpoint
        if not latest:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        self.log(f"resumed from {latest} (epoch {int(self.epoch.numpy()) + 1}, "
                 f"step {int(self.step_in_epoch.numpy())} of {self.steps_per_epoch})")
        return True

    def save(self):
        global_step = int(self.epoch.numpy()) * self.steps_per_epoch + int(self.step_in_epoch.numpy())
        self.manager.save(checkpoint_number=global_step)

    def fit(self, train_pipeline, validation_pipeline=None):
        """Trains for `config.training.epochs`, resuming from the run folder if it can.

        Args:
            train_pipeline: `tfmm.data.dataset.ExamplePipeline` of the training manifest.
            validation_pipeline: optional pipeline evaluated after each epoch.

        Returns:
            The history: {metric name: [value per epoch]}.
        """
        training = self.config.training
        data = self.config.data
        self.restore()
        score_name = SCORE_NAMES[self.task]
        writer = (tf.summary.create_file_writer(os.path.join(self.run_dir, "logs", "train"))
                  if self.is_chief else tf.summary.create_noop_writer())
        for epoch in range(int(self.epoch.numpy()), training.epochs):
            self.epoch.assign(epoch)
            first_step = int(self.step_in_epoch.numpy())
            dataset = train_pipeline.batches(
                data.batch_size, shuffle=True, seed=training.seed, epoch=epoch,
                shuffle_buffer=data.shuffle_buffer, drop_remainder=True, skip_batches=first_step)
            dataset = dataset.take(self.steps_per_epoch - first_step)
            distributed = self.strategy.experimental_distribute_dataset(dataset)
            progress = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=["lr"],
                                           verbose=1 if self.is_chief else 0)
            if self.is_chief:
                self.log(f"epoch {epoch + 1}/{training.epochs}")
            losses, scores, started = [], [], time.time()
            step = first_step
            for batch in distributed:
                loss, score = self._train_step(batch)
                loss, score = float(loss), float(score)
                step += 1
                global_step = epoch * self.steps_per_epoch + step
                if not np.isfinite(loss):
                    raise TrainingDivergedError(
                        f"loss became {loss} at step {global_step} (epoch {epoch + 1}, batch "
                        f"{step}); the last good checkpoint is {self.manager.latest_checkpoint}. "
                        "Lower training.learning_rate or set training.clip_norm, then rerun to "
                        "resume from it.")
                losses.append(loss)
                scores.append(score)
                learning_rate = float(self.optimizer.learning_rate)
                progress.update(step, [("loss", loss), (score_name, score), ("lr", learning_rate)])
                if step % 10 == 0:
                    with writer.as_default(step=global_step):
                        tf.summary.scalar("loss", loss)
                        tf.summary.scalar(score_name, score)
                        tf.summary.scalar("learning_rate", learning_rate)
                self.step_in_epoch.assign(step)
                if training.checkpoint_every_steps and global_step % training.checkpoint_every_steps == 0:
                    self.save()
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
                      score_name: float(np.mean(scores)) if scores else None,
                      "seconds": round(time.time() - started, 2)}
            if validation_pipeline is not None:
                validation = validation_pipeline.batches(data.batch_size)
                outputs, targets, validation_loss = predict_dataset(self.model, validation,
                                                                    self.task)
                record["val_loss"] = validation_loss
                record["val_" + score_name] = _score(self.task, outputs, targets)
            with writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
                for key, value in record.items():
                    if key not in ("epoch", "seconds") and value is not None:
                        tf.summary.scalar("epoch_" + key, value)
            self._append_history(record)
            if self.is_chief:
                self.log("  " + ", ".join(f"{key} {value:.4f}" if isinstance(value, float)
                                          else f"{key} {value}" for key, value in record.items()))
            self.epoch.assign(epoch + 1)
            self.step_in_epoch.assign(0)
            self.save()
        writer.flush()
        return self.history_by_metric()

    # ----------------------------------------------------------------------------------------
    def _load_history(self):
        if tf.io.gfile.exists(self.history_path):
            with tf.io.gfile.GFile(self.history_path) as handle:
                return json.load(handle)
        return []

    def _append_history(self, record):
        self.history = [entry for entry in self.history if entry["epoch"] < record["epoch"]]
        self.history.append(record)
        if self.is_chief:
            with tf.io.gfile.GFile(self.history_path, "w") as handle:
                json.dump(self.history, handle, indent=1)

    def history_by_metric(self):
        keys = [key for key in (self.history[0] if self.history else {}) if key != "epoch"]
        return {key: [entry.get(key) for entry in self.history] for key in keys}


def _score(task, outputs, targets):
    if task == "multiclass":
        return float(np.mean(outputs.argmax(-1) == targets))
    if task == "multilabel":
        return float(np.mean(np.all((outputs > 0) == (targets > 0.5), axis=-1)))
    return float(np.mean(np.abs(outputs - targets)))
