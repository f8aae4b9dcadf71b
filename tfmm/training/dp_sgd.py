"""Differentially private SGD (Abadi et al., 2016) inside tfmm's own train step.

Per step, on each replica: one forward pass over the replica's examples, the per-example losses
grouped into microbatches (`training.dp_microbatch_size`, 1: every example alone), and the
gradient of each microbatch's mean loss computed at once with `GradientTape.jacobian` (a
vectorised backward pass, `pfor`). The forward pass runs once on the whole batch, so dropout and
augmentation masks are drawn as in ordinary training; only the backward pass is vectorised.
Each microbatch gradient is clipped to `dp_l2_clip` by its global L2 norm over all trainable
variables, the clipped gradients are summed, and the sums are added over the replicas. Then
Gaussian noise of std `dp_noise_multiplier * dp_l2_clip` is added ONCE to that global sum: every
replica draws the same noise (a stateless generator keyed by the run's noise key and the
optimizer step), so the update is the same on 1 or N replicas and the noise is neither counted N
times nor missing on some. The noisy sum is divided by the global number of microbatches and
handed to the optimizer (`training.clip_norm`, when set, then clips this noisy mean: post-
processing, which costs no privacy).

The noise key is random per run (os.urandom), not `training.seed`: a seed saved in the run's
config would let anyone who reads it subtract the noise. It is kept in the checkpoint, so a
resumed run draws the noise the uninterrupted run would have; share the exported model, not the
checkpoints folder. Philox is not a cryptographically secure generator (a caveat shared with
most DP-SGD implementations). Under MultiWorkerMirroredStrategy the key is the chief's: that
strategy broadcasts variables' initial values from the chief (tested here: one replica against
two Mirrored replicas; several workers not).

Memory: the per-example gradients are materialised, (per-replica batch / microbatch size) x the
trainable parameters; freeze large encoders (or raise dp_microbatch_size) when that is too much.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfmm.config import ConfigError
from tfmm.training.privacy import private_training_enabled
from tfmm.training.privacy_accounting import privacy_spent


class PrivateGradients:
    """The DP-SGD parts of a train step: clipped per-microbatch gradients and the noisy mean.

    Args:
        variables: the trainable variables the step updates.
        iterations: the optimizer's step counter (checkpointed): keys the noise, counts the steps.
        training: the run's `TrainingConfig` (dp_l2_clip, dp_noise_multiplier,
            dp_microbatch_size, dp_delta, clip_norm).
        global_batch_size: examples per optimizer step over all replicas.
        num_replicas: replicas in sync.

    Create it under the strategy's scope (its noise key is a variable the checkpoint keeps).
    """

    def __init__(self, variables, iterations, training, global_batch_size: int,
                 num_replicas: int):
        self.variables = list(variables)
        self.iterations = iterations
        self.training = training
        self.l2_clip = float(training.dp_l2_clip)
        self.noise_multiplier = float(training.dp_noise_multiplier)
        self.microbatch_size = int(training.dp_microbatch_size)
        self.clip_norm = float(training.clip_norm)
        self.global_batch_size = global_batch_size
        self.num_replicas = num_replicas
        per_replica = global_batch_size // num_replicas
        if per_replica % self.microbatch_size:
            raise ConfigError(f"the per-replica batch ({per_replica} = {global_batch_size} / "
                              f"{num_replicas} replicas) must be divisible by "
                              f"`training.dp_microbatch_size`. Received: {self.microbatch_size}")
        self.num_microbatches = global_batch_size // self.microbatch_size
        key = np.frombuffer(os.urandom(16), dtype=np.int64)
        self.noise_key = tf.Variable(key, trainable=False, name="dp_noise_key")
        # What tf.train.Checkpoint keeps beside the model and optimizer.
        self.checkpointed = {"dp_noise_key": self.noise_key}

    @classmethod
    def for_training(cls, model, optimizer, training, global_batch_size: int,
                     num_replicas: int):
        """A PrivateGradients for `model` when `training.dp_l2_clip` > 0, else None; refuses a
        model with a trainable BatchNormalization layer (ConfigError)."""
        if not private_training_enabled(training):
            return None
        refuse_batch_normalization(model)
        return cls(model.trainable_variables, optimizer.iterations, training,
                   global_batch_size, num_replicas)

    def clipped_gradients(self, tape, per_example_losses):
        """Each microbatch's gradient, clipped to `l2_clip`.

        Args:
            tape: the GradientTape that recorded the forward pass (not yet used).
            per_example_losses: [batch] losses of the replica's examples.

        Returns:
            (clipped, norms): per variable a [num_microbatches, *variable.shape] tensor of the
            clipped gradients, and the [num_microbatches] global norms before clipping.
        """
        with tape:  # recorded, or the losses' grouping would cut them off the variables
            microbatch_losses = tf.reduce_mean(
                tf.reshape(per_example_losses, [-1, self.microbatch_size]), axis=1)
        # The TensorFlow variables under the Keras ones: jacobian's zeros for a variable the
        # loss does not reach read `.dtype`, a string on a Keras variable (AttributeError).
        sources = [variable.value if isinstance(variable, keras.Variable) else variable
                   for variable in self.variables]
        gradients = tape.jacobian(microbatch_losses, sources,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        gradients = [tf.cast(gradient, tf.float32) for gradient in gradients]
        squares = [tf.reduce_sum(tf.reshape(tf.square(gradient), [tf.shape(gradient)[0], -1]),
                                 axis=1) for gradient in gradients]
        norms = tf.sqrt(tf.add_n(squares))
        factors = tf.minimum(1.0, self.l2_clip / tf.maximum(norms, 1e-12))
        clipped = [gradient * tf.reshape(factors, [-1] + [1] * (len(gradient.shape) - 1))
                   for gradient in gradients]
        return clipped, norms

    def summed_clipped_gradients(self, tape, per_example_losses):
        """The replica's clipped microbatch gradients summed (one tensor per variable)."""
        clipped, _ = self.clipped_gradients(tape, per_example_losses)
        return [tf.reduce_sum(gradient, axis=0) for gradient in clipped]

    def noise(self, step):
        """Gaussian noise of std noise_multiplier * l2_clip, one tensor per variable: a function
        of the noise key and the optimizer `step` only, so the same on every replica."""
        step_key = tf.random.experimental.stateless_fold_in(self.noise_key,
                                                            tf.cast(step, tf.int64))
        stddev = self.noise_multiplier * self.l2_clip
        return [stddev * tf.random.stateless_normal(
                    variable.shape, tf.random.experimental.stateless_fold_in(step_key, index))
                for index, variable in enumerate(self.variables)]

    def noisy_mean(self, summed):
        """In a replica: the gradients to hand the optimizer for this step.

        Args:
            summed: the replica's summed clipped gradients (`summed_clipped_gradients`).

        Returns:
            (sum over replicas + noise) / global microbatches, clipped to `training.clip_norm`
            when it is > 0, divided by the replicas (the optimizer sums the replicas' shares).
        """
        if self.num_replicas > 1:
            summed = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, summed)
        if self.noise_multiplier > 0:
            noise = self.noise(self.iterations)
            summed = [gradient + draw for gradient, draw in zip(summed, noise)]
        mean = [gradient / self.num_microbatches for gradient in summed]
        if self.clip_norm > 0:
            mean = tf.clip_by_global_norm(mean, self.clip_norm)[0]
        return [gradient / self.num_replicas for gradient in mean]

    def spent(self, num_examples: int) -> dict:
        """`privacy_spent` after the optimizer steps taken (its checkpointed count) on
        `num_examples` training examples."""
        return privacy_spent(self.training, self.global_batch_size, num_examples,
                             int(self.iterations.numpy()))


def refuse_batch_normalization(model):
    """ConfigError when a BatchNormalization layer of `model` is trainable (in training mode it
    mixes the examples of a batch); frozen ones run in inference mode and pass."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            raise ConfigError(f"DP-SGD (training.dp_l2_clip > 0) cannot train the "
                              f"BatchNormalization layer {layer.path!r}: it mixes the examples "
                              "of a batch; freeze the encoder that holds it")
