"""Evaluate a trained tfmm model: `python evaluate.py RUN_DIR_OR_MODEL --data MANIFEST`.

RUN_DIR_OR_MODEL is a run folder written by train.py, or a `model.keras` file inside one (its
folder's config.json and run_info.json say how to preprocess and which labels the classes are).
Writes `<name>_report.json` (accuracy, macro-F1, AUROC / MAE, RMSE, Pearson r), a confusion-matrix
or scatter PNG and, when the run has a history, the training-curve PNG.

`--data 'records/test-*.tfrecord'` (a glob pattern or a `.tfrecord` file) evaluates from the
shards of `python -m tfmm.pack` instead of a manifest, with the same report.

A question-answering run (data.task "qa") takes a SQuAD v1.1/v2.0 JSON file as --data and writes
`<name>_report.json` (exact match, F1, and the sentence-overlap baseline beside them; HasAns/NoAns
for v2.0) and `<name>_predictions.json` ({question id: answer}, the official format):

    python evaluate.py runs/xquad_minilm --data dev-v1.1.json

Missing modalities at test time: `--drop-modality image` (repeatable) removes a modality from
every example (or a `--drop-fraction` share of them) through its mask, as a row without it;
`--drop-sweep` scores the run with nothing removed, each modality removed and each kept alone,
one report each plus a summary table (tfmm/evaluation/modality_removal.py).

Robust accuracy: `--attack fgm --attack-epsilon 0.5` (epsilon repeatable; `--attack pgd` with
`--attack-steps`) scores the run with its image / audio inputs perturbed against the true
labels, beside the clean figures (`<name>_fgm_eps0.5_report.json`;
tfmm/evaluation/adversarial_evaluation.py).

Noise robustness: `--noise-snr 10` adds white noise at 10 dB SNR to every test waveform;
`--noise-snr clean,20,10,5,0` scores each level (a report each, a summary table and the
accuracy-vs-SNR PNG; tfmm/evaluation/noise_robustness.py).

A `.tflite` file written by export.py (inside its run folder) is scored the same way with the
ai-edge-litert interpreter: `python evaluate.py runs/av_digits/fused/litert/model_int8.tflite
--data test.jsonl` (tfmm/export/litert_runner.py).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="run folder, or the .keras / .tflite model file in one")
    parser.add_argument("--data", required=True,
                        help="JSONL manifest to evaluate on, or a glob of `tfmm.pack` shards "
                        "(quoted: 'records/test-*'); SQuAD JSON for a question-answering run")
    parser.add_argument("--out", help="folder for the report (default: the run folder)")
    parser.add_argument("--name", help="file prefix of the report (default: manifest name)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip invalid manifest rows (counted) instead of stopping")
    parser.add_argument("--drop-modality", action="append", default=[], metavar="MODALITY",
                        help="remove this modality (its mask set to 0, as for a missing input) "
                        "from the examples; repeatable")
    parser.add_argument("--drop-fraction", type=float, default=1.0,
                        help="share of the examples that lose each dropped modality (default 1)")
    parser.add_argument("--drop-sweep", action="store_true",
                        help="evaluate with nothing removed, each modality removed and each "
                        "kept alone; writes one report each and a summary table")
    attack = parser.add_argument_group("robust accuracy (adversarial_evaluation.py)")
    attack.add_argument("--attack", choices=("fgm", "pgd"), help="perturb the inputs by this")
    attack.add_argument("--attack-epsilon", type=float, action="append", default=[],
                        help="L2 norm per example and input, in input units; repeatable")
    attack.add_argument("--attack-steps", type=int, default=0, help="PGD steps (0: 3)")
    attack.add_argument("--attack-step-size", type=float, default=0.0,
                        help="PGD step length (0: 2.5 * epsilon / steps)")
    attack.add_argument("--attack-inputs", default="",
                        help="modalities attacked, e.g. audio,image (default: all it reads)")
    # Noise robustness (tfmm/evaluation/noise_robustness.py).
    parser.add_argument("--noise-snr", metavar="LEVELS",
                        help="add white noise at these SNRs (dB, comma-separated; 'clean' for "
                        "none) to the audio and score each level, e.g. clean,20,10,5,0")
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the added noise")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    from tfmm.errors import UserError, exit_code
    from tfmm.evaluation.evaluate_run import evaluate_run, sweep_modality_removal
    from tfmm.data.record_format import names_shards, report_name

    if names_shards(arguments.data) and not arguments.name:  # 'records/test-*': "test"
        arguments.name = report_name(arguments.data)

    common = dict(out_dir=arguments.out, name=arguments.name, batch_size=arguments.batch_size,
                  skip_invalid=arguments.skip_invalid, drop_fraction=arguments.drop_fraction)

    def evaluate():  # what the flags ask for
        if arguments.attack and arguments.noise_snr is not None:
            raise UserError("give --attack or --noise-snr, not both")
        if arguments.model.endswith(".tflite"):
            from tfmm.export.litert_runner import evaluate_litert
            if arguments.drop_sweep or arguments.attack or arguments.noise_snr is not None:
                raise UserError("a .tflite file takes --drop-modality, not --drop-sweep, "
                                "--attack or --noise-snr (give its run folder for those)")
            evaluate_litert(arguments.model, arguments.data,
                            drop_modalities=arguments.drop_modality, **common)
        elif arguments.attack:
            from tfmm.evaluation.adversarial_evaluation import run_attack_arguments
            run_attack_arguments(arguments)
        elif arguments.noise_snr is not None:
            from tfmm.evaluation.noise_robustness import parse_noise_levels, sweep_noise_levels

            if arguments.drop_sweep:
                raise UserError("give --drop-sweep or --noise-snr, not both")
            sweep_noise_levels(arguments.model, arguments.data,
                               parse_noise_levels(arguments.noise_snr),
                               drop_modalities=arguments.drop_modality,
                               seed=arguments.noise_seed, **common)
        elif arguments.drop_sweep:
            if arguments.drop_modality:
                raise UserError("give --drop-sweep or --drop-modality, not both")
            sweep_modality_removal(arguments.model, arguments.data, **common)
        else:
            evaluate_run(arguments.model, arguments.data,
                         drop_modalities=arguments.drop_modality, **common)

    return exit_code(evaluate)


if __name__ == "__main__":
    from train import prepare_tensorflow  # train.py's imports do not load TensorFlow

    prepare_tensorflow()
    sys.exit(main())
