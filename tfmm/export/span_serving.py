"""Export of a question-answering model: raw question and context strings in, answer text out.

The SavedModel's `serving_default` signature does everything in the graph (TensorFlow and
tensorflow-text ops only, no Python), with the same pieces that training and `evaluate.py` use:

    inputs:  question tf.string [B]
             context  tf.string [B]   (UTF-8)
    outputs: answer   tf.string [B]   (a slice of the context; "" when there is no answer)
             score    float32  [B]    (start logit + end logit of the answer span; for a SQuAD
                                       v2.0 model that answers "", the null score; -inf when the
                                       context holds no token)

1. Tokenisation and windows: `tfmm.preprocessing.span_preprocessor.SpanPreprocessor` (the
   windows of training and evaluation, several per long context).
2. The model on all windows of the batch at once.
3. Decoding: `tfmm.evaluation.span_decoding.decode_spans` (as in evaluation).

The signature uses tensorflow-text ops: `import tensorflow_text` before `tf.saved_model.load`
(TF Serving needs a build with the tensorflow-text ops, as for the multimodal export).

Example:
    export_span_serving_model(model, tokenizer, config.qa, "runs/xquad_minilm/export/1")
    serving = tf.saved_model.load("runs/xquad_minilm/export/1").signatures["serving_default"]
    serving(question=tf.constant(["Who?"]), context=tf.constant(["Ada wrote it."]))["answer"]
"""

import keras
import tensorflow as tf

from tfmm.evaluation.span_decoding import decode_spans
from tfmm.tasks import QuestionAnsweringTask
from tfmm.preprocessing.span_preprocessor import FEATURE_KEYS, SpanPreprocessor


def build_span_serving_function(model, tokenizer, qa_config):
    """The raw-string serving function.

    Args:
        model: a trained span model (`tfmm.models.span_model.build_span_model`).
        tokenizer: the model's keras-hub BertTokenizer (or its vocabulary, see
            `tfmm.preprocessing.span_tokenizer.tokenizer_settings`).
        qa_config: `tfmm.config.QuestionAnsweringConfig` (window sizes, decoding settings).

    Returns:
        A `tf.function` (question, context: tf.string [None]) -> {"answer", "score"}.
    """
    preprocessor = SpanPreprocessor(tokenizer, qa_config.max_sequence_length,
                                    qa_config.doc_stride, qa_config.max_query_length)
    start_key, end_key = QuestionAnsweringTask.output_keys
    qa = qa_config

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                  tf.TensorSpec([None], tf.string, name="context")])
    def serve(question, context):
        windows = preprocessor(question, context)
        outputs = model({key: windows[key] for key in FEATURE_KEYS}, training=False)
        answer, score = decode_spans(windows, outputs[start_key], outputs[end_key], context,
                                     qa.max_answer_length, qa.version_2_with_negative,
                                     qa.null_score_threshold)
        return {"answer": answer, "score": tf.cast(score, tf.float32)}

    return serve


def export_span_serving_model(model, tokenizer, qa_config, export_dir: str) -> str:
    """Writes the SavedModel with the raw-string `serving_default` signature.

    Args:
        model, tokenizer, qa_config: see `build_span_serving_function`.
        export_dir: target folder (local or gs://), e.g. `runs/xquad_minilm/export/1`.

    Returns:
        export_dir.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default",
                         build_span_serving_function(model, tokenizer, qa_config))
    archive.write_out(export_dir, verbose=False)
    return export_dir
