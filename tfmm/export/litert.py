"""LiteRT (.tflite) conversion of a trained tfmm model: float32, dynamic-range int8, full int8.

The LiteRT model takes the preprocessed tensors (what `MultimodalPreprocessor` or the span
windows produce: token ids / masks, image, waveform, modality masks), not raw strings: string
decoding stays in Python (`tfmm.export.litert_runner`). The log-Mel front end (STFT, Mel matrix,
log) converts to builtin LiteRT ops, so no Flex (TensorFlow) ops are needed.

    flatbuffer = convert_to_litert(model, "int8", representative_features(pipeline, 100))

Quantization modes:
    "none":    float32 weights and activations.
    "dynamic": int8 weights, float activations quantized on the fly (no calibration data).
    "int8":    int8 weights and activations, calibrated on representative examples; ops without
               an int8 kernel stay float (inputs and outputs stay float32 / int32).
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "dynamic", "int8")


class LiteRTConversionError(ValueError):
    """The converter rejected the model (the message names the unsupported ops)."""


def model_input_specs(model) -> dict:
    """{input name: tf.TensorSpec with a free batch dimension} of a functional Keras model."""
    return {tensor.name: tf.TensorSpec((None,) + tuple(tensor.shape[1:]), tensor.dtype,
                                       name=tensor.name)
            for tensor in keras.tree.flatten(model.inputs)}


def write_inference_savedmodel(model, export_dir: str) -> str:
    """The model in inference mode as a SavedModel whose `serving_default` takes the dict of
    named preprocessed inputs (what the converter reads; converting a concrete function of the
    Keras model directly gave a LiteRT file with uninitialised weights)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda features: model(features, training=False),
                         input_signature=[model_input_specs(model)])
    archive.write_out(export_dir, verbose=False)
    return export_dir


def convert_to_litert(model, quantize: str = "none", representative=None) -> bytes:
    """Converts a Keras model to a LiteRT flatbuffer.

    Args:
        model: a functional tfmm model (`MultimodalModel`, the span model), dict in, dict out.
        quantize: one of QUANTIZATIONS.
        representative: for "int8", a callable returning an iterable of feature dicts
            ({input name: array [1, ...]}) used to calibrate the activation ranges.

    Returns:
        The .tflite file's bytes (one signature, "serving_default", with the model's input and
        output names).

    Raises:
        ValueError: an unknown `quantize`, or "int8" without `representative`.
        LiteRTConversionError: the converter failed.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}. Received: {quantize!r}")
    if quantize == "int8" and representative is None:
        raise ValueError("quantize='int8' needs representative examples")
    with tempfile.TemporaryDirectory(prefix="tfmm-litert-") as scratch:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            write_inference_savedmodel(model, scratch))
        return _convert(converter, model, quantize, representative)


def _convert(converter, model, quantize, representative) -> bytes:
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        names = [spec.name for spec in model_input_specs(model).values()]

        def calibration_examples():
            for features in representative():
                yield {name: np.asarray(features[name]) for name in names}

        converter.representative_dataset = calibration_examples
        # int8 kernels where they exist, float builtins for the rest (e.g. the STFT's FFT).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # the converter raises ConverterError and plain Exceptions
        raise LiteRTConversionError(f"LiteRT conversion ({quantize}) failed: {error}") from None


def representative_features(batches, count: int):
    """A `convert_to_litert` representative callable: the first `count` examples of `batches`.

    Args:
        batches: a tf.data.Dataset of (features dict, targets) or of features dicts, batched.
        count: examples to calibrate on (one example per calibration step).
    """
    def examples():
        seen = 0
        for element in batches:
            features = element[0] if isinstance(element, tuple) else element
            size = int(next(iter(features.values())).shape[0])
            for row in range(size):
                if seen >= count:
                    return
                yield {name: value[row:row + 1].numpy() for name, value in features.items()}
                seen += 1

    return examples
