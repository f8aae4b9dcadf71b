"""The recipe of extractive question answering: SQuAD-format data -> windows -> span model ->
EM/F1 evaluation (with the sentence-overlap baseline) -> the raw-string serving SavedModel.

The run writes the "eval" report and predictions on the held-out questions (a split by article
of `qa.train_file`, or `qa.eval_file`, or TFDS SQuAD's validation split).
"""

import dataclasses
import os

import tensorflow as tf

from tfmm.data.span_pipeline import SpanWindowPipeline
from tfmm.data.squad import load_tfds_squad, split_by_article
from tfmm.evaluation.evaluate_squad import SquadDataError, evaluate_span_model, read_squad_file
from tfmm.evaluation.modality_removal import check_removable
from tfmm.export.span_serving import export_span_serving_model
from tfmm.models.span_model import build_span_model
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.preprocessing.span_preprocessor import SpanPreprocessor
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer
from tfmm.recipes.recipe import Recipe

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


def span_preprocessor(config, tokenizer) -> SpanPreprocessor:
    """The windowing of the run's `qa` section with `tokenizer` (of its text preset)."""
    qa = config.qa
    return SpanPreprocessor(tokenizer, qa.max_sequence_length, qa.doc_stride, qa.max_query_length)


@dataclasses.dataclass
class QuestionAnsweringData:
    """A run's questions, where they came from, and their windows once cut."""

    train_examples: list
    eval_examples: list
    train_source: str
    eval_source: str
    tokenizer: object = None
    eval_pipeline: SpanWindowPipeline = None


class QuestionAnsweringRecipe(Recipe):
    """Extractive question answering on SQuAD v1.1/v2.0 data."""

    report_name = "eval"
    export_description = "the serving SavedModel (question, context -> answer, score)"

    def load_data(self, config, chief, log=print) -> QuestionAnsweringData:
        train, evaluation, (train_source, eval_source) = load_span_examples(config, log)
        qa = config.qa
        has_impossible = any(example.is_impossible for example in train + evaluation)
        if (qa.tfds_version == "v2.0" or has_impossible) and not qa.version_2_with_negative:
            log("the data has unanswerable (SQuAD v2.0) questions: qa.version_2_with_negative on")
            qa.version_2_with_negative = True
        return QuestionAnsweringData(train, evaluation, train_source, eval_source)

    def pipelines(self, config, data, log=print) -> tuple:
        qa = config.qa
        data.tokenizer = load_bert_tokenizer(config.model.text_preset)
        preprocessor = span_preprocessor(config, data.tokenizer)
        train = SpanWindowPipeline.from_examples(data.train_examples, preprocessor)
        data.eval_pipeline = SpanWindowPipeline.from_examples(data.eval_examples, preprocessor)
        log(f"windows of {qa.max_sequence_length} tokens (stride {qa.doc_stride}): "
            f"{len(data.train_examples)} training questions -> {train.num_examples} windows, "
            f"{len(data.eval_examples)} evaluation questions -> "
            f"{data.eval_pipeline.num_examples} windows")
        return train, None, f"{data.train_source} windows"

    def build_model(self, config, data, log=print):
        backbone = load_bert_backbone(config.model.text_preset)
        return build_span_model(backbone, config.qa.max_sequence_length,
                                freeze_backbone=config.model.freeze_text_encoder)

    def run_info(self, config, data) -> dict:
        return {"train_data": data.train_source, "eval_data": data.eval_source,
                "train_questions": len(data.train_examples),
                "version_2_with_negative": config.qa.version_2_with_negative}

    def evaluate(self, model, config, data, out_dir, history, log=print):
        return evaluate_span_model(model, data.eval_examples, data.eval_pipeline, config.qa,
                                   out_dir, name=self.report_name,
                                   batch_size=config.data.batch_size, source=data.eval_source)

    def export(self, model, config, data, export_dir):
        export_span_serving_model(model, data.tokenizer, config.qa, export_dir)

    def export_finished(self, model, run, export_dir):
        config = run.config
        export_span_serving_model(model, load_bert_tokenizer(config.model.text_preset), config.qa,
                                  export_dir)

    def evaluate_file(self, run, data_path, out_dir, name, batch_size, skip_invalid, log=print,
                      drop_modalities=(), drop_fraction=1.0):
        check_removable(("text",), drop_modalities)  # questions and contexts are its one input
        qa = run.config.qa
        examples = read_squad_file(data_path, skip_invalid=skip_invalid)
        if not examples:
            raise SquadDataError(f"{data_path}: no questions to evaluate")
        if any(example.is_impossible for example in examples) and not qa.version_2_with_negative:
            log(f"{data_path} has unanswerable (v2.0) questions but the run was trained with "
                "qa.version_2_with_negative false: they are scored, never predicted")
        pipeline = SpanWindowPipeline.from_examples(examples, span_preprocessor(
            run.config, load_bert_tokenizer(run.config.model.text_preset)))
        log(f"{data_path}: {len(examples)} questions, {pipeline.num_examples} windows")
        return evaluate_span_model(run.model, examples, pipeline, qa, out_dir, name=name,
                                   batch_size=batch_size, source=data_path)
