"""Computing frozen encoder features: each encoder's inference with XLA on vs off.

`training.cache_frozen_features` runs every frozen encoder once per example in inference mode
(tfmm/training/feature_cache.py). Whether XLA helps depends on the encoder: this times each
frozen encoder of a recipe's fused stage (default: the grid-digits recipe, whose ResNet50 sees
64x64 grids, MiniLM 24-token questions, the log-Mel CNN 1 s at 8 kHz) on one batch of random
inputs, XLA on and off interleaved round by round, and prints the ratio per encoder. The weights
are random (the stage's `init_encoders_from` is dropped): speed does not depend on them.

    python bench/feature_extraction.py                 # configs/grid_digits.py, batch 64
    python bench/feature_extraction.py --config configs/av_digits.py --quick
"""

import time

import benchlib
from benchlib import interleave, paired_ratios, ratio_line, spread

import numpy as np


def parse_args():
    parser = benchlib.parser(__doc__, rounds=5, quick="3 rounds")
    parser.add_argument("--config", default="configs/grid_digits.py")
    parser.add_argument("--stage", default="fused")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    args.config = benchlib.repo_path(args.config)
    return args


def random_batch(part, batch_size: int, rng) -> dict:
    """Random inputs of a feature-extractor part: token ids, a full padding mask, pixels in
    [0, 255], waveforms in [-0.5, 0.5]."""
    batch = {}
    for name, tensor in part.input.items():
        shape = (batch_size,) + tuple(tensor.shape[1:])
        if name == "token_ids":
            batch[name] = rng.integers(1000, 2000, shape).astype("int32")
        elif name == "padding_mask":
            batch[name] = np.ones(shape, "int32")
        elif "int" in str(tensor.dtype):
            batch[name] = np.zeros(shape, "int32")
        elif name in ("image", "video"):
            batch[name] = rng.uniform(0, 255, shape).astype("float32")
        else:
            batch[name] = rng.uniform(-0.5, 0.5, shape).astype("float32")
    return batch


def main():
    args = parse_args()
    import keras

    from tfmm.config import load_stages
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.feature_cache import (FeatureExtraction, build_feature_models,
                                             frozen_modalities)

    started = time.time()
    print(benchlib.machine_line())
    config = dict(load_stages(args.config))[args.stage]
    config.model.init_encoders_from = []
    keras.utils.set_random_seed(0)
    model = build_multimodal_model(config, 10)
    extractor, _ = build_feature_models(model, frozen_modalities(config))
    extraction = FeatureExtraction.per_modality(model, extractor)
    rng = np.random.default_rng(0)
    for modality, part in extraction.parts.items():
        batch = random_batch(part, args.batch_size, rng)
        variants, compile_seconds = {}, {}
        for jit in (True, False):
            name = f"XLA {'on' if jit else 'off'}"
            function = extraction.function(modality, jit)
            begin = time.perf_counter()
            keras.tree.map_structure(np.asarray, function(batch))
            compile_seconds[name] = time.perf_counter() - begin

            def run(function=function):
                begin = time.perf_counter()
                keras.tree.map_structure(np.asarray, function(batch))
                return time.perf_counter() - begin
            variants[name] = run
        shapes = ", ".join(f"{name} {list(value.shape)}" for name, value in batch.items())
        print(f"\n=== {modality} features ({shapes}) ===")
        print("first call (trace + compile + one batch), seconds: " + ", ".join(
            f"{name} {value:.1f}" for name, value in compile_seconds.items()))
        results = interleave(variants, args.rounds)
        for name, times in results.items():
            print(f"{modality} {name}: {spread(times)} s per batch of {args.batch_size}")
        print(ratio_line(f"RATIO {modality} features, XLA on / off (speed)",
                         paired_ratios(results["XLA off"], results["XLA on"])))
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
