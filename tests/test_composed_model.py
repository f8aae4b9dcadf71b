"""`MultimodalModel`: its encoders, modality dropout, fusion and head are attributes, the very
layers its graph calls; saved and reloaded it keeps them; feature caching and encoder transfer
use them."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import tiny
from tfmm.config import config_from_dict
from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.modality_dropout import ModalityDropout
from tfmm.models.heads.task_head import TaskHead
from tfmm.models.multimodal_model import MultimodalModel, build_multimodal_model


def _config(tiny_preset, tmp_path, modalities=("text", "audio"), **model):
    """Dropout as users run it: in BERT's layers (the preset), the fusion, head and modalities."""
    values = tiny.tiny_config(tiny_preset, "m.jsonl", str(tmp_path), modalities=modalities,
                              model={"fusion": "attention", "dropout": 0.2,
                                     "modality_dropout": 0.3, **model})
    return config_from_dict(values)


def _inputs(batch_size=4, text_length=8, audio_length=800, image_size=None):
    random = np.random.default_rng(0)
    inputs = {"token_ids": random.integers(5, 30, (batch_size, text_length)).astype("int32"),
              "segment_ids": np.zeros((batch_size, text_length), "int32"),
              "padding_mask": np.ones((batch_size, text_length), "int32"),
              "audio": random.normal(0, 0.1, (batch_size, audio_length)).astype("float32"),
              "text_mask": np.ones(batch_size, "float32"),
              "audio_mask": np.ones(batch_size, "float32")}
    if image_size:
        inputs["image"] = random.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(
            "float32")
        inputs["image_mask"] = np.ones(batch_size, "float32")
    return inputs


def _assert_parts_are_in_the_graph(model):
    """Each attribute is one of the graph's layers, and changing it changes the output."""
    graph_layers = model.layers
    parts = [*model.encoders.values(), model.modality_dropout, model.fusion, model.head]
    assert all(any(part is layer for layer in graph_layers) for part in parts)
    inputs = _inputs()
    kernel = model.head.output_layer.kernel
    saved = kernel.numpy()
    kernel.assign(np.zeros_like(saved))
    logits = np.asarray(model(inputs, training=False)["logits"])
    bias = model.head.output_layer.bias.numpy()
    kernel.assign(saved)
    np.testing.assert_allclose(logits, np.broadcast_to(bias, logits.shape), atol=1e-6)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return tiny.write_bert_preset(str(tmp_path_factory.mktemp("bert_dropout")), dropout=0.2)


def test_parts_are_attributes_and_the_layers_the_graph_calls(preset, tmp_path):
    model = build_multimodal_model(_config(preset, tmp_path), 3)
    assert isinstance(model, MultimodalModel)
    assert model.modalities == ("text", "audio") and list(model.encoders) == ["text", "audio"]
    assert isinstance(model.fusion, AttentionFusion) and model.fusion.dropout == 0.2
    assert isinstance(model.modality_dropout, ModalityDropout)
    assert model.modality_dropout.rate == 0.3
    assert isinstance(model.head, TaskHead) and model.head.task == "multiclass"
    _assert_parts_are_in_the_graph(model)

    # One training step through the whole model moves the weights of every part.
    def weights(layer):
        return [variable.numpy() for variable in layer.trainable_variables]

    parts = {"text": model.encoders["text"], "audio": model.encoders["audio"],
             "fusion": model.fusion, "head": model.head}
    before = {name: weights(part) for name, part in parts.items()}
    optimizer = keras.optimizers.SGD(0.5)
    with tf.GradientTape() as tape:
        logits = model(_inputs(), training=True)["logits"]
        loss = keras.losses.sparse_categorical_crossentropy(
            np.array([0, 1, 2, 0]), logits, from_logits=True)
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    for name, part in parts.items():
        assert any(not np.allclose(old, new) for old, new in zip(before[name], weights(part))), \
            name


def test_saved_model_reloads_with_its_parts_and_outputs(preset, tmp_path):
    config = _config(preset, tmp_path, freeze_audio_encoder=True)
    model = build_multimodal_model(config, 3)
    inputs = _inputs()
    expected = np.asarray(model(inputs, training=False)["logits"])
    model.save(str(tmp_path / "model.keras"))
    # No custom_objects: `import tfmm` registered MultimodalModel and its parts.
    reloaded = keras.saving.load_model(str(tmp_path / "model.keras"))
    assert type(reloaded) is MultimodalModel and reloaded.name == model.name
    assert reloaded.modalities == model.modalities
    assert {name: encoder.name for name, encoder in reloaded.encoders.items()} == \
        {"text": "text_encoder", "audio": "audio_encoder"}
    for part in ("modality_dropout", "fusion", "head"):
        assert getattr(reloaded, part).get_config() == getattr(model, part).get_config()
    assert set(reloaded.input) == set(model.input) and set(reloaded.output) == {"logits"}
    np.testing.assert_array_equal(np.asarray(reloaded(inputs, training=False)["logits"]),
                                  expected)
    # The frozen audio encoder is still frozen: only its projection trains.
    assert {variable.path.split("/")[0] for variable
            in reloaded.encoders["audio"].trainable_variables} == {"audio_projection"}
    _assert_parts_are_in_the_graph(reloaded)
    # The config alone rebuilds the same composition (fresh weights).
    rebuilt = MultimodalModel.from_config(model.get_config())
    assert rebuilt.modalities == model.modalities and rebuilt.head.task == "multiclass"


def test_feature_models_share_the_parts_and_compute_the_model(preset, tmp_path):
    from tfmm.training.feature_cache import build_feature_models

    model = build_multimodal_model(_config(preset, tmp_path, freeze_text_encoder=True), 3)
    extractor, top = build_feature_models(model, ("text",))
    shared = [model.encoders["audio"], model.modality_dropout, model.fusion, model.head,
              model.encoders["text"].get_layer("text_projection")]
    assert all(any(part is layer for layer in top.layers) for part in shared)
    inputs = _inputs()
    features = {name: np.asarray(value) for name, value in extractor(
        {name: inputs[name] for name in extractor.input}, training=False).items()}
    top_inputs = {name: inputs.get(name, features.get(name)) for name in top.input}
    np.testing.assert_allclose(np.asarray(top(top_inputs, training=False)["logits"]),
                               np.asarray(model(inputs, training=False)["logits"]), atol=1e-5)


def test_encoder_transfer_needs_a_multimodal_model(preset, tmp_path):
    from tfmm.models.encoder_transfer import EncoderTransferError, load_encoder_weights

    model = build_multimodal_model(_config(preset, tmp_path), 3)
    audio = keras.Input((800,), name="audio")
    plain = keras.Model(audio, model.encoders["audio"](audio))
    plain.save(str(tmp_path / "plain.keras"))
    with pytest.raises(EncoderTransferError, match="not a tfmm MultimodalModel"):
        load_encoder_weights(model, [str(tmp_path / "plain.keras")])
    image_only = build_multimodal_model(_config(preset, tmp_path, modalities=("image",)), 3)
    image_only.save(str(tmp_path / "image.keras"))
    with pytest.raises(EncoderTransferError, match=r"none of this model's encoders"):
        load_encoder_weights(model, [str(tmp_path / "image.keras")])


MIRRORED_SAVE = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
import keras
import tfmm
from helpers import tiny
from tfmm.config import config_from_dict
from tfmm.models.multimodal_model import MultimodalModel, build_multimodal_model

preset, folder = sys.argv[1:]
values = tiny.tiny_config(preset, "m.jsonl", folder, model={"dropout": 0.2})
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = build_multimodal_model(config_from_dict(values), 2)
inputs = {"token_ids": np.full((2, 8), 5, "int32"), "segment_ids": np.zeros((2, 8), "int32"),
          "padding_mask": np.ones((2, 8), "int32"), "audio": np.full((2, 800), 0.1, "float32"),
          "text_mask": np.ones(2, "float32"), "audio_mask": np.ones(2, "float32")}
expected = np.asarray(model(inputs, training=False)["logits"])
model.save(folder + "/model.keras")
with strategy.scope():
    in_scope = keras.saving.load_model(folder + "/model.keras")
outside = keras.saving.load_model(folder + "/model.keras")
for reloaded in (in_scope, outside):
    assert type(reloaded) is MultimodalModel and reloaded.modalities == ("text", "audio")
    np.testing.assert_allclose(np.asarray(reloaded(inputs, training=False)["logits"]), expected,
                               atol=1e-6)
print("reloaded", strategy.num_replicas_in_sync)
"""


def test_model_built_under_two_mirrored_replicas_saves_and_reloads(preset, tmp_path):
    """Logical devices need a fresh TensorFlow: a subprocess."""
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SAVE, preset, str(tmp_path)],
        cwd=os.path.join(tiny.REPO_ROOT, "tests"), env=tiny.subprocess_env(),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reloaded 2" in result.stdout


@pytest.mark.parametrize("freeze", [False, True])
def test_span_model_keeps_backbone_and_head_through_a_save(preset, tmp_path, freeze):
    from tfmm.models.span_model import SpanLogits, SpanModel, build_span_model
    from tfmm.models.text_encoder import load_bert_backbone

    backbone = load_bert_backbone(preset)  # dropout 0.2
    model = build_span_model(backbone, 8, freeze_backbone=freeze)
    assert isinstance(model, SpanModel) and model.backbone is backbone
    assert isinstance(model.head, SpanLogits)
    text = {name: value for name, value in _inputs().items()
            if name in ("token_ids", "segment_ids", "padding_mask")}
    expected = {key: np.asarray(value) for key, value in model(text, training=False).items()}
    model.save(str(tmp_path / "span.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "span.keras"))
    assert type(reloaded) is SpanModel and reloaded.freeze_backbone == freeze
    assert reloaded.sequence_length == 8 and set(reloaded.output) == set(expected)
    for key, value in reloaded(text, training=False).items():
        np.testing.assert_array_equal(np.asarray(value), expected[key])
    trainable = {variable.path.split("/")[0] for variable in reloaded.trainable_variables}
    assert (trainable == {"span_logits"}) == freeze
    # The head attribute is the graph's head: zeroing its kernel leaves only the bias.
    dense = reloaded.head.dense
    dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
    start = np.asarray(reloaded(text, training=False)["start_logits"])
    np.testing.assert_allclose(start, np.full(start.shape, dense.bias.numpy()[0]), atol=1e-6)
