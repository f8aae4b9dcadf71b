"""LiteRT (.tflite) conversion of a trained tfmm model: float32, dynamic-range int8, full int8,
16x8 (int16 activations, int8 weights).

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
    "int16x8": int8 weights, int16 activations ("16x8"), calibrated the same way; for models
               whose activations have outliers that one int8 scale per tensor cannot hold
               (the fine-tuned XQuAD BERT: F1 15.31 in full int8 against 42.02 in float32).
Both int8 modes keep the log-Mel front end in float32, and the calibrated
modes leave mask values (-inf, the float32 minimum) out of their ranges (`without_mask_values`):
without either, the quickstart model lost 11.5 (dynamic) and 65 (full int8) accuracy points.
int16x8 stores large embedding tables in int8 (`with_int8_lookup_tables`) and does not keep
the front end float (its quantizer has no list of ops to leave out): it is meant for the span
model, which has none. Those flatbuffer edits are in `tfmm.export.litert_graph_edits`.
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfmm.export.litert_graph_edits import (float_operations, with_float_front_end_weights,
                                             with_float_operations, with_int8_lookup_tables,
                                             without_mask_values)

QUANTIZATIONS = ("none", "dynamic", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # the modes that need representative examples


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
        representative: for "int8" and "int16x8", a callable returning an iterable of feature dicts
            ({input name: array [1, ...]}) used to calibrate the activation ranges.

    Returns:
        The .tflite file's bytes (one signature, "serving_default", with the model's input and
        output names).

    Raises:
        ValueError: an unknown `quantize`, or a calibrated mode without `representative`.
        LiteRTConversionError: the converter failed.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}. Received: {quantize!r}")
    if quantize in CALIBRATED and representative is None:
        raise ValueError(f"quantize={quantize!r} needs representative examples")
    with tempfile.TemporaryDirectory(prefix="tfmm-litert-") as scratch:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            write_inference_savedmodel(model, scratch))
        return _convert(converter, model, quantize, representative)


def _convert(converter, model, quantize, representative) -> bytes:
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        if quantize == "none":
            return converter.convert()
        if quantize == "dynamic":
            return with_float_front_end_weights(converter.convert())
        names = [spec.name for spec in model_input_specs(model).values()]

        def calibration_examples():
            for features in representative():
                yield {name: np.asarray(features[name]) for name in names}

        converter.representative_dataset = calibration_examples
        # int8 (int16) kernels where they exist, float builtins for the rest (e.g. the FFT).
        quantized_ops = (tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if quantize == "int8" else
                         tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)
        converter.target_spec.supported_ops = [quantized_ops, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter._experimental_calibrate_only = True  # ranges first, corrected below
        calibrated = converter.convert()
        if quantize == "int16x8":
            calibrated = without_mask_values(calibrated, calibration_examples,
                                             measure_missing=True)
            quantized = with_float_operations(quantize_calibrated_16x8(calibrated),
                                              NO_INT16_KERNEL)
            return with_int8_lookup_tables(quantized)
        calibrated = without_mask_values(calibrated, calibration_examples)
        return quantize_calibrated(calibrated, float_operations(calibrated))
    except LiteRTConversionError:
        raise
    except Exception as error:  # the converter raises ConverterError and plain Exceptions
        raise LiteRTConversionError(f"LiteRT conversion ({quantize}) failed: {error}") from None


def quantize_calibrated(calibrated: bytes, keep_float=()) -> bytes:
    """Full int8 from a calibrated flatbuffer; the operations named in `keep_float` (their
    first output tensors' names) stay float32, with (de)quantize ops around them."""
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(calibrated, denylisted_nodes=list(keep_float))


def quantize_calibrated_16x8(calibrated: bytes) -> bytes:
    """16x8 (int16 activations, int8 weights, int64 biases) from a calibrated flatbuffer, with
    the ranges it holds.

    This is the quantizer `TFLiteConverter.convert()` runs for
    `OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`, called without feeding
    it examples: fed, it would calibrate again and write the mask values back into the ranges
    `without_mask_values` corrected. (The MLIR quantizer's int16 mode, which takes a calibrated
    flatbuffer, rejected BERT's multiplications by int8 constants and, with those left float,
    wrote int16 zero points of -1 that the ADD kernel refuses.) Ops without an int16 kernel in
    the quantizer's table stay float.
    """
    from tensorflow.lite.python.optimize import calibrator

    wrapper = calibrator.Calibrator(calibrated)._calibrator  # the converter's own wrapper
    return bytes(wrapper.QuantizeModel(
        np.dtype(np.float32).num, np.dtype(np.float32).num, True,  # float in/out, allow float
        np.dtype(np.int16).num, np.dtype(np.int64).num,  # activations, biases
        False, False))  # per-channel weights, also in dense layers


# Ops the 16x8 quantizer writes in int16 that the LiteRT runtime has no int16 kernel for
# ("SquaredDifference only supports FLOAT32 and INT32"): layer normalisation's variance.
NO_INT16_KERNEL = ("SQUARED_DIFFERENCE",)


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
