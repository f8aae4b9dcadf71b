"""The training loss on clean + perturbed examples (`training.adversarial`,
tfmm/adversarial_config.py), for the Trainer's step. The attack itself (FGM, PGD on the image
and audio inputs) is `tfmm.adversarial_attack.InputAttack`.

The perturbation is a constant for the weight update (no gradient flows through the attack).
In training the attack runs the model in training mode, like the loss it attacks: BatchNorm
layers see the perturbed batches too and update their moving statistics on each pass.
"""

import contextlib

import tensorflow as tf

from tfmm.adversarial_attack import InputAttack
from tfmm.adversarial_config import adversarial_settings


class AdversarialTraining:
    """The training loss on clean + perturbed examples, for the Trainer's step.

    Args:
        model: the model being trained (called in training mode).
        task: its `tfmm.tasks.Task`.
        settings: an `AdversarialConfig`.
        label_smoothing: `training.label_smoothing` (the loss attacked is the loss trained).
    """

    def __init__(self, model, task, settings, label_smoothing: float = 0.0):
        self.model, self.task, self.settings = model, task, settings
        self.label_smoothing = label_smoothing
        # The model's input names: the trained model may be the one over cached frozen features
        # (tfmm/training/feature_cache.py), which takes the raw inputs of the other encoders.
        inputs = sorted(tensor.name for tensor in model.inputs)
        perturbed = settings.perturbed_inputs(inputs)
        self.attack = InputAttack(settings, perturbed)

    @classmethod
    def for_training(cls, model, task, training):
        """An AdversarialTraining for a `TrainingConfig`, or None when it is off."""
        settings = adversarial_settings(training)
        if settings is None:
            return None
        return cls(model, task, settings, training.label_smoothing)

    def per_example_loss(self, features, targets):
        """float [B]: the task's loss of the model in training mode."""
        outputs = self.model(features, training=True)
        return self.task.per_example_loss(targets, outputs, self.label_smoothing)

    def mixed_losses(self, tape, features, targets, clean_losses, masks=contextlib.nullcontext):
        """(1 - weight) * clean + weight * perturbed, per example ([B]).

        Args:
            tape: the step's GradientTape; the attack's own passes are not recorded on it.
            features, targets: the replica's batch.
            clean_losses: float [B] losses of the clean batch (recorded on `tape`).
            masks: the context the step's model calls run in (its dropout masks).
        """
        with masks():
            with tape.stop_recording():
                perturbed = self.attack.perturb(
                    lambda inputs: self.per_example_loss(inputs, targets), features)
            perturbed_losses = self.per_example_loss(perturbed, targets)
        weight = self.settings.weight
        return ((1.0 - weight) * clean_losses
                + weight * tf.cast(perturbed_losses, clean_losses.dtype))
