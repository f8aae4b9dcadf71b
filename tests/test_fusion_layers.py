"""The fusion layers on their own: masks (absent modalities, padding tokens) cannot change the
output, attention weights on them are 0, configs round-trip, TFN / LMF shapes and the LMF rank,
the image token grid; in float32 and mixed bfloat16, compiled with XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmm.models.fusion.attention_fusion import AttentionFusion
from tfmm.models.fusion.concat_fusion import ConcatFusion
from tfmm.models.fusion.cross_attention_fusion import CrossAttentionFusion
from tfmm.models.fusion.gated_fusion import GatedFusion
from tfmm.models.fusion.late_fusion import LateFusion
from tfmm.models.fusion.low_rank_fusion import LowRankFusion
from tfmm.models.fusion.tensor_fusion import TensorFusion
from tfmm.models.heads.late_fusion_head import LateFusionHead
from tfmm.models.token_projection import TokenProjection

WIDTH = 8
# Example 0 lacks modality 1, example 1 lacks modality 2, example 2 has all three.
MODALITY_MASKS = np.array([[1, 0, 1], [1, 1, 0], [1, 1, 1]], "float32")
TOKEN_LENGTHS = (5, 4, 3)  # text, image, audio tokens
# Padding: example 0's text has 2 real tokens, example 1's 4, example 2's 5.
TEXT_LENGTHS = (2, 4, 5)


class LateModel(keras.layers.Layer):
    """LateFusion and its LateFusionHead as one callable for the tests."""

    def __init__(self, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.fusion = LateFusion(dtype=self.dtype_policy)
        self.head = LateFusionHead("multiclass", 3, 3, hidden_dim=8, dropout=dropout,
                                   dtype=self.dtype_policy)

    def call(self, embeddings, masks, training=None):
        return self.head(self.fusion(embeddings, masks), masks, training=training)


POOLED = {
    "concat": lambda dtype: ConcatFusion(dtype=dtype),
    "attention": lambda dtype: AttentionFusion(num_heads=2, dropout=0.1, dtype=dtype),
    "tensor": lambda dtype: TensorFusion(3, WIDTH, dropout=0.1, dtype=dtype),
    "low_rank": lambda dtype: LowRankFusion(3, WIDTH, rank=2, dtype=dtype),
    "gated": lambda dtype: GatedFusion(dtype=dtype),
    "late": lambda dtype: LateModel(dtype=dtype),
}
# (mode, pooling, summary_tokens, pooled_skip)
TOKEN_VARIANTS = [(mode, pooling, False, False) for mode in ("single_stream", "co_attention")
                  for pooling in ("cls", "attention")]
TOKEN_VARIANTS += [("single_stream", "cls", True, False),
                   ("co_attention", "attention", True, False),
                   ("single_stream", "attention", True, True),
                   ("co_attention", "cls", False, True)]
# XLA-compiled bfloat16 for four of them (each mode, pooling, summary and skip setting at least
# once: compiling is slow).
XLA_VARIANTS = (("single_stream", "cls", False, False), ("co_attention", "attention", False, False),
                ("single_stream", "cls", True, False), ("single_stream", "attention", True, True))


def pooled_inputs(seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(3, 3, WIDTH)), tf.float32)


def token_inputs(seed=0):
    random = np.random.default_rng(seed)
    tokens = [tf.constant(random.normal(size=(3, length, WIDTH)), tf.float32)
              for length in TOKEN_LENGTHS]
    token_masks = [tf.constant(np.arange(5)[None] < np.array(TEXT_LENGTHS)[:, None], tf.float32),
                   tf.ones((3, 4)), tf.ones((3, 3))]
    return tokens, token_masks


def hidden_change(values, masks):
    """`values` with every position whose mask is 0 replaced by large random numbers."""
    noise = tf.constant(np.random.default_rng(9).normal(size=values.shape) * 100, tf.float32)
    masks = tf.reshape(masks, masks.shape + (1,) * (len(values.shape) - len(masks.shape)))
    return values * masks + noise * (1 - masks)


def compiled(function):
    return tf.function(function, jit_compile=True)


def assert_ignores_hidden_values(make_layer, inputs, changed, scaled, hidden, xla=True):
    """The claim on the settings users run: float32 and mixed bfloat16 (the latter compiled with
    XLA, unless `xla` is False) at inference give bit-identical outputs when the hidden values
    change; in training (dropout on) the gradient on every hidden value is exactly 0. `inputs` /
    `changed` / `scaled` are the fusion's first argument (a present value scaled: the output
    changes)."""
    settings = [("float32", lambda function: function)]
    settings += [("mixed_bfloat16", compiled)] if xla else []
    for dtype, run in settings:
        layer = make_layer(dtype)
        forward = run(lambda values: layer(values, training=False))
        np.testing.assert_array_equal(forward(inputs), forward(changed))
        assert not np.allclose(forward(inputs), forward(scaled))
    layer = make_layer("float32")
    watched = tf.nest.map_structure(tf.identity, inputs)
    with tf.GradientTape() as tape:
        tape.watch(watched)
        loss = tf.reduce_sum(tf.cast(layer(watched, training=True), tf.float32) ** 2)
    for grad, mask in zip(tf.nest.flatten(tape.gradient(loss, watched)), hidden):
        grad = grad.numpy()
        mask = np.broadcast_to(np.reshape(mask, mask.shape + (1,) * (grad.ndim - mask.ndim)),
                               grad.shape)
        assert np.all(grad[mask == 0] == 0) and np.any(grad[mask == 1] != 0)


class Bound(keras.layers.Layer):
    """A fusion layer with its other call arguments bound: values -> output."""

    def __init__(self, layer, *arguments, **kwargs):
        super().__init__(dtype=layer.dtype_policy, **kwargs)
        self.layer, self.arguments = layer, arguments

    def call(self, values, training=None):
        return self.layer(values, *self.arguments, training=training)


@pytest.mark.parametrize("name", sorted(POOLED))
def test_pooled_fusion_ignores_a_masked_modality(name):
    embeddings, masks = pooled_inputs(), tf.constant(MODALITY_MASKS)
    changed = hidden_change(embeddings, masks)
    assert_ignores_hidden_values(lambda dtype: Bound(POOLED[name](dtype), masks), embeddings,
                                 changed, embeddings * 1.5, [MODALITY_MASKS])


@pytest.mark.parametrize("mode,pooling,summary,skip", TOKEN_VARIANTS)
def test_cross_attention_ignores_masked_modalities_and_padding(mode, pooling, summary, skip):
    tokens, token_masks = token_inputs()
    masks = tf.constant(MODALITY_MASKS)
    hidden = [(token_mask * masks[:, index:index + 1]).numpy()
              for index, token_mask in enumerate(token_masks)]
    changed = [hidden_change(values, mask) for values, mask in zip(tokens, hidden)]

    def make_layer(dtype):
        return Bound(CrossAttentionFusion(num_heads=2, num_layers=2, dropout=0.1, mode=mode,
                                          pooling=pooling, summary_tokens=summary,
                                          pooled_skip=skip, dtype=dtype),
                     token_masks, masks)
    assert_ignores_hidden_values(make_layer, tokens, changed, [tokens[0] * 1.5] + tokens[1:],
                                 hidden, xla=(mode, pooling, summary, skip) in XLA_VARIANTS)


@pytest.mark.parametrize("mode,pooling,summary,skip", TOKEN_VARIANTS)
def test_padding_and_absent_tokens_get_zero_attention_weight(mode, pooling, summary, skip):
    layer = CrossAttentionFusion(num_heads=2, num_layers=1, dropout=0.1, mode=mode,
                                 pooling=pooling, summary_tokens=summary, pooled_skip=skip)
    tokens, token_masks = token_inputs()
    masks = tf.constant(MODALITY_MASKS)
    _, weights = layer(tokens, token_masks, masks, training=False, return_attention_scores=True)
    # A modality's summary token is attended to exactly where the modality is present.
    real = [np.concatenate(([masks[:, index:index + 1].numpy()] if summary else [])
                           + [(token_mask * masks[:, index:index + 1]).numpy()], 1)
            for index, token_mask in enumerate(token_masks)]
    always = np.ones((3, 1), "float32")  # the fusion / "nothing" token
    cls = [always] if pooling == "cls" else []
    if mode == "single_stream":
        key_masks = {"fusion_transformer_0": np.concatenate(cls + real, 1)}
        if pooling == "attention":
            key_masks["fusion_pooling"] = key_masks["fusion_transformer_0"]
    else:  # queries: fusion token + text; keys: "nothing" token + image + audio
        queries = np.concatenate([always, real[0]], 1)
        key_masks = {"fusion_co_attention_0_self": queries,
                     "fusion_co_attention_0_cross": np.concatenate([always] + real[1:], 1)}
        if pooling == "attention":
            key_masks["fusion_pooling"] = queries
    assert set(weights) == set(key_masks)
    for name, key_mask in key_masks.items():
        value = weights[name].numpy()  # [B, heads, queries, keys]
        assert value.shape[-1] == key_mask.shape[1], name
        assert np.all(value[np.broadcast_to(key_mask[:, None, None, :], value.shape) == 0] == 0)
        np.testing.assert_allclose(value.sum(-1), 1.0, atol=1e-5)


def test_layer_configs_round_trip():
    embeddings, masks = pooled_inputs(), tf.constant(MODALITY_MASKS)
    tokens, token_masks = token_inputs()
    layers = [POOLED[name]("float32") for name in ("tensor", "low_rank", "gated")]
    layers += [LateFusion(), LateFusionHead("regression", 2, 3, hidden_dim=0, dropout=0.2),
               CrossAttentionFusion(2, 2, 0, 0.2, "co_attention", "attention", query_index=0),
               CrossAttentionFusion(2, 1, 0, 0.2, "single_stream", "cls", summary_tokens=True),
               CrossAttentionFusion(2, 1, 0, 0.2, "single_stream", "attention", pooled_skip=True),
               TokenProjection(WIDTH, (2, 3))]
    for layer in layers:
        clone = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
        if isinstance(layer, CrossAttentionFusion):
            arguments = (tokens, token_masks, masks)
        elif isinstance(layer, LateFusionHead):
            arguments = (embeddings, masks)
        elif isinstance(layer, TokenProjection):
            arguments = (tf.ones((3, 6, 4)),)
        else:
            arguments = (embeddings, masks)
        expected = layer(*arguments)
        clone(*arguments)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(clone(*arguments), expected, atol=1e-6)


def test_tensor_fusion_shapes():
    layer = TensorFusion(tensor_dim=3, output_dim=5)
    assert layer(pooled_inputs(), tf.constant(MODALITY_MASKS)).shape == (3, 5)
    assert layer.output_projection.kernel.shape == (4 ** 3, 5)  # [h; 1] of 3 modalities


def test_low_rank_fusion_is_a_rank_r_tensor_fusion():
    """LMF's output is the full (d+1)^M x K tensor contracted with the [h_m; 1] vectors, and
    that tensor has rank r."""
    layer = LowRankFusion(tensor_dim=4, output_dim=6, rank=3)
    embeddings, masks = pooled_inputs(), tf.constant(MODALITY_MASKS)
    output = layer(embeddings, masks)
    assert output.shape == (3, 6)
    assert [tuple(factor.shape) for factor in layer.factors] == [(3, 5, 6)] * 3
    tensor = keras.ops.convert_to_numpy(layer.full_weight_tensor())
    assert tensor.shape == (5, 5, 5, 6)
    first, second, third = [keras.ops.convert_to_numpy(vector)
                            for vector in layer.extended_vectors(embeddings, masks)]
    expected = np.einsum("ijko,bi,bj,bk->bo", tensor, first, second, third)
    np.testing.assert_allclose(output, expected + layer.bias.numpy(), atol=1e-4)
    for out in range(6):
        assert np.linalg.matrix_rank(tensor[..., out].reshape(5, 25), tol=1e-5) == 3


def test_token_projection_adds_row_and_column_embeddings():
    layer = TokenProjection(WIDTH, (2, 3))
    layer.build((None, 6, 4))
    rows, cols = [weight.numpy() for weight in layer.position_embeddings]
    positions = keras.ops.convert_to_numpy(layer.positions())
    np.testing.assert_allclose(positions[1 * 3 + 2], rows[1] + cols[2], atol=1e-6)
    assert rows.shape == (2, WIDTH) and cols.shape == (3, WIDTH)


def test_image_token_grid_follows_the_input_size():
    from tfmm.models.image_encoder import build_image_encoder

    for size, side in ((64, 2), (96, 3)):
        encoder = build_image_encoder(size, WIDTH, output_tokens=True)
        assert encoder.output["tokens"].shape[1:] == (side * side, WIDTH)
        projection = encoder.get_layer("image_projection")
        assert projection.position_shape == (side, side)
        output = encoder(np.zeros((1, size, size, 3), "float32"))
        np.testing.assert_array_equal(output["token_mask"], np.ones((1, side * side)))


def test_summary_token_is_the_mean_of_the_real_tokens():
    """Each modality's summary token is the mean of its real (unpadded) tokens plus the learned
    summary embedding; padding does not enter it."""
    layer = CrossAttentionFusion(num_heads=2, num_layers=1, summary_tokens=True)
    tokens, token_masks = token_inputs()
    masks = tf.constant(MODALITY_MASKS)
    layer(tokens, token_masks, masks)
    sequence, sequence_mask = layer._sequence(tokens, token_masks, masks, [0],
                                              layer._token_means(tokens, token_masks))
    text_mean = np.stack([tokens[0][example, :length].numpy().mean(0)
                          for example, length in enumerate(TEXT_LENGTHS)])
    expected = (text_mean + layer.summary_embeddings[0].numpy()
                + layer.modality_embeddings[0].numpy())
    np.testing.assert_allclose(sequence[:, 0].numpy(), expected, atol=1e-5)
    assert sequence.shape[1] == 1 + TOKEN_LENGTHS[0]
    np.testing.assert_array_equal(sequence_mask[:, 0].numpy(), [1, 1, 1])
