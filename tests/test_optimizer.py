"""AdamW as tfmm builds it (tfmm/training/optimizer.py): the warmup-then-decay schedule's values
and which weights are decayed (kernels) or not (norm scales and offsets, biases, embeddings)."""

import math

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfmm.config import TrainingConfig
from tfmm.training.optimizer import WarmupThenDecay, build_optimizer


@pytest.mark.parametrize("decay, expected", [
    # step: value. Warmup 10 steps to peak 1.0, then down to 0.1 at step 100 (and after).
    ("cosine", {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0,
                28: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2)), 55: 0.55, 100: 0.1,
                150: 0.1}),
    ("linear", {0: 0.1, 9: 1.0, 10: 1.0, 28: 0.1 + 0.9 * 0.8, 55: 0.55, 100: 0.1, 150: 0.1}),
    ("constant", {0: 0.1, 9: 1.0, 10: 1.0, 55: 1.0, 100: 1.0}),
])
def test_warmup_then_decay_values(decay, expected):
    schedule = WarmupThenDecay(1.0, total_steps=100, warmup_steps=10, decay=decay,
                               final_fraction=0.1)
    for step, value in expected.items():
        assert float(schedule(step)) == pytest.approx(value, abs=1e-6), (decay, step)
    assert WarmupThenDecay.from_config(schedule.get_config()).get_config() == \
        schedule.get_config()
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        WarmupThenDecay(1.0, total_steps=10, warmup_steps=20)


def test_the_optimizer_follows_the_configured_schedule():
    config = TrainingConfig(learning_rate=2e-3, warmup_fraction=0.1, decay="cosine",
                            weight_decay=0.01, clip_norm=1.0)
    optimizer = build_optimizer(config, total_steps=200)  # warmup: 20 steps
    rates = {}
    for step in (0, 19, 20, 110, 199):
        optimizer.iterations.assign(step)
        rates[step] = float(optimizer.learning_rate)
    assert rates[0] == pytest.approx(2e-3 / 20)
    assert rates[19] == pytest.approx(2e-3) and rates[20] == pytest.approx(2e-3)
    assert rates[110] == pytest.approx(1e-3, rel=1e-5)  # halfway through the cosine
    assert rates[199] < 1e-6 + 2e-3 * 0.001
    assert optimizer.global_clipnorm == 1.0


def _expected_decay(model) -> dict:
    """{id(variable): True (decayed) / False (not)} from what each variable IS (its layer type and
    attribute), not from its name, so a name pattern that misses one shows here."""
    from tfmm.models.fusion.attention_fusion import AttentionFusion
    from tfmm.models.fusion.attention_pooling import AttentionPooling
    from tfmm.models.fusion.concat_fusion import ConcatFusion

    norms = (keras.layers.LayerNormalization, keras.layers.BatchNormalization)
    embeddings = (keras.layers.Embedding, keras_hub.layers.PositionEmbedding)
    own_embeddings = {AttentionFusion: "modality_embeddings", AttentionPooling: "query",
                      ConcatFusion: "absent_embeddings"}
    expected = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, norms + embeddings):
            expected.update({id(variable): False for variable in layer._trainable_variables})
            continue
        if getattr(layer, "bias", None) is not None:
            expected[id(layer.bias)] = False
        if getattr(layer, "kernel", None) is not None:
            expected[id(layer.kernel)] = True
        for kind, attribute in own_embeddings.items():
            if isinstance(layer, kind):
                expected[id(getattr(layer, attribute))] = False
    return expected


@pytest.mark.parametrize("fusion", ["attention", "concat"])
def test_weight_decay_skips_norms_biases_and_embeddings(fusion, tiny_preset, tiny_manifest,
                                                        tmp_path):
    from helpers import tiny
    from tfmm.config import config_from_dict
    from tfmm.models.multimodal_model import build_multimodal_model

    values = tiny.tiny_config(tiny_preset, tiny_manifest, str(tmp_path),
                              model={"fusion": fusion}, weight_decay=0.1, learning_rate=0.1,
                              clip_norm=0.0)
    config = config_from_dict(values).validate()
    keras.utils.set_random_seed(0)
    model = build_multimodal_model(config, 2)
    variables = model.trainable_variables
    expected = _expected_decay(model)
    unclassified = [variable.path for variable in variables if id(variable) not in expected]
    assert not unclassified, unclassified
    assert any(expected[id(variable)] for variable in variables)
    assert any(not expected[id(variable)] for variable in variables)

    # One AdamW step with zero gradients: Adam's part moves nothing, so exactly the decayed
    # variables change (each by the factor 1 - learning_rate * weight_decay).
    optimizer = build_optimizer(config.training, total_steps=10)
    before = [variable.numpy().copy() for variable in variables]
    optimizer.apply_gradients([(tf.zeros_like(variable), variable) for variable in variables])
    for variable, old in zip(variables, before):
        if expected[id(variable)]:
            np.testing.assert_allclose(variable.numpy(), old * (1 - 0.1 * 0.1), rtol=1e-5,
                                       err_msg=variable.path)
        else:
            np.testing.assert_array_equal(variable.numpy(), old, err_msg=variable.path)
