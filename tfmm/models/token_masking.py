"""Text augmentation inside the model: random [MASK] replacement of real tokens in training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmm")
class TokenMasking(keras.layers.Layer):
    """Replaces each real token by [MASK] with probability `rate`, in training.

    Real tokens are those inside the padding mask that are not special tokens ([CLS], [SEP],
    [PAD], [MASK], [UNK] as `special_token_ids` lists them); the sequence keeps its length and
    its padding mask, so BERT still sees where a word was (what its pre-training masked).

    Args:
        rate: probability of masking a real token, in [0, 1).
        mask_token_id: id of [MASK].
        special_token_ids: ids never masked.
        seed: seed of the draws.

    Input/output: {"token_ids", "segment_ids", "padding_mask"} int [B, L]; only "token_ids"
    changes. At inference the inputs pass through unchanged.
    """

    def __init__(self, rate=0.0, mask_token_id=103, special_token_ids=(0, 100, 101, 102, 103),
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: {rate}")
        self.rate = float(rate)
        self.mask_token_id = int(mask_token_id)
        self.special_token_ids = tuple(int(token) for token in special_token_ids)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        token_ids = inputs["token_ids"]
        real = ops.cast(inputs["padding_mask"], "bool")
        for special in self.special_token_ids:
            real = ops.logical_and(real, ops.not_equal(token_ids, special))
        draw = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator)
        masked = ops.logical_and(real, draw < self.rate)
        outputs = dict(inputs)
        outputs["token_ids"] = ops.where(masked, ops.cast(self.mask_token_id, token_ids.dtype),
                                         token_ids)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "mask_token_id": self.mask_token_id,
                       "special_token_ids": list(self.special_token_ids), "seed": self.seed})
        return config


def bert_special_token_ids(preset: str) -> tuple:
    """(mask id, special ids) of the BERT tokenizer of `preset` (see `load_bert_tokenizer`)."""
    from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

    tokenizer = load_bert_tokenizer(preset)
    special = [tokenizer.token_to_id(token) for token in
               ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")]
    return tokenizer.token_to_id("[MASK]"), tuple(special)
