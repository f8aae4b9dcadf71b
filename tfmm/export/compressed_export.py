"""What `export.py` does: a finished run's model as a LiteRT file or a (Keras int8) SavedModel.

    litert      none        <run>/litert/model_float32.tflite
    litert      dynamic     <run>/litert/model_dynamic_int8.tflite   (int8 weights)
    litert      int8        <run>/litert/model_int8.tflite           (int8 weights + activations,
                                                                      calibrated on --representative
                                                                      training examples)
    litert      int16x8     <run>/litert/model_int16x8.tflite        (int8 weights, int16
                                                                      activations, calibrated
                                                                      the same way)
    savedmodel  none        <run>/export_float32/1                   (as training's export)
    savedmodel  keras-int8  <run>/export_keras_int8/1                (`model.quantize("int8")`,
                                                                      the same raw-input signature)
"""

import os

import tensorflow as tf

from tfmm.errors import UserError
from tfmm.export.litert import (CALIBRATED, QUANTIZATIONS, convert_to_litert,
                                representative_features)

FORMATS = ("litert", "savedmodel")
_LITERT_NAMES = {"none": "float32", "dynamic": "dynamic_int8", "int8": "int8",
                 "int16x8": "int16x8"}
_SAVEDMODEL_NAMES = {"none": "float32", "keras-int8": "keras_int8"}


def default_output(run_dir: str, format: str, quantize: str) -> str:
    """Where export.py writes without --out (inside the run folder)."""
    if format == "litert":
        return os.path.join(run_dir, "litert", f"model_{_LITERT_NAMES[quantize]}.tflite")
    return os.path.join(run_dir, f"export_{_SAVEDMODEL_NAMES[quantize]}", "1")


def check_choice(format: str, quantize: str):
    """Raises UserError for a format / quantization pair that has no exporter."""
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}; got {format!r}")
    allowed = QUANTIZATIONS if format == "litert" else tuple(_SAVEDMODEL_NAMES)
    if quantize not in allowed:
        raise UserError(f"--format {format} takes --quantize {' | '.join(allowed)}; "
                        f"got {quantize!r}")


def training_batches(run, log=print):
    """The run's training examples as the model sees them (features, targets), shuffled with
    the run's seed: read through the run's own recipe (manifest rows or QA windows)."""
    from tfmm.recipes import recipe_for

    recipe = recipe_for(run.config.data.task)
    data = recipe.load_data(run.config, chief=False, log=log)
    train, _, _ = recipe.pipelines(run.config, data, log=log)
    return train.batches(32, shuffle=True, seed=run.config.training.seed)


def export_savedmodel(model, run, export_dir: str) -> str:
    """The raw-input serving SavedModel of training's export, for `model` (e.g. Keras int8)."""
    from tfmm.recipes import recipe_for

    recipe_for(run.config.data.task).export_finished(model, run, export_dir)
    return export_dir


def export_compressed(run_path: str, format: str, quantize: str, representative: int = 100,
                      out: str = None, log=print) -> str:
    """Writes a run's model in `format` with `quantize`; returns the written path.

    Args:
        run_path: a finished run folder (or its model.keras).
        format: "litert" or "savedmodel".
        quantize: see the module table.
        representative: training examples calibrating full int8 and 16x8 (litert).
        out: the .tflite file or SavedModel folder (default: `default_output`).
    """
    from tfmm.run_folder import load_finished_run

    check_choice(format, quantize)
    if quantize in CALIBRATED and representative <= 0:
        raise UserError(f"--representative must be > 0 for {quantize}; got {representative}")
    run = load_finished_run(run_path)
    out = out or default_output(run.folder.path, format, quantize)
    if format == "savedmodel":
        model = run.model
        if quantize == "keras-int8":
            model.quantize("int8")  # Dense / EinsumDense / Embedding kernels to int8
        export_savedmodel(model, run, out)
        log(f"wrote {out} ({quantize})")
        return out
    examples = None
    if quantize in CALIBRATED:
        examples = representative_features(training_batches(run, log), representative)
    flatbuffer = convert_to_litert(run.model, quantize, examples)
    tf.io.gfile.makedirs(os.path.dirname(out) or ".")
    with tf.io.gfile.GFile(out, "wb") as handle:
        handle.write(flatbuffer)
    log(f"wrote {out} ({len(flatbuffer) / 2**20:.1f} MiB, {quantize})")
    return out
