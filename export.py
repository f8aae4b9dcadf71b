"""Export a trained run compressed: `python export.py RUN_DIR --format litert --quantize int8`.

    --format litert --quantize none|dynamic|int8|int16x8   a .tflite file for the ai-edge-litert
        interpreter; its inputs are the preprocessed tensors (token ids / masks, image, waveform,
        modality masks); int8 and int16x8 (int16 activations, int8 weights) calibrate on
        --representative training examples (default 100).
        Run it with tfmm/export/litert_runner.py or score it with
        `python evaluate.py RUN_DIR/litert/model_int8.tflite --data test.jsonl`.
    --format savedmodel --quantize none|keras-int8   the raw-input serving SavedModel of
        training's export; keras-int8 first applies Keras' `model.quantize("int8")`.

Default outputs are inside the run folder (tfmm/export/compressed_export.py); --out overrides.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="finished run folder (or the model.keras in one)")
    parser.add_argument("--format", default="litert", choices=("litert", "savedmodel"))
    parser.add_argument("--quantize", default="none",
                        choices=("none", "dynamic", "int8", "int16x8", "keras-int8"))
    parser.add_argument("--representative", type=int, default=100, metavar="N",
                        help="training examples that calibrate int8 / int16x8 (default 100)")
    parser.add_argument("--out", help=".tflite file or SavedModel folder to write")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import exit_code
    from tfmm.export.compressed_export import export_compressed

    return exit_code(lambda: export_compressed(
        arguments.run, arguments.format, arguments.quantize,
        representative=arguments.representative, out=arguments.out))


if __name__ == "__main__":
    from train import prepare_tensorflow  # train.py's imports do not load TensorFlow

    prepare_tensorflow()
    sys.exit(main())
