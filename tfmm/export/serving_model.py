"""Export for TF Serving: a SavedModel whose `serving_default` takes raw inputs.

The signature runs the training-time `MultimodalPreprocessor` (tokenisation, image decoding,
WAV decoding and resampling) and the model in one graph:

    inputs:  text  tf.string [B]  (questions / sentences; "" = no text)
             image tf.string [B]  (encoded JPEG/PNG/GIF/BMP bytes; "" = no image)
             audio tf.string [B]  (WAV file bytes; "" = no audio)
    outputs: classification: probabilities float32 [B, C], label tf.string [B], score float32 [B]
             regression: predictions float32 [B, T]

Only the model's modalities are inputs.
"""

import keras
import tensorflow as tf

from tfmm.models.heads.task_head import HEAD_KINDS


def build_serving_function(model, preprocessor, task: str, labels):
    """The raw-input serving function (a tf.function with a fixed signature).

    Args:
        model: trained tfmm model.
        preprocessor: the `MultimodalPreprocessor` used in training (already called once).
        task: "multiclass" | "multilabel" | "regression".
        labels: class names, in class-index order.

    Returns:
        A `tf.function` taking one tf.string [None] tensor per modality (keyword arguments named
        after the modalities) and returning a dict of outputs.
    """
    modalities = list(preprocessor.modalities)
    signature = [tf.TensorSpec([None], tf.string, name=name) for name in modalities]
    label_table = tf.constant(list(labels) or [""], tf.string)

    @tf.function(input_signature=signature)
    def serve(*raw_inputs):
        features = preprocessor(dict(zip(modalities, raw_inputs)))
        outputs = model(features, training=False)
        values = tf.cast(outputs[HEAD_KINDS[task]], tf.float32)
        if task == "regression":
            return {"predictions": values}
        if task == "multiclass":
            probabilities = tf.nn.softmax(values, axis=-1)
            best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"probabilities": probabilities, "label": tf.gather(label_table, best),
                    "score": tf.reduce_max(probabilities, axis=-1)}
        probabilities = tf.sigmoid(values)
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"probabilities": probabilities, "label": tf.gather(label_table, best),
                "score": tf.reduce_max(probabilities, axis=-1)}

    return serve


def export_serving_model(model, preprocessor, task: str, labels, export_dir: str) -> str:
    """Writes the SavedModel with the raw-input `serving_default` signature.

    Args:
        model, preprocessor, task, labels: see `build_serving_function`.
        export_dir: target folder (local or gs://); TF Serving expects a numbered version
            folder inside a model folder, e.g. `.../av_digits/1`.

    Returns:
        export_dir.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint("serving_default",
                         build_serving_function(model, preprocessor, task, labels))
    archive.write_out(export_dir, verbose=False)
    return export_dir
