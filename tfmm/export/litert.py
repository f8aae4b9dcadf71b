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
Both int8 modes keep the log-Mel front end in float32 (`FLOAT_SCOPES`), and full int8 leaves
mask values (-inf, the float32 minimum) out of its calibrated ranges (`without_mask_values`):
without either, the quickstart model lost 11.5 (dynamic) and 65 (full int8) accuracy points.
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "dynamic", "int8")
# A calibrated range this wide holds a mask value (-inf, -1e9, the float32 minimum), not data.
SENTINEL_RANGE = 1e6
# Layers full int8 keeps in float32 (matched in the converted op names).
FLOAT_SCOPES = ("log_mel_spectrogram",)


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
        # int8 kernels where they exist, float builtins for the rest (e.g. the STFT's FFT).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
        converter._experimental_calibrate_only = True  # ranges first, corrected below
        calibrated = converter.convert()
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


def without_mask_values(calibrated: bytes, examples) -> bytes:
    """The calibrated flatbuffer with every activation range that reached SENTINEL_RANGE
    measured again without those values.

    Such a range holds a mask value, not data: -inf / the float32 minimum where BERT's and the
    fusion's softmax mask their scores, and where `MaxPooling2x2` pads odd sizes. One int8 scale
    over -3.4e38..x maps every real value of the tensor to one code, and the quantizer gives
    the same scale to the tensors tied to it (a pad's input, a reshape's output): attention
    became uniform and the audio encoder's first convolution constant (the whole model fell to
    chance). Measured on the data alone, a mask value saturates at the lowest int8 code, which
    is what it means: minus a softmax's whole range, or a pooling maximum's lower bound.

    Args:
        calibrated: the converter's calibrate-only output (float model with min/max).
        examples: callable giving the calibration feature dicts again.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = graph.subgraphs[0].tensors  # the signature's graph: the interpreter's tensors
    masked = [index for index, tensor in enumerate(tensors) if _calibrated_extreme(tensor)]
    if not masked:
        return calibrated
    interpreter = Interpreter(
        model_content=calibrated, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    run = interpreter.get_signature_runner()
    low, high = {index: np.inf for index in masked}, {index: -np.inf for index in masked}
    for features in examples():
        run(**features)
        for index in masked:
            values = interpreter.get_tensor(index)
            values = values[np.abs(values) < SENTINEL_RANGE]
            if values.size:
                low[index] = min(low[index], float(values.min()))
                high[index] = max(high[index], float(values.max()))
    for index in masked:
        if low[index] <= high[index]:  # constants holding only the mask value keep theirs
            tensors[index].quantization.min = np.array([low[index]], np.float32)
            tensors[index].quantization.max = np.array([high[index]], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def float_operations(calibrated: bytes) -> list:
    """The operations of a calibrated flatbuffer that full int8 keeps in float32: the log-Mel
    front end (FLOAT_SCOPES), whose power spectrum spans decades: in int8 steps of its range
    the quiet Mel bands become log(log_offset).

    Returns:
        Their first output tensors' names (what `quantize_calibrated` takes).
    """
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    return [names[0] for _, _, names in _front_end_operations(graph)]


def with_float_front_end_weights(flatbuffer: bytes) -> bytes:
    """A dynamic-range flatbuffer whose FLOAT_SCOPES operations get their int8 weights back
    as float32 (dequantized), so they run in float.

    Dynamic-range kernels quantize their float input per call to int8 over its own range;
    the log-Mel front end's Mel matrix (129 x 64 in the quickstart, over the 1024 entries that
    get int8 weights) then reads a power spectrum whose quiet bands all fall in the lowest
    step, and their log(mel + log_offset) is wrong by orders of magnitude: the quickstart's
    audio encoder fell from 0.997 to 0.763 test accuracy.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for subgraph, operator, _ in _front_end_operations(graph):
        for index in operator.inputs:
            tensor = subgraph.tensors[index] if index >= 0 else None
            if tensor is None or tensor.type != schema.TensorType.INT8:
                continue
            buffer = graph.buffers[tensor.buffer]
            if buffer.data is None:  # an activation, not a weight
                continue
            values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.int8)
            quantization = tensor.quantization
            shape = [1] * len(tensor.shape)
            shape[quantization.quantizedDimension] = -1
            scale = np.reshape(np.asarray(quantization.scale, np.float32), shape)
            zero_point = np.reshape(np.asarray(quantization.zeroPoint, np.float32), shape)
            weights = (values.reshape(tensor.shape).astype(np.float32) - zero_point) * scale
            buffer.data = np.frombuffer(weights.astype(np.float32).tobytes(), np.uint8)
            tensor.type = schema.TensorType.FLOAT32
            tensor.quantization = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def _front_end_operations(graph):
    """(subgraph, operator, output names) of the operations inside FLOAT_SCOPES."""
    for subgraph in graph.subgraphs:
        for operator in subgraph.operators:
            names = [subgraph.tensors[index].name.decode() for index in operator.outputs]
            if names and any(f"/{scope}" in name for name in names for scope in FLOAT_SCOPES):
                yield subgraph, operator, names


def _calibrated_extreme(tensor) -> bool:
    quantization = tensor.quantization
    if quantization is None or quantization.min is None or quantization.max is None:
        return False
    bounds = np.abs(np.concatenate([np.ravel(quantization.min), np.ravel(quantization.max)]))
    return bool(bounds.size) and float(bounds.max()) >= SENTINEL_RANGE


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
