"""One training loop for every strategy: default, Mirrored, MultiWorkerMirrored and TPU.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so tfmm
owns its step: a `tf.function` around `strategy.run`, gradients from a `GradientTape` (optionally
XLA-compiled), `keras.optimizers.AdamW` applying them. The same step serves a laptop CPU and a
TPU pod. State (model, optimizer, epoch, position in the epoch) lives in a
`tf.train.CheckpointManager` in the run folder, so a killed run resumes where its last checkpoint
was written, replaying the same shuffled order.

Several replicas: gradients are summed over the replicas before they are clipped and handed to
the optimizer (loss scaling included), and each replica draws its own dropout / augmentation
masks (tfmm/models/replica_seeds.py). The per-epoch loss/score sums and the random-number states
are checkpointed, so a run killed and resumed follows the numbers of the uninterrupted run; a
run on N replicas follows one replica at the same global batch exactly with dropout 0 (up to
float rounding; see docs/distributed.md) and in distribution with random masks. With
`training.dp_l2_clip` > 0 the step is DP-SGD's (tfmm/training/dp_sgd.py).
"""

import contextlib
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfmm.errors import UserError
from tfmm.evaluation.predict import predict_dataset
from tfmm.models.dropout import threefry_dropout
from tfmm.models.replica_seeds import replica_random_streams
from tfmm.tasks import get_task
from tfmm.run_folder import RunFolder, history_by_metric
from tfmm.training.adversarial import AdversarialTraining
from tfmm.training.dp_sgd import PrivateGradients
from tfmm.training.pruning import MagnitudePruning
from tfmm.training.history import INFERENCE_PREFIX, mode_divergence_warning
from tfmm.training.optimizer import build_optimizer
from tfmm.training.strategy import StrategyError, is_chief, resolve_jit_compile


# Training examples scored in inference mode after each epoch when there is no validation split.
INFERENCE_CHECK_EXAMPLES = 256


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


class CheckpointError(UserError):
    """A checkpoint in the run folder that cannot be restored."""


class Trainer:
    """Trains a tfmm model on an `ExamplePipeline` (or any pipeline with the same interface:
    `batches(...)`, `steps_per_epoch(...)`, `num_examples`, e.g. `SpanWindowPipeline`).

    Args:
        model: a Keras model built under `strategy.scope()`.
        task: the `tfmm.tasks.Task` (or its name): loss, score and what evaluation reads.
        training: the run's `tfmm.config.TrainingConfig`.
        strategy: the tf.distribute strategy the model was built under.
        steps_per_epoch: optimizer steps per epoch.
        run_dir: folder for checkpoints, TensorBoard logs and history.
        batch_size: global batch size (`data.batch_size`).
        shuffle_buffer: examples in the shuffle buffer (`data.shuffle_buffer`).
        log: function taking one line of text (print by default).

    `trainer.train_step(batch)` is one optimizer step on a (distributed) batch `(features,
    targets)` and returns the loss and score summed over its examples: the step `fit` runs,
    public for benchmarks and tests that time or probe it.
    """

    def __init__(self, model, task, training, strategy, steps_per_epoch: int, run_dir: str,
                 batch_size: int, shuffle_buffer: int = 10000, log=print):
        self.model = model
        self.task = get_task(task)
        self.training = training
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.strategy = strategy
        self.steps_per_epoch = steps_per_epoch
        self.run_dir = run_dir
        self.run_folder = RunFolder(run_dir)
        self.log = log
        self.is_chief = is_chief()
        self.jit_compile = resolve_jit_compile(training.jit_compile, strategy)
        total_steps = steps_per_epoch * training.epochs
        with strategy.scope():
            self.optimizer = build_optimizer(training, total_steps)
            self.optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                                             name="step_in_epoch")
            # Sums over the steps of the current epoch, so a resumed epoch reports all of it.
            self.epoch_loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                              name="epoch_loss_sum")
            self.epoch_score_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                               name="epoch_score_sum")
            self.private = PrivateGradients.for_training(  # None unless DP-SGD is on
                model, self.optimizer, training, batch_size, strategy.num_replicas_in_sync)
        # tf.train.Checkpoint does not reach the states of Keras SeedGenerators (dropout,
        # augmentation, modality dropout) through the model: list them, so a resumed run draws the
        # same random numbers as an uninterrupted one.
        weight_ids = {id(variable) for variable in model.weights}
        self.random_states = [variable for variable in model.variables
                              if id(variable) not in weight_ids]
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer,
                                              epoch=self.epoch, step_in_epoch=self.step_in_epoch,
                                              epoch_loss_sum=self.epoch_loss_sum,
                                              epoch_score_sum=self.epoch_score_sum,
                                              random_states=self.random_states,
                                              **(self.private.checkpointed if self.private else {}))
        # Every worker writes (saving is collective); only the chief's copy is kept. Every worker
        # resumes from the chief's folder, which must then be storage they all read (e.g. gs://).
        self.checkpoint_dir = self.run_folder.checkpoints
        self._scratch_dir = None if self.is_chief else tempfile.mkdtemp(
            prefix="tfmm-worker-checkpoints-")
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._scratch_dir or self.checkpoint_dir,
            max_to_keep=training.keep_checkpoints)
        self.history = self.run_folder.read_history()
        self.pruning = MagnitudePruning.for_training(model, training, strategy)  # pruning.py
        self.train_step = self._build_train_step()

    @classmethod
    def from_config(cls, model, config, strategy, steps_per_epoch: int, run_dir: str, log=print):
        """A Trainer with the task, training section and batch settings of a whole
        `tfmm.config.Config` (tests and benchmarks)."""
        return cls(model, config.data.task, config.training, strategy, steps_per_epoch, run_dir,
                   config.data.batch_size, config.data.shuffle_buffer, log=log)

    # ----------------------------------------------------------------------------------------
    def _build_train_step(self):
        model, optimizer, task, private = self.model, self.optimizer, self.task, self.private
        smoothing = self.training.label_smoothing
        variables = model.trainable_variables
        adversary = AdversarialTraining.for_training(model, task, self.training)  # None: off

        # Under XLA the dropout masks are drawn with ThreeFry (training.dropout_masks): on CPU
        # Keras' default generator made them 20.5% of a 128-token MiniLM step, ThreeFry 8.3%
        # (tfmm/models/dropout.py). The switch lasts only while this function is traced; the
        # model keeps Keras' Dropout.
        use_threefry = self.jit_compile and self.training.dropout_masks == "threefry"

        def masks():
            return threefry_dropout(model) if use_threefry else contextlib.nullcontext()

        def compute_gradients(features, targets):
            with tf.GradientTape() as tape:
                with masks():
                    outputs = model(features, training=True)
                losses = task.per_example_loss(targets, outputs, smoothing)
                if adversary:  # clean + perturbed losses (tfmm/training/adversarial.py)
                    losses = adversary.mixed_losses(tape, features, targets, losses, masks)
                loss = tf.nn.compute_average_loss(losses)
                scaled_loss = optimizer.scale_loss(loss)
            gradients = (private.summed_clipped_gradients(tape, losses) if private  # dp_sgd.py
                         else tape.gradient(scaled_loss, variables))
            score = tf.nn.compute_average_loss(task.per_example_score(targets, outputs))
            return gradients, loss, score

        # Several replicas: sum the gradients over the replicas first, then (clip_norm > 0) clip
        # the global gradient, then hand each replica an equal share for the optimizer to sum
        # again. Keras optimizers would clip each replica's partial gradient (the wrong norm),
        # and Keras' LossScaleOptimizer (float16) checks the gradients it is given for overflow
        # on the first replica only: summed gradients are the same on every replica, so an
        # overflow on any replica skips the step on all of them.
        num_replicas = self.strategy.num_replicas_in_sync
        clip_norm = self.training.clip_norm
        sum_first = num_replicas > 1
        # On one replica XLA compiles the optimizer update with the gradients, as model.fit does
        # (bench/text_step.py: a step about 7% faster on short texts than with the AdamW update
        # run op by op); several replicas need the update outside XLA (cross-replica merge).
        whole_step_xla = self.jit_compile and num_replicas == 1
        if self.jit_compile and not whole_step_xla:
            compute_gradients = tf.function(compute_gradients, jit_compile=True)

        def replica_step(features, targets):
            gradients, loss, score = compute_gradients(features, targets)
            if private:  # summed over the replicas, noised once, averaged
                gradients = private.noisy_mean(gradients)
            elif sum_first:
                loss_scale = optimizer.scale_loss(tf.constant(1.0))  # 1 unless float16
                gradients = _sum_over_replicas(gradients, clip_norm * loss_scale, num_replicas)
            optimizer.apply_gradients(zip(gradients, variables))
            return loss, score

        if whole_step_xla:
            replica_step = tf.function(replica_step, jit_compile=True)

        # Each replica its own dropout / augmentation stream (tfmm/models/replica_seeds.py):
        # with one shared stream N replicas would repeat the same masks on every slice.
        def random_streams():
            if num_replicas > 1:
                return replica_random_streams(model)
            return contextlib.nullcontext()

        @tf.function
        def train_step(batch):
            features, targets = batch
            with random_streams():
                loss, score = self.strategy.run(replica_step, args=(features, targets))
            self.pruning.after_step(self.optimizer.iterations)  # masks after the update
            reduce = tf.distribute.ReduceOp.SUM
            return (self.strategy.reduce(reduce, loss, axis=None),
                    self.strategy.reduce(reduce, score, axis=None))

        return train_step

    # ----------------------------------------------------------------------------------------
    def restore(self) -> bool:
        """Loads the latest checkpoint of the run folder; True when there was one.

        The `checkpoint` index file names only checkpoints whose files were completely written
        (CheckpointManager updates it after the save), so a run killed while saving resumes from
        the previous one. A listed checkpoint that cannot be read (damaged storage) is skipped for
        the one before it, with a message; when none can be read a CheckpointError says so.
        Under MultiWorkerMirroredStrategy every worker must resume from the same step: a
        StrategyError says so when they did not.
        """
        state = tf.train.get_checkpoint_state(self.checkpoint_dir)
        candidates = list(reversed(state.all_model_checkpoint_paths)) if state else []
        if state and state.model_checkpoint_path not in candidates:
            candidates.insert(0, state.model_checkpoint_path)
        restored, failures = None, []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as error:
                # IndexError: "Read less bytes than requested" from a truncated data file.
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                failures.append(f"{path}: {reason}")
                self.log(f"cannot restore {failures[-1]}")
                continue
            restored = path
            break
        if candidates and not restored:
            raise CheckpointError(
                f"no checkpoint in {self.checkpoint_dir} can be restored ({'; '.join(failures)}). "
                "Move that folder away to start over, or set training.run_dir to a new folder.")
        if restored:
            self.log(f"resumed from {restored} (epoch {int(self.epoch.numpy()) + 1}, "
                     f"step {int(self.step_in_epoch.numpy())} of {self.steps_per_epoch})")
        self._check_workers_agree()
        return bool(restored)

    def _global_position(self) -> int:
        return int(self.epoch.numpy()) * self.steps_per_epoch + int(self.step_in_epoch.numpy())

    def _check_workers_agree(self):
        """Under MultiWorkerMirroredStrategy, fails when workers start from different steps."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return
        position = tf.constant([self._global_position()], tf.int64)

        @tf.function
        def gather_positions():
            per_replica = self.strategy.run(lambda: tf.identity(position))
            return self.strategy.gather(per_replica, axis=0)

        positions = sorted(set(int(value) for value in gather_positions().numpy()))
        if len(positions) > 1:
            raise StrategyError(
                f"the workers start from different steps {positions}: each resumes from "
                f"{self.checkpoint_dir}, which only the chief writes. Put training.run_dir on "
                "storage every worker reads (e.g. gs://bucket/run), or give every worker a "
                "fresh run folder.")

    def save(self):
        self.manager.save(checkpoint_number=self._global_position())

    def fit(self, train_pipeline, validation_pipeline=None):
        """Trains for `training.epochs`, resuming from the run folder if it can.

        Args:
            train_pipeline: `tfmm.data.dataset.ExamplePipeline` of the training manifest, or
                another pipeline with its `batches` interface (`SpanWindowPipeline` for "qa").
            validation_pipeline: optional pipeline evaluated after each epoch.

        Returns:
            The history: {metric name: [value per epoch]}.
        """
        self.restore()
        try:
            return self._fit(train_pipeline, validation_pipeline)
        finally:
            if self._scratch_dir:
                shutil.rmtree(self._scratch_dir, ignore_errors=True)

    def _fit(self, train_pipeline, validation_pipeline):
        training = self.training
        batch_size, shuffle_buffer = self.batch_size, self.shuffle_buffer
        score_name = self.task.score_name
        writer = (tf.summary.create_file_writer(self.run_folder.training_logs)
                  if self.is_chief else tf.summary.create_noop_writer())
        for epoch in range(int(self.epoch.numpy()), training.epochs):
            self.epoch.assign(epoch)
            first_step = int(self.step_in_epoch.numpy())
            dataset = train_pipeline.batches(
                batch_size, shuffle=True, seed=training.seed, epoch=epoch,
                shuffle_buffer=shuffle_buffer, drop_remainder=True, skip_batches=first_step)
            dataset = dataset.take(self.steps_per_epoch - first_step)
            distributed = self.strategy.experimental_distribute_dataset(dataset)
            progress = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=["lr"],
                                           verbose=1 if self.is_chief else 0)
            if self.is_chief:
                self.log(f"epoch {epoch + 1}/{training.epochs}")
            if first_step == 0:
                self.epoch_loss_sum.assign(0.0)
                self.epoch_score_sum.assign(0.0)
            started = time.time()
            step = first_step
            for batch in distributed:
                loss, score = self.train_step(batch)
                loss, score = float(loss), float(score)
                step += 1
                global_step = epoch * self.steps_per_epoch + step
                if not np.isfinite(loss):
                    raise TrainingDivergedError(
                        f"loss became {loss} at step {global_step} (epoch {epoch + 1}, batch "
                        f"{step}); the last good checkpoint is {self.manager.latest_checkpoint}. "
                        "Lower training.learning_rate or set training.clip_norm, then rerun to "
                        "resume from it.")
                self.epoch_loss_sum.assign_add(loss)
                self.epoch_score_sum.assign_add(score)
                learning_rate = float(self.optimizer.learning_rate)
                progress.update(step, [("loss", loss), (score_name, score), ("lr", learning_rate)])
                if step % 10 == 0:
                    with writer.as_default(step=global_step):
                        tf.summary.scalar("loss", loss)
                        tf.summary.scalar(score_name, score)
                        tf.summary.scalar("learning_rate", learning_rate)
                self.step_in_epoch.assign(step)
                every = training.checkpoint_every_steps
                # The epoch's last step is saved just below, as the start of the next epoch.
                if every and global_step % every == 0 and step < self.steps_per_epoch:
                    self.save()
            done = max(step, 1)
            record = {"epoch": epoch + 1, "loss": float(self.epoch_loss_sum.numpy()) / done,
                      score_name: float(self.epoch_score_sum.numpy()) / done,
                      "seconds": round(time.time() - started, 2)}
            if self.private:  # epsilon at delta for the optimizer steps taken so far
                record["epsilon"] = self.private.spent(train_pipeline.num_examples)["epsilon"]
            # Beside the training-mode figures, the same model in inference mode (dropout off,
            # BatchNorm on moving statistics): on the validation split, or else on a fixed
            # sample of the training data (INFERENCE_CHECK_EXAMPLES, to keep it cheap).
            if validation_pipeline is not None:
                prefix, checked = "val_", validation_pipeline.batches(batch_size)
            else:
                prefix = INFERENCE_PREFIX
                checked = train_pipeline.batches(
                    batch_size, shuffle=True, seed=training.seed, epoch=0,
                    shuffle_buffer=shuffle_buffer).take(
                        max(1, INFERENCE_CHECK_EXAMPLES // batch_size))
            outputs, targets, checked_loss = predict_dataset(self.model, checked, self.task)
            record[prefix + "loss"] = checked_loss
            record[prefix + score_name] = self.task.score(outputs, targets)
            with writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
                for key, value in record.items():
                    if key not in ("epoch", "seconds") and value is not None:
                        tf.summary.scalar("epoch_" + key, value)
            self._append_history(record)
            if self.is_chief:
                self.log("  " + ", ".join(f"{key} {value:.4f}" if isinstance(value, float)
                                          else f"{key} {value}" for key, value in record.items()))
                warning = mode_divergence_warning(record, score_name,
                                                  self.task.lower_score_is_better)
                if warning:
                    self.log(warning)
            self.epoch.assign(epoch + 1)
            self.step_in_epoch.assign(0)
            self.save()
        writer.flush()
        return self.history_by_metric()

    # ----------------------------------------------------------------------------------------
    def _append_history(self, record):
        self.history = [entry for entry in self.history if entry["epoch"] < record["epoch"]]
        self.history.append(record)
        if self.is_chief:
            self.run_folder.write_history(self.history)

    def history_by_metric(self):
        return history_by_metric(self.history)


def _sum_over_replicas(gradients, clip_norm, num_replicas):
    """In a replica: the gradients summed over replicas, clipped to `clip_norm` by their global
    norm when `clip_norm` > 0, divided by `num_replicas` (None entries stay None)."""
    present = [gradient for gradient in gradients if gradient is not None]
    summed = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present)
    clipped = tf.clip_by_global_norm(summed, clip_norm)[0] if clip_norm > 0 else summed
    shares = iter([_divide(gradient, num_replicas) for gradient in clipped])
    return [None if gradient is None else next(shares) for gradient in gradients]


def _divide(gradient, divisor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values / divisor, gradient.indices, gradient.dense_shape)
    return gradient / divisor

