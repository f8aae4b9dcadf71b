"""A whole question-answering run: SQuAD data -> windows -> span model -> the shared training loop
-> EM/F1 evaluation (with the sentence-overlap baseline) -> raw-string SavedModel export.

What `train.py` runs when `data.task` is "span"; it mirrors `tfmm.training.run.run_training`.
The run folder gets config.json, run_info.json, checkpoints/, history.json, model.keras,
eval_report.json, eval_predictions.json and export/1.
"""

import os
import time

import tensorflow as tf

from tfmm.atomic_write import atomic_directory
from tfmm.config import save_config
from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import load_tfds_squad, split_by_article
from tfmm.evaluation.evaluate_squad import (SquadDataError, evaluate_span_model, read_squad_file,
                                            squad_headline)
from tfmm.export.span_serving import export_span_serving_model
from tfmm.models.span_model import build_span_model
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.preprocessing.span_preprocessor import SpanPreprocessor
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer
from tfmm.training.run import (EXPORT_DIR, count_steps_per_epoch, save_keras_model, start_run,
                               write_run_info)
from tfmm.training.resume_check import check_resume_config
from tfmm.training.trainer import Trainer

EVAL_NAME = "eval"
# The article split of a single file does not follow training.seed, so runs with different seeds
# are scored on the same questions.
SPLIT_SEED = 0


def load_span_examples(config, log=print) -> tuple:
    """The training and evaluation questions the `qa` section names, validated.

    Returns:
        (train examples, eval examples, description of where each came from).

    Raises:
        SquadDataError: a missing file; SquadFormatError: a malformed one (file, article title,
        question id and problem in the message).
    """
    qa = config.qa
    skip_invalid = config.data.skip_invalid
    if qa.tfds_version:
        train = load_tfds_squad(qa.tfds_version, "train")
        evaluation = load_tfds_squad(qa.tfds_version, "validation")
        return train, evaluation, (f"tfds squad/{qa.tfds_version} train",
                                   f"tfds squad/{qa.tfds_version} validation")
    if not tf.io.gfile.exists(qa.train_file):
        raise SquadDataError(
            f"qa.train_file {qa.train_file} not found (working directory {os.getcwd()}); relative "
            "paths are read from the working directory: run from the repository root or pass "
            "--set qa.train_file=PATH")
    examples = read_squad_file(qa.train_file, skip_invalid=skip_invalid)
    if qa.eval_file:
        evaluation = read_squad_file(qa.eval_file, skip_invalid=skip_invalid)
        return examples, evaluation, (qa.train_file, qa.eval_file)
    train, evaluation = split_by_article(examples, qa.eval_fraction, seed=SPLIT_SEED)
    if not train or not evaluation:
        raise SquadDataError(
            f"{qa.train_file}: splitting by article needs at least 2 articles (titles); give "
            "qa.eval_file instead")
    articles = lambda items: len({example.title for example in items})  # noqa: E731
    log(f"{qa.train_file}: split by article (eval_fraction {qa.eval_fraction}): "
        f"{articles(train)} articles / {len(train)} questions to train, {articles(evaluation)} "
        f"articles / {len(evaluation)} questions to evaluate")
    return train, evaluation, (f"{qa.train_file} (train articles)",
                               f"{qa.train_file} (held-out articles)")


def run_span_training(config, log=print, allow_config_change: bool = False) -> dict:
    """Trains, evaluates and exports a question-answering model as the config says.

    Args:
        config: a validated `tfmm.config.Config` with data.task "span".
        log: function taking one line of text.
        allow_config_change: see `tfmm.training.run.run_training`.

    Returns:
        {"run_dir", "history", "eval_report" (or None off the chief), "export_dir" (or None),
        "seconds"}.
    """
    started = time.time()
    training, qa = config.training, config.qa
    run_dir = training.run_dir
    strategy, chief = start_run(config, log)

    # Data first: a malformed file stops the run before any model is built.
    train_examples, eval_examples, (train_source, eval_source) = load_span_examples(config, log)
    has_impossible = any(example.is_impossible for example in train_examples + eval_examples)
    if (qa.tfds_version == "v2.0" or has_impossible) and not qa.version_2_with_negative:
        log("the data has unanswerable (SQuAD v2.0) questions: qa.version_2_with_negative on")
        qa.version_2_with_negative = True
    check_resume_config(config, run_dir, allow_config_change, chief, log)
    if chief:
        save_config(config, os.path.join(run_dir, "config.json"))

    tokenizer = load_bert_tokenizer(config.model.text_preset)
    preprocessor = SpanPreprocessor(tokenizer, qa.max_sequence_length, qa.doc_stride,
                                    qa.max_query_length)
    train_pipeline = SpanWindowPipeline.from_examples(train_examples, preprocessor)
    eval_pipeline = SpanWindowPipeline.from_examples(eval_examples, preprocessor)
    log(f"windows of {qa.max_sequence_length} tokens (stride {qa.doc_stride}): "
        f"{len(train_examples)} training questions -> {train_pipeline.num_examples} windows, "
        f"{len(eval_examples)} evaluation questions -> {eval_pipeline.num_examples} windows")
    steps_per_epoch = count_steps_per_epoch(config, train_pipeline, f"{train_source} windows")
    if chief:
        write_run_info(run_dir, {"labels": [], "task": config.data.task, "train_data": train_source,
                                 "eval_data": eval_source,
                                 "train_questions": len(train_examples),
                                 "train_examples": train_pipeline.num_examples,
                                 "steps_per_epoch": steps_per_epoch,
                                 "version_2_with_negative": qa.version_2_with_negative})

    with strategy.scope():
        backbone = load_bert_backbone(config.model.text_preset)
        model = build_span_model(backbone, qa.max_sequence_length,
                                 freeze_backbone=config.model.freeze_text_encoder)
    trainer = Trainer(model, config.data.task, training, strategy, steps_per_epoch, run_dir,
                      config.data.batch_size, config.data.shuffle_buffer, log=log)
    history = trainer.fit(train_pipeline)
    result = {"run_dir": run_dir, "history": history, "eval_report": None, "export_dir": None}
    if not chief:
        return result
    save_keras_model(model, run_dir, log)

    report = evaluate_span_model(model, eval_examples, eval_pipeline, qa, run_dir,
                                 name=EVAL_NAME, batch_size=config.data.batch_size,
                                 source=eval_source)
    log(f"eval: {squad_headline(report)}")
    result["eval_report"] = report
    if training.export:
        export_dir = os.path.join(run_dir, EXPORT_DIR)
        with atomic_directory(export_dir) as partial_dir:
            export_span_serving_model(model, tokenizer, qa, partial_dir)
        log(f"exported the serving SavedModel (question, context -> answer, score) to "
            f"{export_dir}")
        result["export_dir"] = export_dir
    result["seconds"] = round(time.time() - started, 1)
    log(f"done in {result['seconds']:.0f} s")
    return result
