"""Question-answering evaluation throughput: the graph path against the old Python path.

Questions per second of a whole SQuAD evaluation on XQuAD questions (what `evaluate.py` does:
windows, the model over every window, decoding to answer texts), side by side in one run:

- graph path (today's `evaluate.py`): `SpanWindowPipeline` maps the graph preprocessing
  (`tfmm.preprocessing.span_preprocessor`) over tf.data, `predict_dataset`, then the graph decoder
  (`tfmm.evaluation.evaluate_squad.decode_span_outputs` -> `decode_spans`);
- Python path (before: tokeniser, windows and decoder in Python, kept in tests/helpers as the
  tests' oracle): `make_windows_for_examples`, the same `predict_dataset`, `decode_predictions`;
- the exported SavedModel's `serving_default` (raw question and context strings in, answers out),
  32 questions per call.

The span model is a small BERT (2 layers, hidden 128) over the real MiniLM vocabulary, randomly
initialised with a fixed seed: throughput does not need a trained model, and the answers of the
three paths are compared question by question (they must be equal). The same is then timed
without the model ("preprocessing + decoding only", the logits computed once), where the paths
differ. Variants run interleaved in rounds; ratios are per round.

    python bench/qa_evaluation.py
    python bench/qa_evaluation.py --quick
"""

import os
import sys
import tempfile
import time

import benchlib
from benchlib import interleave, median, paired_ratios, ratio_line

sys.path.insert(0, benchlib.repo_path("tests"))  # the Python path lives in tests/helpers


def parse_args():
    parser = benchlib.parser(__doc__, rounds=5, quick="2 rounds on 200 questions")
    parser.add_argument("--data", default="../shared/data/xquad/xquad.en.dev-part.json",
                        help="SQuAD JSON (relative paths: to the repository root)")
    parser.add_argument("--questions", type=int, default=0, help="first N questions (0: all)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.questions = 2, 200
    args.data = benchlib.repo_path(args.data)
    return args


def print_questions_per_second(throughput):
    for name, values in throughput.items():
        print(f"{name}: {median(values):.1f} questions/s (per-round {min(values):.1f}-"
              f"{max(values):.1f})")


def main():
    args = parse_args()
    import keras
    import keras_hub
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SavedModel's ops)
    from helpers.span_decoding_oracle import decode_predictions
    from helpers.span_windows_oracle import (WordPieceOffsetTokenizer, make_windows_for_examples,
                                             windows_to_arrays)

    from tfmm.config import QuestionAnsweringConfig
    from tfmm.data.span_pipeline import FEATURE_KEYS, TARGET_KEYS, SpanWindowPipeline
    from tfmm.data.squad import load_squad_file
    from tfmm.evaluation.evaluate_squad import decode_span_outputs
    from tfmm.evaluation.predict import predict_dataset
    from tfmm.evaluation.squad_metrics import evaluate_predictions
    from tfmm.export.span_serving import export_span_serving_model
    from tfmm.models.span_model import build_span_model
    from tfmm.preprocessing.span_preprocessor import SpanPreprocessor
    from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

    started = time.time()
    print(benchlib.machine_line())
    examples = load_squad_file(args.data)
    if args.questions:
        examples = examples[:args.questions]
    qa = QuestionAnsweringConfig()  # the defaults: windows of 384, stride 128, answers <= 30
    tokenizer = load_bert_tokenizer("minilm")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=qa.max_sequence_length, dropout=0.0)
    model = build_span_model(backbone, qa.max_sequence_length)
    export_dir = os.path.join(tempfile.mkdtemp(prefix="tfmm-bench-qa-"), "1")
    export_span_serving_model(model, tokenizer, qa, export_dir)
    signature = tf.saved_model.load(export_dir).signatures["serving_default"]
    print(f"{len(examples)} XQuAD questions; windows {qa.max_sequence_length}/{qa.doc_stride}; "
          f"span model: random BERT 2 x 128 over the MiniLM vocabulary, "
          f"{model.count_params() / 1e6:.1f} M parameters; batch {args.batch_size} windows")
    decoding = dict(n_best_size=qa.n_best_size, max_answer_length=qa.max_answer_length,
                    version_2_with_negative=qa.version_2_with_negative,
                    null_score_threshold=qa.null_score_threshold)
    answers = {}
    logits = {}

    preprocessor = SpanPreprocessor(tokenizer, qa.max_sequence_length, qa.doc_stride,
                                    qa.max_query_length)

    def graph_path(with_model=True):
        pipeline = SpanWindowPipeline.from_examples(examples, preprocessor)
        if with_model:
            outputs, _, _ = predict_dataset(model, pipeline.batches(args.batch_size), "qa")
            logits["graph"] = outputs
        predictions, _ = decode_span_outputs(examples, pipeline, logits["graph"], qa)
        answers["graph"] = predictions

    def python_path(with_model=True):
        offset_tokenizer = WordPieceOffsetTokenizer.from_keras_hub(tokenizer)  # empty cache
        windows = make_windows_for_examples(examples, offset_tokenizer, qa.max_sequence_length,
                                            qa.doc_stride, qa.max_query_length)
        if with_model:
            arrays = windows_to_arrays(windows)
            dataset = tf.data.Dataset.from_tensor_slices((
                {key: arrays[key].astype(np.int32) for key in FEATURE_KEYS},
                {key: arrays[key] for key in TARGET_KEYS})).batch(args.batch_size)
            logits["python"], _, _ = predict_dataset(model, dataset, "qa")
        outputs = logits["python"]
        predictions, _ = decode_predictions(examples, windows, outputs["start_logits"],
                                            outputs["end_logits"], **decoding)
        answers["python"] = predictions

    def savedmodel_path():
        served = []
        for first in range(0, len(examples), 32):
            chunk = examples[first:first + 32]
            result = signature(question=tf.constant([example.question for example in chunk]),
                               context=tf.constant([example.context for example in chunk]))
            served.extend(answer.decode("utf-8") for answer in result["answer"].numpy())
        answers["SavedModel"] = {example.question_id: answer
                                 for example, answer in zip(examples, served)}

    def questions_per_second(function, *arguments):
        def run():
            begin = time.perf_counter()
            function(*arguments)
            return len(examples) / (time.perf_counter() - begin)
        return run

    print("\n--- whole evaluation (windows + model + decoding), questions/s ---")
    whole = {"graph path": questions_per_second(graph_path),
             "Python path": questions_per_second(python_path),
             "SavedModel": questions_per_second(savedmodel_path)}
    # The first run of each path in this process: tf.function tracing (the graph path's
    # preprocessing and decoder, the model's predict step) and the SavedModel's first call.
    first = {name: run() for name, run in whole.items()}
    print("first run (tracing included): " + ", ".join(
        f"{name} {value:.1f} questions/s" for name, value in first.items()))
    same = sum(answers["graph"][qid] == answers["python"][qid] == answers["SavedModel"][qid]
               for qid in answers["graph"])
    metrics = {name: evaluate_predictions(examples, answers[name]) for name in answers}
    print(f"same answers (graph path = Python path = SavedModel): {same}/{len(examples)} "
          "questions; EM/F1 " + ", ".join(f"{name} {value['exact_match']:.2f}/{value['f1']:.2f}"
                                          for name, value in metrics.items()))
    throughput = interleave(whole, args.rounds)
    print_questions_per_second(throughput)
    print(ratio_line("RATIO whole evaluation graph path / Python path",
                     paired_ratios(throughput["graph path"], throughput["Python path"])))
    print(ratio_line("RATIO SavedModel / Python path evaluation",
                     paired_ratios(throughput["SavedModel"], throughput["Python path"])))

    print("\n--- preprocessing + decoding only (logits computed once), questions/s ---")
    parts = {"graph path": questions_per_second(graph_path, False),
             "Python path": questions_per_second(python_path, False)}
    throughput = interleave(parts, args.rounds)
    print_questions_per_second(throughput)
    print(ratio_line("RATIO preprocessing + decoding graph path / Python path",
                     paired_ratios(throughput["graph path"], throughput["Python path"])))
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


if __name__ == "__main__":
    main()
