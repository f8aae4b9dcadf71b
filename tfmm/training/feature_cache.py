"""Frozen encoders run once: train fusion and head on cached encoder features.

A frozen encoder (`model.freeze_*_encoder`) computes the same features for an example in every
epoch; only its projection, the fusion and the head learn. With `training.cache_frozen_features`
the run computes those features once per example (inference mode: no augmentation, no dropout
inside the frozen part, BatchNorm on moving statistics: exactly what a frozen encoder computes
in training too, see `tfmm.models.encoder_features`) and trains a model that starts at them.
That model is built from the full `MultimodalModel`'s own parts (its `encoders`: each frozen
encoder's projection, unfrozen encoders whole; its `modality_dropout`, `fusion` and `head`), so
training it trains the full model, which is then saved, evaluated on raw inputs and exported
as usual. The feature-level model is what `Trainer` checkpoints, so a killed run resumes (the
features are recomputed first).

On the AV-digits quickstart this turns a fused epoch from a ResNet50 + MiniLM forward pass per
batch into a few small matrix products (README "Quickstart").

With `training.feature_cache_dir` the computed features are also saved there (one .npz per
distinct split), named by a SHA-256 digest of the extractor (its architecture and every weight)
and of every decoded example the pipeline yields (inputs and targets, in order): a later run
whose frozen encoders and data are the same loads them instead of running the encoders again
(the fusion ablation's runs share one folder; scripts/fusion_ablation.py). Anything that changes
the features changes the name, so a stale file is never read; the examples are still decoded to
compute it.
"""

import hashlib
import io
import os
import time

import numpy as np
import tensorflow as tf

import keras

from tfmm.atomic_write import write_bytes
from tfmm.data.dataset import count_batches, epoch_batches
from tfmm.models.multimodal_model import MultimodalModel, fuse_and_predict, new_encoder_inputs
from tfmm.preprocessing.multimodal_preprocessor import MASK_SUFFIX
from tfmm.video_encoder_config import encoder_frozen

FEATURE_SUFFIX = "_features"
TOKEN_MASK_SUFFIX = "_token_mask"


def frozen_modalities(config) -> tuple:
    """The configured modalities whose encoder is frozen (in the config's modality order)."""
    return tuple(modality for modality in config.data.modalities
                 if encoder_frozen(config.model, modality))


def build_feature_models(model: MultimodalModel, frozen) -> tuple:
    """Splits a `MultimodalModel` at the frozen encoders' projections.

    Args:
        model: the full model; its `encoders`, `modality_dropout`, `fusion` and `head` are used.
        frozen: the modalities whose encoder output is cached.

    Returns:
        (extractor, top): `extractor` maps the frozen encoders' raw inputs to
        {"<modality>_features": [B, F]} (the input of each projection); for token encoders
        {"<modality>_features": [B, T, F], "<modality>_token_mask": [B, T]}; `top` takes those
        features, the masks and the unfrozen modalities' inputs and returns what `model` returns,
        sharing every weight with it. Video: per-frame features [B, T, 2048]; the top also
        takes "video_frame_mask" (the temporal fusion after the features reads it).
    """
    extractor_inputs, extractor_outputs = {}, {}
    top_inputs, embeddings, masks = {}, [], []
    for modality, encoder in model.encoders.items():
        mask = keras.Input((), dtype="float32", name=modality + MASK_SUFFIX)
        top_inputs[mask.name] = mask
        masks.append(mask)
        raw, named_raw = new_encoder_inputs(encoder)
        if modality in frozen:
            # The encoder's two parts (see its builder): the frozen one (an EncoderFeatures,
            # which runs in inference mode like in training) and the projection.
            features_of = encoder.get_layer(f"{modality}_features")
            if modality == "video":  # the part after the features also reads the frame mask
                extractor_inputs["video"] = named_raw["video"]
                extractor_outputs["video" + FEATURE_SUFFIX] = features_of(named_raw["video"])
                video_inputs = new_encoder_inputs(encoder.get_layer("video_temporal"))[1]
                top_inputs.update(video_inputs)
                embeddings.append(encoder.get_layer("video_temporal")(video_inputs))
                continue
            projection = encoder.get_layer(f"{modality}_projection")
            extractor_inputs.update(named_raw)
            computed = features_of(raw)
            token_outputs = isinstance(computed, dict)  # {"features", "token_mask"}
            extractor_outputs[modality + FEATURE_SUFFIX] = (computed["features"] if token_outputs
                                                            else computed)
            features = keras.Input(projection.input.shape[1:], name=modality + FEATURE_SUFFIX)
            top_inputs[features.name] = features
            if not token_outputs:
                embeddings.append(projection(features))
                continue
            extractor_outputs[modality + TOKEN_MASK_SUFFIX] = computed["token_mask"]
            token_mask = keras.Input(computed["token_mask"].shape[1:], dtype="float32",
                                     name=modality + TOKEN_MASK_SUFFIX)
            top_inputs[token_mask.name] = token_mask
            embeddings.append({"tokens": projection(features), "token_mask": token_mask})
        else:
            top_inputs.update(named_raw)
            embeddings.append(encoder(raw))
    outputs = fuse_and_predict(embeddings, masks, model.modality_dropout, model.fusion,
                               model.head, model.head.task)
    extractor = keras.Model(extractor_inputs, extractor_outputs, name="frozen_feature_extractor")
    top = keras.Model(top_inputs, outputs, name="tfmm_multimodal_on_features")
    return extractor, top


CACHE_FORMAT = b"tfmm feature cache 1"


def _update_with_array(digest, name: str, value) -> None:
    value = np.ascontiguousarray(value)
    digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
    digest.update(value.tobytes())


def extractor_digest(extractor: keras.Model):
    """A SHA-256 object over the extractor's architecture (its JSON) and every weight."""
    digest = hashlib.sha256(CACHE_FORMAT)
    digest.update(extractor.to_json().encode())
    for weight in extractor.weights:
        _update_with_array(digest, weight.path, keras.ops.convert_to_numpy(weight))
    return digest


# "auto" times each encoder both ways only for a training split of at least this many batches
# (a second compilation costs seconds; on a few batches XLA, the previous default, is kept).
TIMED_CHOICE_MIN_BATCHES = 20


class FeatureExtraction:
    """The extractor run per frozen modality, each part with or without XLA.

    XLA's gain depends on the encoder and the machine: on a 2-core AMD EPYC CPU, ResNet50's
    inference at 64x64 ran 4.6x faster without XLA (0.71 s a batch of 64 against 3.26 s), the
    log-Mel CNN's 1.8x faster with it, MiniLM's about the same either way with oneDNN on and 1.9x
    faster with XLA without oneDNN (`bench/feature_extraction.py`, bench/README.md). So with
    `jit_compile` "auto" each part is timed both ways on the first batch it sees (one call each
    after compiling) and keeps the faster.

    Args:
        extractor: the frozen-feature model of `build_feature_models`.
        input_names: {modality: the extractor input names its encoder reads}; its outputs are
            "<modality>_features" / "<modality>_token_mask". None: one part, the whole extractor.
        jit_compile: "auto", "true" or "false" (`training.jit_compile`).
        log: prints the choice made for each part under "auto".
    """

    def __init__(self, extractor: keras.Model, input_names=None, jit_compile="auto", log=print):
        setting = str(jit_compile).lower()
        if setting not in ("auto", "true", "false"):
            raise ValueError("jit_compile: expected 'auto', 'true' or 'false'. Received: "
                             f"{jit_compile!r}")
        if input_names is None:
            self._parts = {"all": extractor}
        else:
            self._parts = {modality: keras.Model(
                {name: extractor.input[name] for name in names},
                {name: tensor for name, tensor in extractor.output.items()
                 if name in (modality + FEATURE_SUFFIX, modality + TOKEN_MASK_SUFFIX)},
                name=f"{modality}_feature_extractor") for modality, names in input_names.items()}
        self._setting, self._log = setting, log
        self._functions = {}

    @classmethod
    def per_modality(cls, model: MultimodalModel, extractor: keras.Model, jit_compile="auto",
                     log=print) -> "FeatureExtraction":
        """One part per frozen encoder of `model` that `extractor` (of `model`) computes."""
        modalities = {name[:-len(FEATURE_SUFFIX)] for name in extractor.output
                      if name.endswith(FEATURE_SUFFIX)}
        input_names = {modality: [tensor.name for tensor in keras.tree.flatten(encoder.input)
                                  if tensor.name in extractor.input]
                       for modality, encoder in model.encoders.items() if modality in modalities}
        return cls(extractor, input_names, jit_compile, log)

    @property
    def parts(self) -> dict:
        """{modality (or "all"): the keras.Model computing its outputs}."""
        return dict(self._parts)

    def function(self, modality: str, jit: bool):
        """A tf.function running the part of `modality` in inference mode, XLA on or off."""
        part = self._parts[modality]
        return tf.function(lambda inputs: part(inputs, training=False), jit_compile=jit)

    def _run(self, function, inputs) -> dict:
        return {name: np.asarray(value) for name, value in function(inputs).items()}

    def _choose(self, modality: str, inputs: dict) -> dict:
        """Times the part both ways on `inputs`, keeps the faster and returns its outputs."""
        seconds, outputs, functions = {}, {}, {}
        for jit in (True, False):
            functions[jit] = self.function(modality, jit)
            functions[jit](inputs)  # traces and compiles
            start = time.perf_counter()
            outputs[jit] = self._run(functions[jit], inputs)
            seconds[jit] = time.perf_counter() - start
        faster = min(seconds, key=seconds.get)
        self._functions[modality] = functions[faster]
        self._log(f"{modality} features: XLA {'on' if faster else 'off'} (one batch: "
                  f"{seconds[True]:.3f} s with XLA, {seconds[False]:.3f} s without)")
        return outputs[faster]

    def __call__(self, features: dict) -> dict:
        """{raw input name: batch} (other columns ignored) -> {output name: numpy array}."""
        outputs = {}
        for modality, part in self._parts.items():
            inputs = {name: features[name] for name in part.input}
            if modality not in self._functions and self._setting == "auto":
                outputs.update(self._choose(modality, inputs))
                continue
            if modality not in self._functions:
                self._functions[modality] = self.function(modality, self._setting == "true")
            outputs.update(self._run(self._functions[modality], inputs))
        return outputs


def _append_outputs(parts: dict, extract, features) -> None:
    for name, value in extract(features).items():
        parts.setdefault(name, []).append(value)


def compute_features(extractor: keras.Model, pipeline, batch_size: int,
                     cache_dir: str = "", log=print, extraction=None) -> tuple:
    """Runs the extractor over every example of an `ExamplePipeline`, in manifest order.

    Args:
        extractor: the frozen-feature model of `build_feature_models`.
        pipeline: an `ExamplePipeline`.
        batch_size: examples per extractor call.
        cache_dir: "" (no disk cache: one pass that runs the extractor) or a folder where the
            extractor's outputs are saved, or loaded from when a file of the same digest is there
            (the digest needs every example first, so a miss runs the extractor in a second pass).
        log: prints whether the features were loaded or saved.
        extraction: the `FeatureExtraction` that runs `extractor` (share one between splits so
            its XLA choice is made once); None: the whole extractor under XLA.

    Returns:
        (inputs, targets): numpy arrays, inputs a dict holding the features, the masks and the
        raw inputs of unfrozen modalities (texts padded to the full length).
    """
    names = set(extractor.input)
    columns, targets, outputs = {}, [], {}
    digest = extractor_digest(extractor) if cache_dir else None
    extraction = extraction or FeatureExtraction(extractor, jit_compile="true", log=log)
    for features, target in pipeline.batches(batch_size):
        for name, value in features.items():
            if name not in names:
                columns.setdefault(name, []).append(np.asarray(value))
        targets.append(np.asarray(target))
        if not cache_dir:
            _append_outputs(outputs, extraction, features)
        else:
            for name in sorted(features):
                _update_with_array(digest, name, features[name])
            _update_with_array(digest, "target", target)
    arrays = {name: np.concatenate(parts) for name, parts in columns.items()}
    targets = np.concatenate(targets)
    if not cache_dir:
        arrays.update({name: np.concatenate(parts) for name, parts in outputs.items()})
        return arrays, targets
    path = os.path.join(cache_dir, digest.hexdigest()[:40] + ".npz")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "rb") as handle:
            with np.load(io.BytesIO(handle.read())) as saved:
                arrays.update({name: saved[name] for name in saved.files})
        log(f"loaded the cached features of {pipeline.num_examples} examples from {path}")
        return arrays, targets
    for features, _ in pipeline.batches(batch_size):
        _append_outputs(outputs, extraction, features)
    outputs = {name: np.concatenate(parts) for name, parts in outputs.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **outputs)
    tf.io.gfile.makedirs(cache_dir)
    write_bytes(path, buffer.getvalue())
    log(f"saved the features of {pipeline.num_examples} examples to {path}")
    arrays.update(outputs)
    return arrays, targets


class FeaturePipeline:
    """Cached per-example model inputs in memory, batched per epoch like `ExamplePipeline`.

    Args:
        compute: returns (inputs dict of arrays [N, ...], targets [N]); called on the first
            `batches` call only, so a finished run that resumes computes nothing.
        num_examples: N.

    The same (seed, epoch) shuffles into the same order as the `ExamplePipeline` the features
    came from, so a cached run sees its examples in the order an uncached run would.
    """

    def __init__(self, compute, num_examples: int):
        self._compute, self._arrays = compute, None
        self.num_examples = num_examples

    def arrays(self) -> tuple:
        if self._arrays is None:
            self._arrays = self._compute()
        return self._arrays

    def batches(self, batch_size: int, **epoch) -> tf.data.Dataset:
        """One epoch; keyword arguments as `ExamplePipeline.batches`."""
        examples = tf.data.Dataset.from_tensor_slices(self.arrays())
        return epoch_batches(examples, self.num_examples, batch_size, **epoch)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool) -> int:
        return count_batches(self.num_examples, batch_size, drop_remainder)


def cache_frozen_features(model: MultimodalModel, config, train_pipeline,
                          validation_pipeline=None, log=print) -> tuple:
    """The feature-level model and its pipelines for `Trainer`.

    Returns:
        (top model, train FeaturePipeline, validation FeaturePipeline or None).
    """
    frozen = frozen_modalities(config)
    extractor, top = build_feature_models(model, frozen)
    batch_size = config.data.batch_size
    jit_compile = str(config.training.jit_compile).lower()
    if jit_compile == "auto" and count_batches(train_pipeline.num_examples, batch_size,
                                               False) < TIMED_CHOICE_MIN_BATCHES:
        jit_compile = "true"  # too few batches to pay for compiling every encoder twice
    extraction = FeatureExtraction.per_modality(model, extractor, jit_compile, log)

    def cached(pipeline):
        if pipeline is None:
            return None

        def compute():
            inputs, targets = compute_features(extractor, pipeline, batch_size,
                                               config.training.feature_cache_dir, log,
                                               extraction)
            log(f"cached the frozen {', '.join(frozen)} encoder features of "
                f"{pipeline.num_examples} examples")
            return inputs, targets
        return FeaturePipeline(compute, pipeline.num_examples)

    trainable = sum(int(np.prod(variable.shape)) for variable in top.trainable_variables)
    log(f"training {trainable:,} weights on the features of the frozen "
        f"{', '.join(frozen)} encoders (computed once per example)")
    return top, cached(train_pipeline), cached(validation_pipeline)
