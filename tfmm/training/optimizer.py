"""AdamW with linear warmup then decay, clipping, and no weight decay on norms, biases,
embeddings."""

import math

import keras
from keras import ops

# Variable-name patterns that AdamW never decays: LayerNorm/BatchNorm scales and offsets, biases,
# and every embedding table (token, position, segment, modality-type, absent, query).
NO_DECAY_PATTERNS = ("bias", "gamma", "beta", "embeddings")


@keras.saving.register_keras_serializable(package="tfmm")
class WarmupThenDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then cosine/linear decay (or constant).

    Args:
        peak_learning_rate: learning rate at the end of warmup.
        total_steps: optimizer steps of the whole run.
        warmup_steps: steps of linear warmup.
        decay: "cosine" | "linear" | "constant".
        final_fraction: the decayed rate ends at peak * final_fraction.
    """

    def __init__(self, peak_learning_rate, total_steps, warmup_steps, decay="cosine",
                 final_fraction=0.0):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError("WarmupThenDecay needs total_steps >= 1 and 0 <= warmup_steps <= "
                             f"total_steps. Received: total_steps={total_steps}, "
                             f"warmup_steps={warmup_steps}")
        self.peak_learning_rate = peak_learning_rate
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.final_fraction = final_fraction

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warmup = peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1),
                            0.0, 1.0)
        if self.decay == "cosine":
            shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.decay == "linear":
            shape = 1.0 - progress
        else:
            shape = ops.ones_like(progress)
        decayed = peak * (self.final_fraction + (1.0 - self.final_fraction) * shape)
        return ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "decay": self.decay,
                "final_fraction": self.final_fraction}


def build_optimizer(training_config, total_steps: int) -> keras.optimizers.Optimizer:
    """`keras.optimizers.AdamW` configured from a `tfmm.config.TrainingConfig`.

    Args:
        training_config: learning_rate, weight_decay, warmup_fraction, decay, clip_norm,
            mixed_precision are read.
        total_steps: optimizer steps of the whole run.

    Returns:
        AdamW (wrapped in a LossScaleOptimizer for float16) whose weight decay skips variables
        matching NO_DECAY_PATTERNS.
    """
    warmup_steps = int(round(training_config.warmup_fraction * total_steps))
    schedule = WarmupThenDecay(training_config.learning_rate, total_steps, warmup_steps,
                               training_config.decay)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=training_config.weight_decay,
        global_clipnorm=training_config.clip_norm or None)
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_PATTERNS))
    if training_config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
