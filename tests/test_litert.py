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
def test_quantized_models_run_on_int8_tensors_and_dynamic_stays_close(untrained, quantize):
    """Both quantizations write int8 tensors and give finite logits of the right shape; only
    dynamic range is checked for closeness here. Full int8 is NOT close to float32 today (it
    falls to chance on a trained tiny task: the strict xfail
    test_int8_models_keep_a_trained_tasks_accuracy[int8], README "Compressed models")."""
    representative = representative_features(untrained["pipeline"].batches(8), 16)
    flatbuffer = convert_to_litert(untrained["model"], quantize, representative)
    if quantize == "int8":  # every weight in int8 (the tiny model is mostly graph, not weights)
        assert len(flatbuffer) < 0.9 * len(untrained["float32"])
    litert = LiteRTModel(flatbuffer)
    logits = litert.predict(untrained["features"])["logits"]
    assert logits.shape == untrained["logits"].shape and np.all(np.isfinite(logits))
    if quantize == "dynamic":  # float activations: close to float32
        spread = np.ptp(untrained["logits"])
        assert spread > 0 and np.max(np.abs(logits - untrained["logits"])) <= (
            INT8_LOGIT_TOLERANCE * spread)
    # Full int8's activation ranges come from calibration: its accuracy is checked on a trained
    # task (test_int8_models_keep_a_trained_tasks_accuracy), not on random logits.
    int8_tensors = [detail for detail in litert.interpreter.get_tensor_details()
                    if detail["dtype"] == np.int8]
    assert int8_tensors  # int8 weights (dynamic) and activations (int8) inside


def test_int8_without_representative_examples_is_refused(untrained):
    with pytest.raises(ValueError, match="representative"):
        convert_to_litert(untrained["model"], "int8")


def test_evaluate_py_scores_a_tflite_file_like_the_keras_model(untrained, tmp_path):
    import evaluate

    run_dir = untrained["config"].training.run_dir
    path = os.path.join(run_dir, "litert", "model_float32.tflite")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(untrained["float32"])
    out = str(tmp_path / "reports")
    assert evaluate.main([run_dir, "--data", untrained["manifest"], "--out", out,
                          "--name", "keras"]) == 0
    assert evaluate.main([path, "--data", untrained["manifest"], "--out", out,
                          "--name", "litert"]) == 0
    keras_report = json.load(open(os.path.join(out, "keras_report.json")))
    litert_report = json.load(open(os.path.join(out, "litert_report.json")))
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


FULL_INT8_FAILS = pytest.mark.xfail(
    strict=True, reason="full int8 falls to chance on the trained tiny task (README, "
    "'Compressed models'): cause not found yet")


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["dynamic", pytest.param("int8", marks=FULL_INT8_FAILS)])
def test_int8_models_keep_a_trained_tasks_accuracy(trained, quantize):
    keras_accuracy = _accuracy(trained["logits"], trained["labels"])
    assert keras_accuracy >= 0.9  # the task was learnt
    representative = representative_features(trained["pipeline"].batches(8), 16)
    litert = LiteRTModel(convert_to_litert(trained["model"], quantize, representative))
    logits = litert.predict(trained["features"])["logits"]
    assert _accuracy(logits, trained["labels"]) >= keras_accuracy - INT8_ACCURACY_TOLERANCE


@pytest.mark.slow
@FULL_INT8_FAILS
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
])
def test_export_py_rejects_pairs_it_cannot_write_in_one_line(arguments, message, tmp_path,
                                                            capsys):
    import export

    assert export.main([str(tmp_path), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
