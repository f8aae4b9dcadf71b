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
Both int8 modes keep the log-Mel front end in float32 (`FLOAT_SCOPES`), and the calibrated
modes leave mask values (-inf, the float32 minimum) out of their ranges (`without_mask_values`):
without either, the quickstart model lost 11.5 (dynamic) and 65 (full int8) accuracy points.
int16x8 stores large embedding tables in int8 (`with_int8_lookup_tables`) and does not keep
the front end float (its quantizer has no list of ops to leave out): it is meant for the span
model, which has none.
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

QUANTIZATIONS = ("none", "dynamic", "int8", "int16x8")
CALIBRATED = ("int8", "int16x8")  # the modes that need representative examples
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


def with_float_operations(flatbuffer: bytes, kinds) -> bytes:
    """The flatbuffer with its int16 operations of the given kinds run in float: each gets
    DEQUANTIZE ops before its int16 inputs and a QUANTIZE op after its output (same ranges).

    Args:
        flatbuffer: a quantized .tflite model's bytes.
        kinds: builtin operator names, e.g. ("SQUARED_DIFFERENCE",).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    wanted = {getattr(schema.BuiltinOperator, kind) for kind in kinds}
    int16 = schema.TensorType.INT16

    for subgraph in graph.subgraphs:
        def float_twin(index):
            tensor, twin = subgraph.tensors[index], schema.TensorT()
            twin.shape, twin.shapeSignature = tensor.shape, tensor.shapeSignature
            twin.type, twin.buffer, twin.name = schema.TensorType.FLOAT32, 0, tensor.name + b"/float"
            subgraph.tensors.append(twin)
            return len(subgraph.tensors) - 1

        operators = []
        for op in subgraph.operators:
            if (_builtin(graph, op) not in wanted or
                    not any(index >= 0 and subgraph.tensors[index].type == int16
                            for index in list(op.inputs) + list(op.outputs))):
                operators.append(op)
                continue
            inputs = []
            for index in op.inputs:
                if index >= 0 and subgraph.tensors[index].type == int16:
                    twin = float_twin(index)
                    operators.append(_new_operator(graph, schema.BuiltinOperator.DEQUANTIZE,
                                                   [index], [twin]))
                    index = twin
                inputs.append(index)
            outputs, after = [], []
            for index in op.outputs:
                if subgraph.tensors[index].type == int16:
                    twin = float_twin(index)
                    after.append(_new_operator(graph, schema.BuiltinOperator.QUANTIZE, [twin],
                                               [index]))
                    index = twin
                outputs.append(index)
            op.inputs, op.outputs = inputs, outputs
            operators += [op] + after
        subgraph.operators = operators
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def with_int8_lookup_tables(flatbuffer: bytes, min_entries: int = 1024) -> bytes:
    """A 16x8 flatbuffer whose constant int16 GATHER tables (embeddings) of `min_entries` or more
    are stored in int8: the rows are gathered in int8 and a QUANTIZE op turns them into the
    int16 tensor the next op reads.

    The 16x8 quantizer gives a GATHER's table the activations' type: the XQuAD model's
    30,522 x 384 token embeddings took 22.35 of its 33.28 MiB in int16 (11.18 in int8, as in
    full int8 and dynamic range, where they keep the F1).

    Args:
        flatbuffer: a 16x8 .tflite model's bytes.
        min_entries: smaller tables stay int16 (1024: the converter's own threshold for
            quantizing weights in dynamic range).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for subgraph in graph.subgraphs:
        operators = []
        for op in subgraph.operators:
            operators.append(op)
            if _builtin(graph, op) != schema.BuiltinOperator.GATHER:
                continue
            table = subgraph.tensors[op.inputs[0]]
            data = graph.buffers[table.buffer].data
            if (table.type != schema.TensorType.INT16 or data is None or
                    len(data) < 2 * min_entries or np.size(table.quantization.scale) != 1):
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.int16)
            real = values.astype(np.float64) * float(np.ravel(table.quantization.scale)[0])
            scale = max(float(np.max(np.abs(real))), 1e-12) / 127
            table.type = schema.TensorType.INT8
            table.quantization.scale = np.array([scale], np.float32)
            table.quantization.zeroPoint = np.array([0], np.int64)
            graph.buffers[table.buffer].data = np.frombuffer(
                np.clip(np.round(real / scale), -127, 127).astype(np.int8).tobytes(), np.uint8)
            rows, gathered = schema.TensorT(), subgraph.tensors[op.outputs[0]]
            rows.shape, rows.shapeSignature = gathered.shape, gathered.shapeSignature
            rows.type, rows.buffer, rows.name = schema.TensorType.INT8, 0, gathered.name + b"/int8"
            rows.quantization = schema.QuantizationParametersT()
            rows.quantization.scale = np.array([scale], np.float32)
            rows.quantization.zeroPoint = np.array([0], np.int64)
            subgraph.tensors.append(rows)
            gathered_index, op.outputs = op.outputs[0], [len(subgraph.tensors) - 1]
            operators.append(_new_operator(graph, schema.BuiltinOperator.QUANTIZE, op.outputs,
                                           [gathered_index]))
        subgraph.operators = operators
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def without_mask_values(calibrated: bytes, examples, measure_missing: bool = False) -> bytes:
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
        measure_missing: also measure the computed tensors that have no range (integer and
            boolean ones: token ids, masks, comparisons), which the 16x8 quantizer asks for.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = graph.subgraphs[0].tensors  # the signature's graph: the interpreter's tensors
    masked = [index for index, tensor in enumerate(tensors) if _calibrated_extreme(tensor) or
              (measure_missing and _without_range(tensor, graph.buffers[tensor.buffer]))]
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
            values = interpreter.get_tensor(index).astype(np.float64)  # also ints, booleans
            values = values[np.abs(values) < SENTINEL_RANGE]
            if values.size:
                low[index] = min(low[index], float(values.min()))
                high[index] = max(high[index], float(values.max()))
    for index in masked:
        if low[index] <= high[index]:  # constants holding only the mask value keep theirs
            if tensors[index].quantization is None:
                tensors[index].quantization = schema.QuantizationParametersT()
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


def _builtin(graph, operator) -> int:
    """The builtin operator code of `operator` (schema.BuiltinOperator value)."""
    code = graph.operatorCodes[operator.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _new_operator(graph, builtin: int, inputs, outputs):
    """A new OperatorT of kind `builtin`, its operator code added to `graph` if missing."""
    from tensorflow.lite.python import schema_py_generated as schema

    for index, code in enumerate(graph.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            break
    else:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
        graph.operatorCodes.append(code)
        index = len(graph.operatorCodes) - 1
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = index, list(inputs), list(outputs)
    return operator


def _without_range(tensor, buffer) -> bool:
    """A computed tensor (no constant data) without a calibrated min / max."""
    quantization = tensor.quantization
    has_range = quantization is not None and quantization.min is not None and \
        np.size(quantization.min) > 0
    return not has_range and (buffer.data is None or len(buffer.data) == 0)


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


def size_breakdown(flatbuffer: bytes) -> dict:
    """Where a .tflite file's bytes go, in bytes.

    Returns:
        {"file": total, "constants": {tensor type name: bytes of constant data},
         "quantization": bytes of quantization parameters (per channel: a float32 scale and
         an int64 zero point, also for int32 biases; calibrated min / max),
         "names": bytes of tensor names, "rest": the graph itself (ops, shapes, tables)}.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    type_names = {value: name for name, value in vars(schema.TensorType).items()
                  if not name.startswith("_")}
    constants, seen, quantization, names = {}, set(), 0, 0
    for subgraph in graph.subgraphs:
        for tensor in subgraph.tensors:
            names += len(tensor.name or b"")
            parameters = tensor.quantization
            if parameters is not None:
                for field, width in (("scale", 4), ("zeroPoint", 8), ("min", 4), ("max", 4)):
                    values = getattr(parameters, field)
                    quantization += 0 if values is None else width * int(np.size(values))
            data = graph.buffers[tensor.buffer].data
            if tensor.buffer in seen or data is None or len(data) == 0:
                continue
            seen.add(tensor.buffer)
            kind = type_names[tensor.type]
            constants[kind] = constants.get(kind, 0) + len(data)
    return {"file": len(flatbuffer), "constants": constants, "quantization": quantization,
            "names": names,
            "rest": len(flatbuffer) - sum(constants.values()) - quantization - names}
