"""Adversarial perturbations of a model's continuous inputs (FGM, PGD): the attack that adversarial
training (tfmm/training/adversarial.py) and robust-accuracy evaluation
(tfmm/evaluation/adversarial_evaluation.py) share.

FGM (fast gradient method, L2): r = epsilon * g / ||g||_2, with g the gradient of the summed
per-example losses with respect to one input of one example (per example and per modality).
PGD: `steps` such steps of `step_size` from the clean input, each projected back onto the L2
ball of radius epsilon around it. The perturbed inputs are the model inputs "image" (float32
[B, S, S, 3] pixels in [0, 255]) and "audio" (float32 [B, N] waveform samples): the log-Mel
spectrogram is computed inside the audio encoder, so perturbing the waveform needs no change to
the encoder and the attack sees everything the model does to its input. The perturbed pixels
are not clipped to [0, 255] (the norm stays exactly epsilon). An example whose gradient is zero
or not finite (a masked-out modality, a float16 overflow) is left unperturbed.

The perturbed inputs carry no gradient back through the attack (`tf.stop_gradient`).

    attack = InputAttack(AdversarialConfig.from_dict({"epsilon": 0.5}), ["audio"])
    perturbed = attack.perturb(lambda inputs: task.per_example_loss(y, model(inputs)), features)
"""

import tensorflow as tf

# Below this L2 norm a gradient counts as zero (its example is not perturbed).
TINY_NORM = 1e-12


class InputAttack:
    """FGM or PGD on the given model inputs.

    Args:
        settings: an `AdversarialConfig`.
        inputs: names of the perturbed features ("image", "audio").
    """

    def __init__(self, settings, inputs):
        self.settings = settings
        self.inputs = tuple(inputs)

    def perturb(self, loss_of, features: dict) -> dict:
        """The features with the perturbed inputs replaced (gradient stopped).

        Args:
            loss_of: function of a features dict returning float [B] per-example losses.
            features: the batch's model inputs.

        Returns:
            A new dict: the same features, inputs + their perturbation [B, ...].
        """
        settings = self.settings
        deltas = {name: tf.zeros_like(features[name]) for name in self.inputs}
        if settings.method == "fgm":
            gradients = self.gradients(loss_of, features, deltas)
            deltas = {name: settings.epsilon_of(name) * unit_per_example(gradients[name])
                      for name in self.inputs}
        else:
            for _ in range(settings.steps):
                gradients = self.gradients(loss_of, features, deltas)
                deltas = {name: project_per_example(
                    deltas[name] + settings.step_size_of(name) * unit_per_example(gradients[name]),
                    settings.epsilon_of(name)) for name in self.inputs}
        perturbed = dict(features)
        for name in self.inputs:
            perturbed[name] = tf.stop_gradient(features[name] + deltas[name])
        return perturbed

    def gradients(self, loss_of, features: dict, deltas: dict) -> dict:
        """{name: d(sum of per-example losses) / d(input)} at features + deltas."""
        with tf.GradientTape() as tape:
            tape.watch(deltas)
            shifted = dict(features)
            for name, delta in deltas.items():
                shifted[name] = features[name] + delta
            total = tf.reduce_sum(tf.cast(loss_of(shifted), tf.float32))
        gradients = tape.gradient(total, deltas)
        return {name: tf.zeros_like(deltas[name]) if gradient is None else gradient
                for name, gradient in gradients.items()}


def per_example_norm(tensor):
    """float32 [B, 1, ...]: the L2 norm of each example (all axes but the first)."""
    axes = list(range(1, len(tensor.shape)))
    return tf.sqrt(tf.reduce_sum(tf.square(tensor), axis=axes, keepdims=True))


def unit_per_example(gradient):
    """Each example's gradient divided by its L2 norm; zero where that norm is zero or the
    gradient is not finite."""
    finite = tf.reduce_all(tf.math.is_finite(gradient), axis=list(range(1, len(gradient.shape))),
                           keepdims=True)
    gradient = tf.where(finite, gradient, tf.zeros_like(gradient))
    norm = per_example_norm(gradient)
    return tf.where(norm > TINY_NORM, gradient / tf.maximum(norm, TINY_NORM),
                    tf.zeros_like(gradient))


def project_per_example(delta, epsilon: float):
    """Each example's delta scaled down onto the L2 ball of radius epsilon when outside it."""
    norm = per_example_norm(delta)
    return delta * tf.minimum(1.0, epsilon / tf.maximum(norm, TINY_NORM))
