"""tfmm: multimodal (text, image, audio) training, evaluation and serving export on TensorFlow.

Importing tfmm registers every Keras-serializable tfmm class (layers, encoders, heads, the
preprocessor, the learning-rate schedule), so `keras.saving.load_model("model.keras")` works
after `import tfmm` alone. This imports Keras and TensorFlow.
"""

import importlib

# Every module that defines a `@keras.saving.register_keras_serializable(package="tfmm")` class
# (tests/test_package_import.py checks the list against the source).
SERIALIZABLE_MODULES = (
    "tfmm.models.encoder_features",
    "tfmm.models.pooling",
    "tfmm.models.random_shift",
    "tfmm.models.audio_augmentation",
    "tfmm.models.image_augmentation",
    "tfmm.models.token_masking",
    "tfmm.models.image_encoder",
    "tfmm.models.frame_batching",
    "tfmm.models.video_encoder",
    "tfmm.models.log_mel_spectrogram",
    "tfmm.models.fusion.attention_pooling",
    "tfmm.models.fusion.attention_fusion",
    "tfmm.models.fusion.concat_fusion",
    "tfmm.models.fusion.modality_dropout",
    "tfmm.models.heads.task_head",
    "tfmm.models.multimodal_model",
    "tfmm.models.span_model",
    "tfmm.preprocessing.multimodal_preprocessor",
    "tfmm.training.optimizer",
)

for _module in SERIALIZABLE_MODULES:
    importlib.import_module(_module)
del _module
