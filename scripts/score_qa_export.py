"""Scores a question-answering SavedModel on the questions an evaluation answered, and compares.

The acceptance check that the EM/F1 a run reports are those of the model it exports:

    python scripts/score_qa_export.py runs/xquad_minilm/export/1 \
        --data ../shared/data/xquad/xquad.en.json \
        --predictions runs/xquad_minilm/eval_predictions.json

asks the export's `serving_default` (question, context -> answer) every question whose id the
predictions file holds, scores the answers with the official SQuAD definitions
(`tfmm.evaluation.squad_metrics`) and prints both EM/F1 pairs and the number of questions whose
answers differ. Exit status 1 when any answer differs.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir", help="the SavedModel folder (a run's export version)")
    parser.add_argument("--data", required=True, help="SQuAD v1.1/v2.0 JSON holding the questions")
    parser.add_argument("--predictions", required=True,
                        help="the evaluation's {question id: answer} file")
    parser.add_argument("--batch-size", type=int, default=16, help="questions per request")
    return parser.parse_args(argv)


def main(argv=None):
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the export's tokeniser ops)

    from tfmm.data.squad import load_squad_file
    from tfmm.errors import UserError
    from tfmm.evaluation.squad_metrics import evaluate_predictions

    try:
        with open(arguments.predictions, encoding="utf-8") as handle:
            evaluated = json.load(handle)
        examples = [example for example in load_squad_file(arguments.data)
                    if example.question_id in evaluated]
    except (OSError, ValueError, UserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve = tf.saved_model.load(arguments.export_dir).signatures["serving_default"]
    served = {}
    for first in range(0, len(examples), arguments.batch_size):
        chunk = examples[first:first + arguments.batch_size]
        answers = serve(question=tf.constant([example.question for example in chunk]),
                        context=tf.constant([example.context for example in chunk]))["answer"]
        for example, answer in zip(chunk, answers.numpy()):
            served[example.question_id] = answer.decode("utf-8")
    differing = [key for key in served if served[key] != evaluated[key]]
    for name, predictions in (("evaluation", evaluated), ("SavedModel", served)):
        scores = evaluate_predictions(examples, predictions)
        print(f"{name}: exact match {scores['exact_match']:.2f}, F1 {scores['f1']:.2f} on "
              f"{scores['total']} questions")
    print(f"answers that differ: {len(differing)} of {len(examples)}")
    return 1 if differing or len(examples) != len(evaluated) else 0


if __name__ == "__main__":
    sys.exit(main())
