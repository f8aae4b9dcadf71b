"""The part of an encoder before its projection, which runs in inference mode while frozen."""

import keras


@keras.saving.register_keras_serializable(package="tfmm")
class EncoderFeatures(keras.Model):
    """A functional model (raw input -> features) that ignores `training=True` while frozen.

    Keras' `trainable=False` fixes weights but does not switch Dropout off or stop random
    augmentation (BatchNormalization alone follows it). An encoder's feature part is built as
    this model, so freezing it (`features.trainable = False`) makes every call run in
    inference mode: no dropout, no augmentation, BatchNorm on its moving statistics. That is
    what `tfmm.training.feature_cache` computes once per example, so training through frozen
    encoders and training on their cached features are the same computation.

    Build it like any functional model: `EncoderFeatures(inputs, outputs, name=...)`.
    Input and output shapes: those of the graph it is built from.
    """

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not self.trainable:
            training = False
        return super().call(inputs, training=training, mask=mask, **kwargs)
