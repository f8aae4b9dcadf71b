"""Export for TF Serving: a SavedModel whose `serving_default` takes raw inputs.

The signature runs the training-time `MultimodalPreprocessor` (tokenisation, image decoding,
WAV decoding and resampling) and the model in one graph:

    inputs:  text  tf.string [B]  (questions / sentences; "" = no text)
             image tf.string [B]  (encoded JPEG/PNG/GIF/BMP bytes; "" = no image)
             audio tf.string [B]  (WAV file bytes; "" = no audio)
             video tf.string [B]  (animated GIF bytes; "" = no video)
    outputs: multiclass: probabilities float32 [B, C], label tf.string [B] (the most probable
                 class), score float32 [B] (its probability)
             multilabel: the same, and labels tf.string [B, C]: entry c is class c's name when
                 its probability is >= 0.5 (MULTILABEL_THRESHOLD in tfmm/tasks), else ""
             regression: predictions float32 [B, T]

Only the model's modalities are inputs. "" is accepted only for the preprocessor's
`optional_modalities`; an empty required input, a file that is not a WAV / image / GIF video, or
text that is not UTF-8 fails the request with an InvalidArgumentError naming the input and the row
(`tfmm.export.input_checks`).
"""

import keras
import tensorflow as tf

from tfmm.export.input_checks import serving_input_checks
from tfmm.tasks import get_task


def build_serving_function(model, preprocessor, task: str, labels, extra_outputs=None):
    """The raw-input serving function (a tf.function with a fixed signature).

    Args:
        model: trained tfmm model.
        preprocessor: the `MultimodalPreprocessor` used in training (already called once); an
            input outside its `optional_modalities` may not be "".
        task: a classification or regression `tfmm.tasks.Task` (or its name): it chooses the
            outputs (`Task.serving_outputs`).
        labels: class names, in class-index order.
        extra_outputs: optional callable(features) -> dict of more outputs, computed from the
            preprocessed features in the same graph (e.g. modality importance).

    Returns:
        A `tf.function` taking one tf.string [None] tensor per modality (keyword arguments named
        after the modalities) and returning a dict of outputs.
    """
    task = get_task(task)
    modalities = list(preprocessor.modalities)
    signature = [tf.TensorSpec([None], tf.string, name=name) for name in modalities]
    label_table = tf.constant(list(labels) or [""], tf.string)

    required = [name for name in modalities if name not in preprocessor.optional_modalities]

    @tf.function(input_signature=signature)
    def serve(*raw_inputs):
        inputs = dict(zip(modalities, raw_inputs))
        with tf.control_dependencies(serving_input_checks(inputs, required)):
            inputs = {name: tf.identity(value) for name, value in inputs.items()}
        features = preprocessor(inputs)
        outputs = task.serving_outputs(model(features, training=False), label_table)
        if extra_outputs is not None:
            outputs.update(extra_outputs(features))
        return outputs

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
