"""What drawing the dropout masks costs in tfmm's MiniLM training step, and what ThreeFry saves.

Three `Trainer` steps (XLA, float32, batch 32, every text at `--length` tokens), compiled once
each and run interleaved in rounds:
- "threefry": the Trainer as shipped (masks drawn with ThreeFry while the XLA step is traced,
  `tfmm/models/dropout.py`);
- "keras": the same step with Keras' own dropout (TensorFlow's default generator);
- "no dropout": every dropout rate set to 0 (the floor: what the masks cost at all).

    python bench/dropout_masks.py                # 128 tokens, 5 rounds
    python bench/dropout_masks.py --length 32
"""

import tempfile

import benchlib
from benchlib import interleave, paired_ratios, ratio_line, spread

import numpy as np


def main():
    parser = benchlib.parser(__doc__, rounds=5)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.training.trainer import Trainer

    print(benchlib.machine_line())
    random = np.random.default_rng(0)
    batch, length = args.batch_size, args.length
    features = {"token_ids": tf.constant(random.integers(1000, 20000, (batch, length)), tf.int32),
                "segment_ids": tf.zeros((batch, length), tf.int32),
                "padding_mask": tf.ones((batch, length), tf.int32),
                "text_mask": tf.ones((batch,), tf.float32)}
    targets = tf.constant(random.integers(0, 10, batch), tf.int32)

    def compiled_step(variant):
        config = Config()
        config.data.modalities = ("text",)
        config.data.text_sequence_length = length
        config.model.freeze_text_encoder = False
        config.model.fusion = "concat"
        config.model.head_hidden_dim = 0
        config.training.run_dir = tempfile.mkdtemp(prefix="tfmm-bench-dropout-")
        config.training.jit_compile = "true"
        config.training.checkpoint_every_steps = 0
        keras.utils.set_random_seed(0)
        model = build_multimodal_model(config, 10)
        if variant == "no dropout":
            for layer in model._flatten_layers(recursive=True):
                if isinstance(layer, keras.layers.Dropout):
                    layer.rate = 0.0
        config.training.dropout_masks = "threefry" if variant == "threefry" else "keras"
        trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), 100,
                          config.training.run_dir, log=lambda line: None)
        for _ in range(2):  # trace + compile, warm up
            float(trainer.train_step((features, targets))[0])

        def run():
            return benchlib.timed(lambda: float(trainer.train_step((features, targets))[0]))
        return run

    variants = {name: compiled_step(name) for name in ("threefry", "keras", "no dropout")}
    print(f"MiniLM step, {batch} x {length} tokens, float32, XLA; {args.rounds} rounds")
    times = interleave(variants, args.rounds)
    for name, values in times.items():
        print(f"step {name}: {spread(values)} s")
    print(ratio_line("RATIO step speed threefry / keras",
                     paired_ratios(times["keras"], times["threefry"])))
    shares = [1 - free / keras_time for free, keras_time in zip(times["no dropout"],
                                                                  times["keras"])]
    print(f"dropout's share of the Keras-dropout step (1 - no dropout / keras): "
          f"{spread(shares)}")
    print(benchlib.machine_line())


if __name__ == "__main__":
    main()
