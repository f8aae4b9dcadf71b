"""Explanations (issue 15): the model split at the attribution inputs, integrated gradients,
removal importance and the attention fusion's weights, on tiny models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import tiny_config, write_manifest
from tfmm.config import config_from_dict
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import read_manifest_for_config
from tfmm.explain.explain_examples import ExampleExplainer
from tfmm.explain.fusion_attention import attention_weights
from tfmm.explain.integrated_gradients import ExplainMethodError, IntegratedGradients
from tfmm.explain.modality_paths import ModalityPaths
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor


SEED = 0


def _untrained(root, tiny_preset, modalities):
    manifest = write_manifest(str(root), num_rows=8, missing_audio_every=3)
    config = config_from_dict(tiny_config(
        tiny_preset, manifest, str(root / "run"), modalities=modalities,
        data={"optional_modalities": ["audio"]},
        model={"dropout": 0.1, "fusion_num_layers": 2})).validate()
    # Fixed weights: the completeness tolerances hold for this model, whatever ran before it in
    # the same process (the suite runs in several processes in any order).
    keras.utils.set_random_seed(SEED)
    model = build_multimodal_model(config, 2)
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    rows = read_manifest_for_config(manifest, config.data)
    pipeline = ExamplePipeline(rows, preprocessor, "multiclass", cache=False)
    features, _ = next(iter(pipeline.batches(8)))
    return model, features, rows


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, tiny_preset):
    """An untrained text + audio model (attention fusion, 2 layers, dropout 0.1) and a batch of
    8 examples whose third has no audio."""
    return _untrained(tmp_path_factory.mktemp("explain_untrained"), tiny_preset,
                      ("text", "audio"))


@pytest.fixture(scope="module")
def with_image(tmp_path_factory, tiny_preset):
    """The same with an image (ResNet50 at 32 x 32) as well."""
    return _untrained(tmp_path_factory.mktemp("explain_image"), tiny_preset,
                      ("text", "image", "audio"))


def _check_split_model(model, features):
    paths = ModalityPaths(model)
    values = paths.attribution_inputs(features)
    assert values["text"].shape == (8, 8, 8)  # [B, L, BERT hidden]
    if "image" in values:
        assert values["image"].shape == (8, 32, 32, 3)
    assert values["audio"].shape == (8, 11, 16, 1)  # [B, frames, Mel bins, 1]
    # standardised per clip: mean 0, variance 1 over the cells
    np.testing.assert_allclose(tf.reduce_mean(values["audio"], [1, 2, 3]), 0.0, atol=1e-4)
    expected = model(features, training=False)["logits"].numpy()
    split = paths.predict(values, features, paths.masks(features)).numpy()
    np.testing.assert_allclose(split, expected, rtol=1e-4, atol=1e-5)


def test_the_split_model_computes_the_models_outputs(untrained):
    _check_split_model(*untrained[:2])


@pytest.mark.slow
def test_the_split_model_with_an_image_computes_the_models_outputs(with_image):
    _check_split_model(*with_image[:2])


_ATTRIBUTORS = {}


def _attributor(model, steps):
    """One `IntegratedGradients` (one traced function) per model and step count."""
    key = (id(model), steps)
    if key not in _ATTRIBUTORS:
        _ATTRIBUTORS[key] = IntegratedGradients(ModalityPaths(model), "multiclass", steps=steps)
    return _ATTRIBUTORS[key]


def _relative_completeness_errors(model, features, steps) -> list:
    """|sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)| for two examples and
    two classes."""
    attributor = _attributor(model, steps)
    errors = []
    for position in (0, 1):
        one = {key: value[position:position + 1] for key, value in features.items()}
        for index in (0, 1):
            result = attributor(one, index)
            difference = result.score - result.baseline_score
            assert abs(difference) > 1e-4
            errors.append(result.completeness_error() / abs(difference))
    return errors


def test_integrated_gradients_are_complete(untrained):
    """Completeness: the attributions sum to f(x) - f(baseline) up to the quadrature error of
    the trapezoid rule, which shrinks as the steps grow (ReLU and max-pooling kinks make it
    about 1/steps on this model: 77% / 16% / 4% at most) and is within 5% at 256 steps."""
    model, features, _ = untrained
    coarse, fine, finest = (np.array(_relative_completeness_errors(model, features, steps))
                            for steps in (16, 64, 256))
    print("relative completeness errors at 16 / 64 / 256 steps:", coarse, fine, finest)
    assert np.all(finest <= 0.05)
    assert finest.max() < fine.max() < coarse.max()


@pytest.mark.slow
def test_integrated_gradients_converge_with_an_image(with_image):
    """The path through ResNet50 from a black image is far less smooth than text and audio: on
    the first example, 32 steps left an error of 0.0136 on a difference of 0.0116 here, 256
    steps 0.0022. Asked: the error shrinks at least 3x from 32 to 256 steps and is then under a
    quarter of the difference (a known limit: raise --steps with images)."""
    model, features, _ = with_image
    one = {key: value[:1] for key, value in features.items()}
    coarse, fine = (IntegratedGradients(ModalityPaths(model), "multiclass", steps=steps)(one, 1)
                    for steps in (32, 256))
    assert fine.completeness_error() * 3 <= coarse.completeness_error()
    assert fine.completeness_error() <= 0.25 * abs(fine.score - fine.baseline_score)


def test_attributions_follow_the_explained_class(untrained):
    """For two classes p0 = 1 - p1: the attributions of class 0 are those of class 1 negated."""
    model, features, _ = untrained
    attributor = _attributor(model, 16)
    one = {key: value[:1] for key, value in features.items()}
    first, second = attributor(one, 0), attributor(one, 1)
    for name in first.values:
        np.testing.assert_allclose(first.values[name], -second.values[name], atol=1e-6)


def test_gradient_x_input_and_bad_settings(untrained):
    model, features, _ = untrained
    paths = ModalityPaths(model)
    one = {key: value[:1] for key, value in features.items()}
    result = IntegratedGradients(paths, "multiclass", method="gradient_x_input")(one, 1)
    assert set(result.values) == {"text", "audio"}
    assert 0 < result.score < 1 and 0 < result.baseline_score < 1
    with pytest.raises(ExplainMethodError, match="--method must be one of"):
        IntegratedGradients(paths, "multiclass", method="saliency")
    with pytest.raises(ExplainMethodError, match="--steps must be >= 1"):
        IntegratedGradients(paths, "multiclass", steps=0)


def test_fusion_attention_sums_to_one_over_present_modalities(untrained):
    model, features, _ = untrained
    features = dict(features)  # the second example without text: no example lacks both
    features["text_mask"] = tf.constant([1, 0, 1, 1, 1, 1, 1, 1], tf.float32)
    weights = {name: value.numpy() for name, value in
               attention_weights(ModalityPaths(model), features).items()}
    assert set(weights) == {"fusion_transformer_0", "fusion_transformer_1", "fusion_pooling"}
    present = np.stack([features[name + "_mask"].numpy() for name in ("text", "audio")],
                       1)  # [B, M]
    assert not present[2, 1] and not present[1, 0]  # the third example has no audio
    for name, value in weights.items():
        if name == "fusion_pooling":
            assert value.shape == (8, 2, 2)  # [B, heads, M]
            value = value[:, :, None, :]
        assert value.shape[-1] == 2
        keys_present = present[:, None, None, :].astype(bool)
        np.testing.assert_allclose(value.sum(-1), 1.0, atol=1e-5)
        assert np.all(value[np.broadcast_to(~keys_present, value.shape)] == 0.0)
        assert np.all(value[np.broadcast_to(keys_present, value.shape)] > 0.0)


def test_the_fusion_default_output_is_unchanged(untrained):
    model, features, _ = untrained
    paths = ModalityPaths(model)
    tokens = tf.random.normal((4, 2, 16), seed=1)
    masks = tf.constant([[1, 1], [1, 0], [0, 1], [1, 1]], tf.float32)
    plain = model.fusion(tokens, masks)
    pooled, weights = model.fusion(tokens, masks, return_attention_scores=True)
    np.testing.assert_allclose(pooled.numpy(), plain.numpy(), atol=1e-6)
    assert weights["fusion_pooling"].shape == (4, 2, 1, 2)
    assert weights["fusion_transformer_1"].shape == (4, 2, 2, 2)
    assert paths.has_attention


def _check_records(model, features, rows, tiny_preset):
    from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

    explainer = ExampleExplainer(model, "multiclass", load_bert_tokenizer(tiny_preset), steps=2)
    features = {key: value[:3] for key, value in features.items()}  # the third has no audio
    explanations = explainer.explain_batch(features, rows.rows[:3], ("high", "low"))
    assert len(explanations) == 3
    probabilities = tf.nn.softmax(model(features)["logits"]).numpy()
    for position, explanation in enumerate(explanations):
        record = explanation.record
        index = ("high", "low").index(record["explained"])
        assert record["score"] == pytest.approx(probabilities[position, index], abs=1e-5)
        present = {name for name in model.modalities
                   if features[name + "_mask"][position] > 0}
        assert present == (set(model.modalities) - {"audio"} if position == 2
                           else set(model.modalities))  # the third example has no audio
        for name in model.modalities:
            if name not in present or present == {name}:
                assert record["removal"][name] is None  # nothing to remove, or nothing left
                continue
            removed = dict(features)
            removed[name + "_mask"] = tf.zeros_like(features[name + "_mask"])
            without = tf.nn.softmax(model(removed)["logits"]).numpy()[position, index]
            assert record["removal"][name] == pytest.approx(
                probabilities[position, index] - without, abs=1e-5)
        words = [token for token, _ in record["text_tokens"]]
        assert words[0] == "[CLS]" and words[-1] == "[SEP]"
        if "image" in model.modalities:
            assert explanation.arrays["image_attribution"].shape == (32, 32)
        assert explanation.arrays["log_mel_attribution"].shape == (11, 16)
        assert explanation.arrays["log_mel"].shape == (11, 16)


def test_removal_importance_and_records(untrained, tiny_preset):
    _check_records(*untrained, tiny_preset)


@pytest.mark.slow
def test_removal_importance_and_records_with_an_image(with_image, tiny_preset):
    _check_records(*with_image, tiny_preset)
