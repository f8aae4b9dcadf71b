"""Edits of LiteRT flatbuffers that the converter does not make itself: mask values out of the
calibrated ranges, the log-Mel front end kept in float, int16 operations without a kernel run in
float, embedding tables stored in int8; and where a file's bytes go.

`tfmm.export.litert.convert_to_litert` applies them; the edits take and return a .tflite file's
bytes (edited through `flatbuffer_utils`' object API).
"""

import numpy as np

# A calibrated range this wide holds a mask value (-inf, -1e9, the float32 minimum), not data.
SENTINEL_RANGE = 1e6
# Layers full int8 keeps in float32 (matched in the converted op names).
FLOAT_SCOPES = ("log_mel_spectrogram",)


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
