"""Explaining a question-answering run's answers on a SQuAD file (explain.py on a "qa" run).

Per question: the span evaluate.py answers with (`tfmm.evaluation.span_decoding.best_spans`: the
best legal context span over the question's windows; the [CLS] "no answer" position when SQuAD
v2.0 decoding answers ""), and the integrated-gradients attributions of that span's start and end logits over the window's
question and context tokens (`SpanAttributions`). Writes `<id>.json` and `<id>.png` (the tokens
highlighted twice, by start and by end attribution) and `explain_summary.json` (the records and
the mean share of attribution mass on question vs context tokens).
"""

import os
import time

import numpy as np

from tfmm.atomic_write import write_json
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.evaluation.evaluate_squad import read_squad_file
from tfmm.evaluation.span_decoding import best_spans
from tfmm.explain.span_attributions import SpanAttributions
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer
from tfmm.recipes.qa import span_preprocessor


def _mass_share(values, segments, real) -> dict:
    magnitude = np.abs(values) * real
    total = magnitude.sum() or 1.0
    return {"question": float(magnitude[(segments == 0)].sum() / total),
            "context": float(magnitude[(segments == 1)].sum() / total)}


def explain_span_run(run, data_path, ids=None, limit=None, out_dir="", steps=128,
                     figures=True, log=print) -> dict:
    """Explains a loaded QA run (`load_finished_run`) on a SQuAD v1.1/v2.0 file; returns and
    writes the summary. Arguments as `tfmm.explain.explain_run.explain_run`."""
    from tfmm.explain.figures import plot_span_explanation

    config = run.config
    tokenizer = load_bert_tokenizer(config.model.text_preset)
    from tfmm.explain.explain_run import file_stem, select_rows

    examples = select_rows(read_squad_file(data_path), data_path, ids, limit,
                           id_of=lambda example: example.question_id)
    pipeline = SpanWindowPipeline.from_examples(examples, span_preprocessor(config, tokenizer))
    arrays = pipeline.arrays
    features = {key: np.asarray(arrays[key], np.int32)
                for key in ("token_ids", "segment_ids", "padding_mask")}
    outputs = run.model.predict(features, batch_size=16, verbose=0)
    chosen = explained_spans(arrays, outputs, len(examples), config.qa)
    attributor = SpanAttributions(run.model, steps=steps)
    records, started = [], time.perf_counter()
    for index, example in enumerate(examples):
        window, start, end = chosen[index]
        one = {key: value[window:window + 1] for key, value in features.items()}
        result = attributor(one, start, end)
        real = features["padding_mask"][window] > 0
        segments = features["segment_ids"][window]
        token_ids = features["token_ids"][window]
        tokens = [[tokenizer.id_to_token(int(token_ids[p])), int(segments[p]),
                   float(result["start"][p]), float(result["end"][p])]
                  for p in np.flatnonzero(real)]
        answer = ("" if start == 0 else " ".join(
            tokenizer.id_to_token(int(token)) for token in token_ids[start:end + 1]))
        record = {"id": example.question_id, "question": example.question,
                  "gold_answers": [text for text, _ in example.answers],
                  "answer_tokens": answer, "window": window, "start": start, "end": end,
                  "start_logit": result["start_logit"], "end_logit": result["end_logit"],
                  "start_baseline_logit": result["start_baseline_logit"],
                  "end_baseline_logit": result["end_baseline_logit"], "steps": steps,
                  "baseline": "zero token embeddings",
                  "tokens": tokens, "columns": ["token", "segment", "start", "end"],
                  "start_mass": _mass_share(result["start"], segments, real),
                  "end_mass": _mass_share(result["end"], segments, real)}
        stem = file_stem(example.question_id)
        write_json(os.path.join(out_dir, stem + ".json"), record)
        if figures:
            plot_span_explanation(record, os.path.join(out_dir, stem + ".png"))
        records.append(record)
        log(f"explained {index + 1}/{len(examples)} questions")
    seconds = time.perf_counter() - started
    summary = {"run": run.folder.path, "data": data_path, "method": "integrated_gradients",
               "steps": steps, "num_examples": len(records),
               "seconds_per_example": seconds / len(records),
               "table": {key: {part: float(np.mean([r[key][part] for r in records]))
                               for part in ("question", "context")}
                         for key in ("start_mass", "end_mass")},
               "records": records}
    write_json(os.path.join(out_dir, "explain_summary.json"), summary)
    log(f"records{', figures' if figures else ''} and explain_summary.json in {out_dir}")
    return summary


def explained_spans(arrays: dict, outputs: dict, num_questions: int, qa_config) -> list:
    """Per question (window, start, end) token positions of the answer evaluate.py gives.

    The same selection as the SQuAD evaluation and the serving signature (`best_spans`); when
    SQuAD v2.0 decoding would answer "" (or no window holds a legal span), the [CLS] position
    (0, 0) of the window holding its best span (of its first window when none holds one).
    """
    best = {key: value.numpy() for key, value in best_spans(
        arrays, outputs["start_logits"], outputs["end_logits"], num_questions,
        qa_config.max_answer_length).items()}
    spans = []
    for index in range(num_questions):
        window = int(best["window"][index])
        no_answer = not np.isfinite(best["score"][index]) or (
            qa_config.version_2_with_negative
            and best["null_score"][index] - best["score"][index] > qa_config.null_score_threshold)
        if not np.isfinite(best["score"][index]):
            window = int(np.flatnonzero(np.asarray(arrays["question_index"]) == index)[0])
        spans.append((window, 0, 0) if no_answer else
                     (window, int(best["start"][index]), int(best["end"][index])))
    return spans
