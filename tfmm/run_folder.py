"""The run folder's layout: the one module that names the files a run writes and reads.

    run_dir/
        config.json               the config the run trained with (`RunFolder.config`)
        config_changes.json       changes accepted by --allow-config-change on resume
        run_info.json             what evaluation needs to know: task, labels, sizes
        class_weights.json        `training.class_weights` as computed from the training data
        history.json              one record per epoch (`tfmm.training.history`)
        checkpoints/              tf.train.CheckpointManager's folder (resumption)
        logs/train/               TensorBoard scalars
        model.keras               the trained model (reloads after `import tfmm`)
        <name>_report.json        an evaluation report ("test", "eval", or evaluate.py's --name)
        <name>_predictions.json   a question-answering evaluation's answers
        <name>_predictions.jsonl  a classification or regression evaluation's, one per example
        training_curves.png       plots beside the reports
        export/1/                 the serving SavedModel (a TF Serving version folder)

Training, evaluation and export all ask a `RunFolder` for these paths; tests/test_run_folder_layout.py
checks that no other module of tfmm, train.py or evaluate.py spells the names.

    folder = RunFolder("runs/av_digits/fused")
    folder.write_run_info({"task": "multiclass", "labels": ["0", "1"]})
    run = load_finished_run("runs/av_digits/fused")   # config, run info and model
"""

import dataclasses
import json
import os
import shutil

import tensorflow as tf

from tfmm.atomic_write import atomic_path, write_json
from tfmm.errors import UserError

# Below this much free space a run stops before training (checkpoints and exports need room).
MINIMUM_FREE_BYTES = 500 * 2**20
MODEL_SUFFIX = ".keras"


class RunDirError(UserError):
    """A run folder that cannot be written."""


class RunFolderError(UserError):
    """A path that is not a finished tfmm run folder or model."""


class _InFolder:
    """A path inside the run folder, read as an attribute: `RunFolder(path).config`."""

    def __init__(self, *names):
        self.names = names

    def __get__(self, folder, owner=None):
        return self if folder is None else os.path.join(folder.path, *self.names)


class RunFolder:
    """The paths of one run folder, and reading and writing its JSON records.

    Args:
        path: the folder (local, or any `tf.io.gfile` path such as gs://bucket/run).
    """

    # --- paths (strings: os.path.join(path, ...)) ------------------------------------------
    config = _InFolder("config.json")
    config_changes = _InFolder("config_changes.json")
    run_info = _InFolder("run_info.json")
    class_weights = _InFolder("class_weights.json")  # the weights training.class_weights gave
    history = _InFolder("history.json")
    checkpoints = _InFolder("checkpoints")
    training_logs = _InFolder("logs", "train")  # TensorBoard's folder of the training scalars
    model = _InFolder("model" + MODEL_SUFFIX)
    training_curves = _InFolder("training_curves.png")  # the history's plot, beside the reports
    # The serving SavedModel's version folder (TF Serving loads the highest number).
    export_version = _InFolder("export", "1")

    def __init__(self, path: str):
        self.path = path

    def report(self, name: str) -> str:
        """An evaluation report: `name` is "test", "eval" or the evaluated file's name."""
        return os.path.join(self.path, f"{name}_report.json")

    def predictions(self, name: str) -> str:
        """A question-answering evaluation's {question id: answer} file."""
        return os.path.join(self.path, f"{name}_predictions.json")

    def example_predictions(self, name: str) -> str:
        """A classification or regression evaluation's per-example predictions (JSON lines)."""
        return os.path.join(self.path, f"{name}_predictions.jsonl")

    # --- checks ----------------------------------------------------------------------------
    def check_writable(self, minimum_free_bytes: int = MINIMUM_FREE_BYTES):
        """Fails now, not after an hour of training, when the folder is unwritable or full.

        Raises:
            RunDirError: one line naming the folder and the problem.
        """
        try:
            tf.io.gfile.makedirs(self.path)
            probe = os.path.join(self.path, ".write_probe")
            with tf.io.gfile.GFile(probe, "w") as handle:
                handle.write("ok")
            tf.io.gfile.remove(probe)
        except (OSError, tf.errors.OpError) as error:
            raise RunDirError(f"run folder {self.path} is not writable: {error}") from None
        if "://" not in self.path:
            free = shutil.disk_usage(self.path).free
            if free < minimum_free_bytes:
                raise RunDirError(
                    f"run folder {self.path} has {free / 2**20:.0f} MiB free; checkpoints and "
                    f"exports need at least {minimum_free_bytes / 2**20:.0f} MiB")

    def has_checkpoint(self) -> bool:
        return bool(tf.train.latest_checkpoint(self.checkpoints))

    # --- records ---------------------------------------------------------------------------
    def write_config(self, config):
        """The run's `tfmm.config.Config` as JSON (the record of what ran), atomically."""
        write_json(self.config, config.to_dict())

    def read_config_dict(self) -> dict:
        """The saved config as a plain dict (None when there is none)."""
        return _read_json(self.config)

    def read_config(self):
        """The saved config as a validated-on-read `tfmm.config.Config`."""
        from tfmm.config import config_from_dict

        return config_from_dict(self.read_config_dict(), source=self.config)

    def write_run_info(self, info: dict):
        """What evaluate.py needs to know about the run (task, labels, sizes)."""
        write_json(self.run_info, info)

    def read_run_info(self) -> dict:
        return _read_json(self.run_info)

    def write_history(self, records: list):
        """The epoch records, written aside and renamed over the file: a kill never leaves a
        half-written history, a full disk is one error line."""
        write_json(self.history, records, indent=1)

    def read_history(self) -> list:
        """The run's epoch records, oldest first ([] when the run has none yet)."""
        return _read_json(self.history) or []

    def read_config_changes(self) -> list:
        """The config changes accepted on resume, oldest first."""
        return _read_json(self.config_changes) or []

    def append_config_change(self, change: dict):
        """Adds one accepted config change ({key: {"before", "after"}}) to the folder's list."""
        write_json(self.config_changes, self.read_config_changes() + [change])

    def save_model(self, model) -> str:
        """The trained Keras model, written aside and renamed (reloads without custom_objects)."""
        with atomic_path(self.model) as partial:
            model.save(partial)
        return self.model


def _read_json(path: str):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def history_by_metric(records: list) -> dict:
    """Epoch records -> {metric: [value per epoch]} (the "epoch" and "seconds" keys left out)."""
    keys = [key for key in (records[0] if records else {}) if key not in ("epoch", "seconds")]
    return {key: [record.get(key) for record in records] for key in keys}


def model_file(path: str) -> str:
    """The model file a user names: a `.keras` file as given, or a run folder's model."""
    return path if path.endswith(MODEL_SUFFIX) else RunFolder(path).model


@dataclasses.dataclass
class FinishedRun:
    """A trained run loaded back: its folder, config, run info and Keras model."""

    folder: RunFolder
    config: object
    run_info: dict
    model: object


def load_finished_run(path: str) -> FinishedRun:
    """Loads a run folder (or the model file inside one) that train.py finished.

    Raises:
        RunFolderError: a file training writes at its end is missing (one line).
    """
    import keras

    import tfmm  # noqa: F401  (registers tfmm's layers, so the model loads without custom_objects)

    folder = RunFolder(os.path.dirname(path) if path.endswith(MODEL_SUFFIX) else path)
    model_path = model_file(path)
    for required in (model_path, folder.config, folder.run_info):
        if not tf.io.gfile.exists(required):
            raise RunFolderError(f"{path} is not a finished tfmm run: {required} is missing "
                                 "(train.py writes it when training ends)")
    return FinishedRun(folder, folder.read_config(), folder.read_run_info(),
                       keras.saving.load_model(model_path))
