"""The recipe of the manifest tasks (multi-class, multi-label, regression): JSONL manifests of
text, image and audio -> `MultimodalPreprocessor` -> the multimodal model -> the report of the
test manifest -> the raw-input serving SavedModel.
"""

import dataclasses
import importlib
import os

import tensorflow as tf

from tfmm.atomic_write import write_json
from tfmm.config import ConfigError
from tfmm.data.dataset import ExamplePipeline
from tfmm.data.manifest import Manifest, read_manifest_for_config
from tfmm.data.record_format import names_shards
from tfmm.data.record_source import RecordSource, read_records_for_config
from tfmm.data.records import RecordPipeline
from tfmm.evaluation.modality_removal import check_removable
from tfmm.evaluation.report import evaluate_pipeline
from tfmm.export.serving_model import export_serving_model
from tfmm.models.encoder_transfer import load_encoder_weights
from tfmm.models.multimodal_model import build_multimodal_model
from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
from tfmm.recipes.recipe import Recipe
from tfmm.run_folder import RunFolder, history_by_metric

# The bundled data sets `data.builder` names: (module, function writing it to a folder).
BUILDERS = {"av_digits": ("tfmm.data.av_digits", "build_av_digits"),
            "grid_digits": ("tfmm.data.grid_digits", "build_grid_digits"),
            "video_digits": ("tfmm.data.video_digits", "build_video_digits")}


def prepare_data(config, log=print):
    """Writes a bundled data set when the config names one and its manifests are missing.

    The rows are drawn with `data.seed`, never `training.seed`: a run's seed does not touch
    written data. A data set already written with another `data.seed` is kept and the run stops
    (`tfmm.data.av_digits.DataSeedError`).
    """
    data = config.data
    if not data.builder:
        return
    if data.builder not in BUILDERS:
        raise ConfigError(f"`data.builder` must be '' or one of {sorted(BUILDERS)}. "
                          f"Received: {data.builder!r}")
    module_name, function_name = BUILDERS[data.builder]
    build = getattr(importlib.import_module(module_name), function_name)

    out_dir = os.path.dirname(data.train_manifest) or "."
    if not (tf.io.gfile.exists(data.train_manifest) and tf.io.gfile.exists(data.test_manifest)):
        log(f"writing the {data.builder} data set to {out_dir}")
    build(out_dir, seed=data.seed)


def read_manifests(config, log=print) -> tuple:
    """Validates every manifest the config names, or checks its shards when `data.<split>_records`
    names some: (train, validation or None, test or None), each a `Manifest` or `RecordSource`."""
    data = config.data

    def read(split, labels=None):
        if getattr(data, f"{split}_records"):
            return read_records_for_config(getattr(data, f"{split}_records"), data, labels)
        if getattr(data, f"{split}_manifest"):
            return read_manifest_for_config(getattr(data, f"{split}_manifest"), data, labels)
        return None

    train = read("train")
    log(train.summary())
    others = {split: read(split, labels=train.labels) for split in ("validation", "test")}
    for source in others.values():
        if source is not None:
            log(source.summary())
    return train, others["validation"], others["test"]


@dataclasses.dataclass
class ManifestData:
    """The validated manifests of a run and the preprocessing they go through."""

    train: Manifest
    validation: Manifest
    test: Manifest
    preprocessor: MultimodalPreprocessor

    @property
    def labels(self) -> tuple:
        return self.train.labels


def class_weights_of(task, config, data, chief, log=print):
    """The float [C] weights `training.class_weights` gives the training manifest (None for
    "none"), logged and written to the run folder's `class_weights` file by the chief."""
    setting = config.training.class_weights
    if setting == "none":
        return None
    try:
        weights, counts = task.class_weights_for(
            setting, task.encode_targets(data.train.rows, data.labels), data.labels)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    described = ", ".join(f"{label} {weight:.3g} ({count})" for label, weight, count
                          in zip(data.labels, weights, counts))
    log(f"class weights ({setting if isinstance(setting, str) else 'given'}; label weight "
        f"(training {'positives' if task.multilabel else 'examples'})): {described}")
    if chief:
        tf.io.gfile.makedirs(config.training.run_dir)
        write_json(RunFolder(config.training.run_dir).class_weights, {
            "setting": setting, "training_manifest": data.train.path,
            "weights": dict(zip(data.labels, weights.tolist())),
            "counts": dict(zip(data.labels, counts.tolist()))})
    return weights


class ManifestRecipe(Recipe):
    """Multi-class, multi-label and regression runs on JSONL manifests."""

    def _preprocessor(self, config) -> MultimodalPreprocessor:
        return MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)

    def _pipeline(self, manifest, preprocessor, cache=False, **options):
        if isinstance(manifest, RecordSource):  # shards of `tfmm.pack` (no buckets, resampling)
            return RecordPipeline(manifest, preprocessor, self.task.name, cache)
        return ExamplePipeline(manifest, preprocessor, self.task.name, cache, **options)

    def load_data(self, config, chief, log=print) -> ManifestData:
        if chief:
            prepare_data(config, log)
        data = ManifestData(*read_manifests(config, log), self._preprocessor(config))
        if self.task.has_classes:  # the loss `training` asks for (class weights, focal loss)
            self.task = self.task.with_loss(config.training,
                                            class_weights_of(self.task, config, data, chief, log))
        return data

    def pipelines(self, config, data, log=print) -> tuple:
        train = self._pipeline(data.train, data.preprocessor, config.data.cache,
                               text_length_buckets=config.data.text_length_buckets,
                               resample=config.data.resample)
        validation = (self._pipeline(data.validation, data.preprocessor)
                      if data.validation else None)
        return train, validation, data.train.path

    def build_model(self, config, data, log=print):
        model = build_multimodal_model(
            config, self.task.num_outputs(data.labels, config.data.num_targets))
        if config.model.init_encoders_from:
            load_encoder_weights(model, config.model.init_encoders_from, log)
        return model

    def prepare_training(self, model, config, train_pipeline, validation_pipeline, strategy,
                         log=print) -> tuple:
        from tfmm.training.feature_cache import cache_frozen_features
        from tfmm.training.strategy import synchronize_batch_norm

        replicas = strategy.num_replicas_in_sync
        if isinstance(train_pipeline, RecordPipeline):  # FILE sharding: a shard per worker
            train_pipeline.check_workers(getattr(strategy.extended, "_num_workers", 1))
        if replicas > 1:
            # BatchNorm statistics over the global batch, as on one replica (docs/distributed.md).
            synchronized = synchronize_batch_norm(model)
            log(f"{synchronized} BatchNormalization layers compute their statistics across the "
                f"{replicas} replicas")
        if not config.training.cache_frozen_features:
            return model, train_pipeline, validation_pipeline
        # Fusion and head train on features the frozen encoders compute once; `model` shares the
        # trained weights and is what gets saved, evaluated and exported.
        with strategy.scope():
            return cache_frozen_features(model, config, train_pipeline, validation_pipeline, log)

    def run_info(self, config, data) -> dict:
        return {"labels": list(data.labels)}

    def evaluate(self, model, config, data, out_dir, history, log=print):
        if data.test is None:
            return None
        return evaluate_pipeline(model, self._pipeline(data.test, data.preprocessor), self.task,
                                 data.labels, out_dir, config.data.batch_size, history=history,
                                 name=self.report_name, group_field=config.data.report_group_field)

    def export(self, model, config, data, export_dir):
        export_serving_model(model, self._preprocessor(config), self.task.name, data.labels,
                             export_dir)

    def export_finished(self, model, run, export_dir):
        export_serving_model(model, self._preprocessor(run.config), self.task.name,
                             run.run_info.get("labels", []), export_dir)

    def file_pipeline(self, run, data_path: str, skip_invalid: bool, log=print) -> tuple:
        """(pipeline, labels) of a manifest file (or of `tfmm.pack` shards: a glob pattern or a
        .tfrecord file) read with a finished run's settings and label vocabulary, as
        `evaluate_file` scores it (also for noise and attack sweeps)."""
        config = run.config
        config.data.skip_invalid = skip_invalid
        labels = tuple(run.run_info["labels"])
        read = read_records_for_config if names_shards(data_path) else read_manifest_for_config
        manifest = read(data_path, config.data, labels=labels if self.task.has_classes else None)
        log(manifest.summary())
        return self._pipeline(manifest, self._preprocessor(config)), labels

    def evaluate_file(self, run, data_path, out_dir, name, batch_size, skip_invalid, log=print,
                      drop_modalities=(), drop_fraction=1.0):
        config = run.config
        removed = check_removable(config.data.modalities, drop_modalities)
        pipeline, labels = self.file_pipeline(run, data_path, skip_invalid, log)
        history = history_by_metric(run.folder.read_history()) or None
        return evaluate_pipeline(run.model, pipeline, self.task, labels, out_dir, batch_size,
                                 history=history, name=name,
                                 group_field=config.data.report_group_field,
                                 drop_modalities=removed, drop_fraction=drop_fraction)
