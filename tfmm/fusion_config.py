"""The config fields of the fusion methods (`tfmm.config` calls these).

    model.fusion           "concat" | "attention" (one pooled vector per modality, today's)
                           | "cross_attention" (token sequences of every modality)
                           | "tensor" (TFN) | "low_rank" (LMF) | "gated" | "late" (pooled)
    model.fusion_options   None | {"cross_attention_mode": "co_attention", "rank": 8, ...}:
                           the fields of `FusionOptions` below; every one has a default.

`model.fusion_num_heads` and `model.fusion_num_layers` are the attention heads and layers of
"attention" and "cross_attention". README "Fusion methods" compares them.
"""

import dataclasses

FUSION_CHOICES = ("concat", "attention", "cross_attention", "tensor", "low_rank", "gated", "late")
# The fusions that read every encoder's token sequence (the others read one vector each).
TOKEN_FUSIONS = ("cross_attention",)
CROSS_ATTENTION_MODES = ("single_stream", "co_attention")
CROSS_ATTENTION_POOLINGS = ("cls", "attention")


@dataclasses.dataclass(frozen=True)
class FusionOptions:
    # cross_attention: "single_stream" (one transformer over all modalities' tokens, ViLT-like)
    # or "co_attention" (text tokens attend over the other modalities' tokens; needs text).
    cross_attention_mode: str = "single_stream"
    # cross_attention output: "cls" (a learned fusion token's final state) or "attention"
    # (a learned query pools the final tokens).
    cross_attention_pooling: str = "cls"
    # cross_attention: a summary token (the mean of the real tokens) in front of each
    # modality's tokens, so the pooled vector is one of the tokens attended over.
    cross_attention_summary_tokens: bool = False
    # cross_attention: the output also sees each modality's token mean (the pooled vector),
    # past the transformer, through a learned projection. Off by default: on the grounding
    # task (configs/grid_digits.py) it kept the model from learning where the spoken digit is
    # (seeds 0 and 1 on one pair of encoders: 0.433 and 0.488, against 0.744 and 0.829).
    cross_attention_pooled_skip: bool = False
    tensor_dim: int = 16  # tensor / low_rank: each vector is projected to this width first.
    rank: int = 4  # low_rank: rank r of the factorised fusion tensor.


def fusion_options(value) -> FusionOptions:
    """The `FusionOptions` of a checked `model.fusion_options` value (None: the defaults)."""
    return FusionOptions(**(value or {}))


def uses_tokens(fusion: str) -> bool:
    """Whether `model.fusion` reads token sequences (encoders built with output_tokens=True)."""
    return fusion in TOKEN_FUSIONS


def coerce_fusion_options(value, default, key: str, source: str):
    """A `model.fusion_options` value: None or a dict of `FusionOptions` fields."""
    from tfmm.config import ConfigError

    if value is None or value == {}:
        return None
    known = {field.name for field in dataclasses.fields(FusionOptions)}
    if not isinstance(value, dict) or set(value) - known:
        raise ConfigError(f"{source}: `{key}` must be a dict with keys among {sorted(known)}. "
                          f"Received: {value!r}")
    return dict(value)


FUSION_FIELD_COERCERS = {"model.fusion_options": coerce_fusion_options}


def check_fusion_config(config):
    """Raises ConfigError for fusion settings that cannot be built."""
    from tfmm.config import ConfigError, check_choice

    data, model = config.data, config.model
    check_choice("model.fusion", model.fusion, FUSION_CHOICES)
    options = fusion_options(model.fusion_options)
    check_choice("model.fusion_options.cross_attention_mode", options.cross_attention_mode,
                 CROSS_ATTENTION_MODES)
    check_choice("model.fusion_options.cross_attention_pooling",
                 options.cross_attention_pooling, CROSS_ATTENTION_POOLINGS)
    for name in ("cross_attention_summary_tokens", "cross_attention_pooled_skip"):
        value = getattr(options, name)
        if not isinstance(value, bool):
            raise ConfigError(f"`model.fusion_options.{name}` must be true or false. "
                              f"Received: {value!r}")
    for name in ("tensor_dim", "rank"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`model.fusion_options.{name}` must be an integer >= 1. "
                              f"Received: {value!r}")
    if (model.fusion == "cross_attention" and options.cross_attention_mode == "co_attention"
            and ("text" not in data.modalities or len(data.modalities) < 2)):
        raise ConfigError("`model.fusion_options.cross_attention_mode` 'co_attention' needs "
                          "'text' and another modality in `data.modalities`. Received: "
                          f"{list(data.modalities)}")
    if (uses_tokens(model.fusion) and config.training.cache_frozen_features
            and data.text_length_buckets and model.freeze_text_encoder
            and "text" in data.modalities):
        raise ConfigError("`training.cache_frozen_features` of a frozen text encoder's tokens "
                          "cannot use `data.text_length_buckets` (cached token sequences need "
                          "one length); set one of them off")
