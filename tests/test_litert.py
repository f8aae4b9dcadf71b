"""LiteRT export (tfmm.export.litert) of tfmm models, run with ai-edge-litert
(tfmm.export.litert_runner): float32 gives the Keras model's outputs, int8 stays close to it and
keeps a trained tiny task's accuracy, evaluate.py scores a .tflite file as it scores the run's
Keras model, export.py writes each format."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny
from tfmm.config import config_from_dict
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.export.litert import convert_to_litert, representative_features
from tfmm.export.litert_graph_edits import size_breakdown
from tfmm.export.litert_runner import LiteRTModel
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.run_folder import RunFolder
from tfmm.training.runner import run_training

# int8 models may lose this much accuracy on the trained tiny task (32 rows; 1 row = 0.03125).
INT8_ACCURACY_TOLERANCE = 0.0625
# dynamic-range int8 logits of the untrained tiny model: within this share of the float32
# logits' spread.
INT8_LOGIT_TOLERANCE = 0.1


def _features(config, manifest):
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    pipeline = ExamplePipeline(read_manifest_for_config(manifest, config.data), preprocessor,
                               "multiclass")
    features, labels = next(iter(pipeline.batches(32)))
    return preprocessor, pipeline, {name: value.numpy() for name, value in features.items()}, \
        labels.numpy()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, tiny_preset, tiny_manifest):
    """A text+audio model (dropout 0.1, the log-Mel front end inside) saved as a run folder, its
    float32 LiteRT file, the tiny manifest's features and the Keras logits on them."""
    root = tmp_path_factory.mktemp("litert_untrained")
    # A head wide enough (32 x 64 kernel) for dynamic-range quantization, which leaves tensors
    # of up to 1024 entries in float.
    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(root / "run"),
                              model={"dropout": 0.1, "projection_dim": 32,
                                     "head_hidden_dim": 64})
    config = config_from_dict(values).validate()
    keras.utils.set_random_seed(5)
    model = build_multimodal_model(config, 2)
    folder = RunFolder(config.training.run_dir)
    os.makedirs(folder.path)
    folder.write_config(config)
    folder.write_run_info({"task": "multiclass", "labels": list(tiny.LABELS)})
    folder.save_model(model)
    preprocessor, pipeline, features, labels = _features(config, tiny_manifest)
    return dict(config=config, model=model, pipeline=pipeline, features=features,
                labels=labels, logits=model(features, training=False)["logits"].numpy(),
                manifest=tiny_manifest, preprocessor=preprocessor,
                float32=convert_to_litert(model, "none"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_preset):
    """The same model trained (train.py's runner) until it tells the labels apart."""
    root = tmp_path_factory.mktemp("litert_trained")
    manifest = tiny.write_manifest(str(root / "data"), num_rows=32)
    values = tiny.tiny_config(tiny_preset, manifest, str(root / "run"),
                              data={"test_manifest": manifest}, epochs=5, jit_compile="false",
                              model={"dropout": 0.1})
    config = config_from_dict(values).validate()
    run_training(config, log=lambda line: None)
    model = keras.saving.load_model(os.path.join(config.training.run_dir, "model.keras"))
    preprocessor, pipeline, features, labels = _features(config, manifest)
    return dict(config=config, model=model, pipeline=pipeline, features=features, labels=labels,
                logits=model(features, training=False)["logits"].numpy(), manifest=manifest)


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, -1) == labels))


def test_float32_litert_matches_keras_on_the_same_inputs(untrained):
    litert = LiteRTModel(untrained["float32"])
    assert set(litert.input_specs) == set(untrained["features"])
    logits = litert.predict(untrained["features"])["logits"]
    np.testing.assert_allclose(logits, untrained["logits"], atol=1e-4, rtol=1e-4)
    # Batch 1 (the interpreter resizes its inputs) gives the same row.
    one = litert.predict({name: value[3:4] for name, value in untrained["features"].items()})
    np.testing.assert_allclose(one["logits"], untrained["logits"][3:4], atol=1e-4, rtol=1e-4)
    # No Flex (TensorFlow) ops: the log-Mel front end converts to builtin ops.
    assert "Flex" not in str(untrained["float32"])


def test_raw_inputs_go_through_the_training_preprocessor(untrained):
    litert = LiteRTModel(untrained["float32"])
    rows = tiny.read_jsonl(untrained["manifest"])[:4]
    folder = os.path.dirname(untrained["manifest"])
    raw = {"text": [row["text"] for row in rows],
           "audio": [open(os.path.join(folder, row["audio"]), "rb").read() for row in rows]}
    logits = litert.predict_raw(untrained["preprocessor"], raw)["logits"]
    np.testing.assert_allclose(logits, untrained["logits"][:4], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("quantize", [pytest.param("dynamic", marks=pytest.mark.slow), "int8"])
def test_quantized_models_run_on_int8_tensors_and_stay_close(untrained, quantize):
    """Both quantizations write int8 tensors and give logits close to float32 (full int8 fell
    to constant logits before mask values were taken out of its calibrated ranges)."""
    representative = representative_features(untrained["pipeline"].batches(8), 16)
    flatbuffer = convert_to_litert(untrained["model"], quantize, representative)
    if quantize == "int8":  # every weight in int8 (the tiny model is mostly graph, not weights)
        assert len(flatbuffer) < 0.9 * len(untrained["float32"])
    litert = LiteRTModel(flatbuffer)
    logits = litert.predict(untrained["features"])["logits"]
    assert logits.shape == untrained["logits"].shape and np.all(np.isfinite(logits))
    spread = np.ptp(untrained["logits"])
    assert spread > 0 and np.max(np.abs(logits - untrained["logits"])) <= (
        INT8_LOGIT_TOLERANCE * spread)
    int8_tensors = [detail for detail in litert.interpreter.get_tensor_details()
                    if detail["dtype"] == np.int8]
    assert int8_tensors  # int8 weights (dynamic) and activations (int8) inside
    # The file's bytes: int8 constants, per-channel scales / zero points, names, the graph.
    breakdown = size_breakdown(flatbuffer)
    assert breakdown["constants"]["INT8"] > 0 and breakdown["quantization"] > 0
    assert min(breakdown["names"], breakdown["rest"]) > 0 and breakdown["file"] == len(flatbuffer)
    assert size_breakdown(untrained["float32"])["quantization"] == 0


def _max_error(model, inputs, quantize, examples):
    """Largest |LiteRT - Keras| over `inputs` and the Keras outputs' spread."""
    expected = keras.ops.convert_to_numpy(model({"inputs": inputs})["outputs"])
    representative = (lambda: ({"inputs": row[None]} for row in examples)) if examples is not None \
        else None
    flatbuffer = convert_to_litert(model, quantize, representative)
    outputs = LiteRTModel(flatbuffer).predict({"inputs": inputs})
    return np.max(np.abs(outputs["outputs"] - expected)), np.ptp(expected)


def _named_model(inputs, outputs):
    return keras.Model({"inputs": inputs}, {"outputs": outputs})


def test_full_int8_ignores_the_minus_infinity_padding_of_max_pooling():
    """MaxPooling2x2 pads odd sizes with -inf: calibrated with it, the convolution before it
    shared a -3.4e38.. scale and every output became one int8 code."""
    from tfmm.models.pooling import MaxPooling2x2

    keras.utils.set_random_seed(1)
    inputs = keras.Input((5, 5, 1), name="inputs")
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    features = keras.layers.Flatten()(MaxPooling2x2()(features))
    model = _named_model(inputs, keras.layers.Dense(3)(features))
    data = np.random.default_rng(0).normal(size=(96, 5, 5, 1)).astype("float32")
    error, spread = _max_error(model, data[64:], "int8", data[:64])
    assert spread > 0 and error <= INT8_LOGIT_TOLERANCE * spread


def test_full_int8_keeps_a_masked_attention():
    """Keras' masked softmax writes the float32 minimum into masked scores: with that value in
    the calibrated range every real score became one int8 code (uniform attention)."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6, 8), name="inputs")
    mask = keras.ops.arange(6)[None, None, :] < 4  # the last two positions are padding
    attended = keras.layers.MultiHeadAttention(2, 4)(inputs, inputs, attention_mask=mask)
    model = _named_model(inputs, keras.layers.Flatten()(attended[:, :4]))
    data = np.random.default_rng(1).normal(size=(96, 6, 8)).astype("float32")
    error, spread = _max_error(model, data[64:], "int8", data[:64])
    assert spread > 0 and error <= INT8_LOGIT_TOLERANCE * spread


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_log_mel_front_end_stays_float(quantize):
    """The quickstart's 129 x 64 Mel matrix: int8 (dynamic range: its int8 kernel quantizes the
    power spectrum per call) sent quiet bands to log(log_offset), wrong by orders of
    magnitude; both quantizations keep the front end in float32."""
    from tfmm.models.log_mel_spectrogram import LogMelSpectrogram

    inputs = keras.Input((2000,), name="inputs")
    model = _named_model(inputs, LogMelSpectrogram(8000, 256, 128, 64)(inputs))
    rng = np.random.default_rng(3)
    time = np.arange(2000) / 8000
    tones = np.sin(2 * np.pi * rng.uniform(200, 2000, (40, 1)) * time)  # a loud band each
    data = (tones + 1e-3 * rng.normal(size=(40, 2000))).astype("float32")
    data[:, 1500:] = 0.0  # silence, as the zero-padded spoken digits
    error, _ = _max_error(model, data[32:], quantize, data[:32] if quantize == "int8" else None)
    assert error < 0.05  # natural-log units


def _operators(flatbuffer):
    """[(builtin operator name, input tensor types, output tensor types)] of a .tflite file."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    kinds = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    types = {value: name for name, value in vars(schema.TensorType).items()
             if not name.startswith("_")}
    tensors = graph.subgraphs[0].tensors
    found = []
    for op in graph.subgraphs[0].operators:
        code = graph.operatorCodes[op.opcodeIndex]
        found.append((kinds[max(code.builtinCode, code.deprecatedBuiltinCode)],
                      [types[tensors[i].type] for i in op.inputs if i >= 0],
                      [types[tensors[i].type] for i in op.outputs]))
    return found


def _small_bert_block():
    """Dense -> layer normalisation -> masked self-attention -> residual -> layer norm -> Dense,
    with a few outlier channels in its activations (what the fine-tuned BERT has)."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6, 8), name="inputs")
    hidden = keras.layers.Dense(16)(inputs)
    hidden = keras.layers.LayerNormalization()(hidden)
    mask = keras.ops.arange(6)[None, None, :] < 4  # the last two positions are padding
    attended = keras.layers.MultiHeadAttention(2, 8)(hidden, hidden, attention_mask=mask)
    hidden = keras.layers.LayerNormalization()(hidden + attended)
    return _named_model(inputs, keras.layers.Flatten()(keras.layers.Dense(4)(hidden)[:, :4]))


def test_int16x8_has_int16_activations_int8_weights_and_stays_closer_than_int8():
    """16x8: fully connected layers read and write int16 tensors with int8 weights; the
    variance (SQUARED_DIFFERENCE, no int16 kernel) runs in float between DEQUANTIZE and
    QUANTIZE; with an outlier channel in the inputs, full int8 misses float32 by more than
    INT8_LOGIT_TOLERANCE of the outputs' spread (measured: 0.30), 16x8 stays within it (0.06)."""
    model = _small_bert_block()
    rng = np.random.default_rng(4)
    data = rng.normal(size=(96, 6, 8)).astype("float32")
    data[..., 0] *= 30.0  # an outlier channel: one int8 scale per tensor spans it
    representative = lambda: ({"inputs": row[None]} for row in data[:64])  # noqa: E731
    flatbuffer = convert_to_litert(model, "int16x8", representative)
    operators = _operators(flatbuffer)
    dense = [op for op in operators if op[0] == "FULLY_CONNECTED"]
    assert dense and all(op[1][:2] == ["INT16", "INT8"] and op[2] == ["INT16"] for op in dense)
    variances = [index for index, op in enumerate(operators) if op[0] == "SQUARED_DIFFERENCE"]
    assert variances
    for index in variances:
        assert operators[index][1] == ["FLOAT32", "FLOAT32"]
        assert operators[index - 1][0] == "DEQUANTIZE" and operators[index + 1][0] == "QUANTIZE"
    error_16x8, spread = _max_error(model, data[64:], "int16x8", data[:64])
    error_int8, _ = _max_error(model, data[64:], "int8", data[:64])
    assert spread > 0 and error_16x8 <= INT8_LOGIT_TOLERANCE * spread < error_int8


def test_int16x8_keeps_a_large_embedding_table_in_int8():
    """The 16x8 quantizer writes a GATHER's table in int16; a table of 1024 entries or more is
    stored in int8 and its gathered rows are requantized to int16 (QUANTIZE), close to
    float32."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((5,), dtype="int32", name="inputs")
    embedded = keras.layers.Embedding(200, 8)(inputs)  # 1600 entries
    model = _named_model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(embedded)))
    data = np.random.default_rng(6).integers(0, 200, size=(96, 5)).astype("int32")
    flatbuffer = convert_to_litert(model, "int16x8",
                                   lambda: ({"inputs": row[None]} for row in data[:64]))
    operators = _operators(flatbuffer)
    gathers = [index for index, op in enumerate(operators)
               if op[0] == "GATHER" and op[1][0] == "INT8"]
    assert len(gathers) == 1 and operators[gathers[0]][2] == ["INT8"]
    assert operators[gathers[0] + 1] == ("QUANTIZE", ["INT8"], ["INT16"])
    assert size_breakdown(flatbuffer)["constants"]["INT8"] >= 1600
    error, spread = _max_error(model, data[64:], "int16x8", data[:64])
    assert spread > 0 and error <= INT8_LOGIT_TOLERANCE * spread


@pytest.mark.parametrize("quantize", ["int8", "int16x8"])
def test_calibrated_modes_without_representative_examples_are_refused(untrained, quantize):
    with pytest.raises(ValueError, match="representative"):
        convert_to_litert(untrained["model"], quantize)


def test_evaluate_py_scores_a_tflite_file_like_the_keras_model(untrained, tmp_path, capsys):
    """The .tflite file goes through the Keras model's evaluation code: the same report fields
    and the same log lines (the copy it had before printed its own and dropped one)."""
    import re

    import evaluate

    run_dir = untrained["config"].training.run_dir
    path = os.path.join(run_dir, "litert", "model_float32.tflite")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(untrained["float32"])
    out = str(tmp_path / "reports")
    capsys.readouterr()
    assert evaluate.main([run_dir, "--data", untrained["manifest"], "--out", out,
                          "--name", "keras"]) == 0
    keras_lines = capsys.readouterr().out.splitlines()
    assert evaluate.main([path, "--data", untrained["manifest"], "--out", out,
                          "--name", "litert"]) == 0
    litert_lines = capsys.readouterr().out.splitlines()
    without_figures = lambda lines: [re.sub(r"[0-9.]+", "#", line) for line in lines]  # noqa
    assert without_figures(line.replace("litert", "keras") for line in litert_lines) == (
        without_figures(keras_lines))
    keras_report = json.load(open(os.path.join(out, "keras_report.json")))
    litert_report = json.load(open(os.path.join(out, "litert_report.json")))
    assert set(litert_report) == set(keras_report)
    assert litert_report["num_examples"] == 32
    assert litert_report["accuracy"] == keras_report["accuracy"]
    assert litert_report["loss"] == pytest.approx(keras_report["loss"], abs=1e-4)


def test_evaluate_py_names_a_tflite_file_outside_a_run_in_one_line(tmp_path, capsys):
    import evaluate

    path = tmp_path / "model.tflite"
    path.write_bytes(b"not a model")
    assert evaluate.main([str(path), "--data", str(tmp_path / "x.jsonl")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "no run folder" in error and "\n" not in error


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_int8_models_keep_a_trained_tasks_accuracy(trained, quantize):
    keras_accuracy = _accuracy(trained["logits"], trained["labels"])
    assert keras_accuracy >= 0.9  # the task was learnt
    representative = representative_features(trained["pipeline"].batches(8), 16)
    litert = LiteRTModel(convert_to_litert(trained["model"], quantize, representative))
    logits = litert.predict(trained["features"])["logits"]
    assert _accuracy(logits, trained["labels"]) >= keras_accuracy - INT8_ACCURACY_TOLERANCE


@pytest.mark.slow
def test_export_py_writes_full_int8_from_training_examples(trained, capsys):
    import export

    run_dir = trained["config"].training.run_dir
    assert export.main([run_dir, "--format", "litert", "--quantize", "int8",
                        "--representative", "8"]) == 0
    path = os.path.join(run_dir, "litert", "model_int8.tflite")
    assert "wrote " + path in capsys.readouterr().out
    litert = LiteRTModel(path)
    details = litert.interpreter.get_tensor_details()
    assert any(detail["dtype"] == np.int8 for detail in details)  # int8 activations inside
    logits = litert.predict(trained["features"])["logits"]
    keras_accuracy = _accuracy(trained["logits"], trained["labels"])
    assert _accuracy(logits, trained["labels"]) >= keras_accuracy - INT8_ACCURACY_TOLERANCE


@pytest.mark.slow
def test_export_py_keras_int8_savedmodel_serves_raw_inputs(trained, tmp_path):
    import export

    out = str(tmp_path / "keras_int8" / "1")
    assert export.main([trained["config"].training.run_dir, "--format", "savedmodel",
                        "--quantize", "keras-int8", "--out", out]) == 0
    rows = tiny.read_jsonl(trained["manifest"])
    folder = os.path.dirname(trained["manifest"])
    served = tf.saved_model.load(out).signatures["serving_default"](
        text=tf.constant([row["text"] for row in rows]),
        audio=tf.constant([open(os.path.join(folder, row["audio"]), "rb").read()
                           for row in rows]))
    assert set(served) == {"probabilities", "label", "score"}
    predicted = [label.decode() for label in served["label"].numpy()]
    accuracy = np.mean([label == row["label"] for label, row in zip(predicted, rows)])
    keras_accuracy = _accuracy(trained["logits"], trained["labels"])
    assert accuracy >= keras_accuracy - INT8_ACCURACY_TOLERANCE


@pytest.mark.parametrize("arguments, message", [
    (["--format", "litert", "--quantize", "keras-int8"], "--format litert takes --quantize"),
    (["--format", "savedmodel", "--quantize", "dynamic"], "--format savedmodel takes"),
    (["--quantize", "int8", "--representative", "0"], "--representative must be > 0"),
    (["--quantize", "int16x8", "--representative", "0"], "--representative must be > 0"),
])
def test_export_py_rejects_pairs_it_cannot_write_in_one_line(arguments, message, tmp_path,
                                                            capsys):
    import export

    assert export.main([str(tmp_path), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
