"""An export whose SavedModel also answers with modality importance (removal through masks).

`export_with_importance(run_path, export_dir)` writes the run's raw-input SavedModel with the
same `serving_default` as train.py's export (`tfmm.export.serving_model`: its outputs do not
change) and a second signature, `modality_importance`, taking the same inputs and returning
those outputs plus `importance_<modality>` float32 [B] per modality: the drop in the explained
class's probability (the most probable class; the first target for regression) when that
modality is removed through its mask, as `tfmm.explain.removal` computes it; NaN where it is
undefined (the modality absent, or the only one present). One extra forward pass per modality.

    python scripts/export_importance.py runs/av_digits/fused \
        runs/av_digits/fused/export_importance/1
"""

import keras
import tensorflow as tf

from tfmm.explain.integrated_gradients import task_score
from tfmm.export.serving_model import build_serving_function
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX, MultimodalPreprocessor
from tfmm.run_folder import load_finished_run
from tfmm.tasks import get_task

IMPORTANCE_PREFIX = "importance_"


def removal_importance_graph(model, features, task_name: str) -> dict:
    """{modality: float32 [B]} removal importance in graph mode (NaN where undefined)."""
    (output,) = model(features, training=False).values()
    output = tf.cast(output, tf.float32)
    index = get_task(task_name).explained_index(output)

    def chosen(values):
        scores = tf.stack([task_score(task_name, values, k) for k in range(values.shape[-1])], 1)
        return tf.gather(scores, index, axis=1, batch_dims=1)

    full = chosen(output)
    present = tf.stack([tf.cast(features[name + MASK_SUFFIX], tf.float32) > 0
                        for name in model.modalities], 1)  # [B, M]
    importance = {}
    for position, name in enumerate(model.modalities):
        removed = dict(features)
        removed[name + MASK_SUFFIX] = tf.zeros_like(features[name + MASK_SUFFIX])
        (without,) = model(removed, training=False).values()
        others = tf.reduce_any(tf.concat([present[:, :position], present[:, position + 1:]], 1),
                               axis=1)
        defined = present[:, position] & others
        drop = full - chosen(tf.cast(without, tf.float32))
        importance[IMPORTANCE_PREFIX + name] = tf.where(defined, drop, float("nan"))
    return importance


def export_with_importance(run_path: str, export_dir: str) -> str:
    """Writes the run's SavedModel with `serving_default` and `modality_importance`.

    Args:
        run_path: a finished run folder (or its model file) of a manifest task.
        export_dir: the SavedModel folder to write.
    """
    run = load_finished_run(run_path)
    config, task = run.config, get_task(run.config.data.task)
    labels = list(run.run_info.get("labels", []))
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    model = run.model
    serve = build_serving_function(model, preprocessor, task, labels)
    importance = build_serving_function(
        model, preprocessor, task, labels,
        extra_outputs=lambda features: removal_importance_graph(model, features, task.name))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint("modality_importance", importance)
    archive.write_out(export_dir, verbose=False)
    return export_dir
