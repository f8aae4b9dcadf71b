"""The `training.pruning` config field, checked (`tfmm.config` calls these).

    training.pruning = {"target_sparsity": 0.8, "start_step": 0, "end_step": 1000,
                        "frequency": 100, "exclude": ["text_encoder"]}

Magnitude pruning of the trainable Dense / EinsumDense / Conv kernels (embeddings, norms and
biases are never pruned) on a polynomial schedule from 0 at `start_step` to `target_sparsity` at
`end_step`, the masks updated every `frequency` steps and applied after every optimizer step
(tfmm/training/pruning.py). `exclude`: kernels whose variable path contains one of these strings
are left dense. {} (the default): no pruning.
"""

PRUNING_DEFAULTS = {"target_sparsity": 0.5, "start_step": 0, "end_step": 1000, "frequency": 100,
                    "exclude": ()}


def coerce_pruning(value, default, key: str, source: str) -> dict:
    """A `training.pruning` value: {} / None (off) or a dict of PRUNING_DEFAULTS' keys, completed
    with the defaults and checked."""
    from tfmm.config import ConfigError

    if value in (None, "", "none"):
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `{key}` must be a dict with keys {sorted(PRUNING_DEFAULTS)}"
                          f". Received: {value!r}")
    if not value:
        return {}
    unknown = sorted(set(value) - set(PRUNING_DEFAULTS))
    if unknown:
        raise ConfigError(f"{source}: `{key}` has unknown keys {unknown}; known keys: "
                          f"{sorted(PRUNING_DEFAULTS)}")
    pruning = dict(PRUNING_DEFAULTS, **value)
    number = lambda name: (isinstance(pruning[name], (int, float))  # noqa: E731
                           and not isinstance(pruning[name], bool))
    if not number("target_sparsity") or not 0.0 < pruning["target_sparsity"] < 1.0:
        raise ConfigError(f"{source}: `{key}.target_sparsity` must be a number in (0, 1). "
                          f"Received: {pruning['target_sparsity']!r}")
    for name in ("start_step", "end_step", "frequency"):
        if not number(name) or pruning[name] != int(pruning[name]) or pruning[name] < 0:
            raise ConfigError(f"{source}: `{key}.{name}` must be an integer >= 0. "
                              f"Received: {pruning[name]!r}")
        pruning[name] = int(pruning[name])
    if pruning["end_step"] <= pruning["start_step"] or pruning["frequency"] < 1:
        raise ConfigError(f"{source}: `{key}` needs end_step > start_step and frequency >= 1. "
                          f"Received: start_step={pruning['start_step']}, end_step="
                          f"{pruning['end_step']}, frequency={pruning['frequency']}")
    exclude = pruning["exclude"]
    if isinstance(exclude, str):
        exclude = [part.strip() for part in exclude.split(",") if part.strip()]
    if not isinstance(exclude, (list, tuple)) or not all(isinstance(item, str)
                                                         for item in exclude):
        raise ConfigError(f"{source}: `{key}.exclude` must be a list of strings. "
                          f"Received: {exclude!r}")
    pruning["exclude"] = list(exclude)
    pruning["target_sparsity"] = float(pruning["target_sparsity"])
    return pruning


PRUNING_FIELD_COERCERS = {"training.pruning": coerce_pruning}
