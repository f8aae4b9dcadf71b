"""One flat config per component, loaded from a config file plus `--set key=value` overrides.

A config file is a Python file that defines `get_config()` returning a nested dict
(`{"data": {...}, "model": {...}, "training": {...}}`), or a JSON file holding that dict.
Every key must name a field below: an unknown key is an error, never a silent no-op.

Example:
    config = load_config("configs/av_digits.py", overrides=["training.epochs=3"])
"""

import ast
import dataclasses
import importlib.util
import json
import os
from typing import Any, Optional

from tfmm.adversarial_config import check_adversarial_config, coerce_adversarial
from tfmm.augmentation_config import FIELD_COERCERS as AUGMENTATION_COERCERS
from tfmm.augmentation_config import check_augmentation_config
from tfmm.errors import UserError
from tfmm.frozen_features_config import check_frozen_features_config
from tfmm.imbalance_config import FIELD_COERCERS as IMBALANCE_COERCERS, check_imbalance_config
from tfmm.records_config import RECORD_FIELD_COERCERS, check_records_config
from tfmm.fusion_config import FUSION_FIELD_COERCERS, check_fusion_config
from tfmm.pruning_config import PRUNING_FIELD_COERCERS
from tfmm.video_config import check_video_config
from tfmm.video_encoder_config import VIDEO_FIELD_COERCERS, VideoEncoderConfig
from tfmm.tasks import get_task
from tfmm.tasks.names import RENAMED_TASKS, TASK_NAMES

MODALITIES = ("text", "image", "audio", "video")
FIELD_COERCERS = {**IMBALANCE_COERCERS, **AUGMENTATION_COERCERS, **RECORD_FIELD_COERCERS,
                  **PRUNING_FIELD_COERCERS, **VIDEO_FIELD_COERCERS, **FUSION_FIELD_COERCERS,
                  "training.adversarial": coerce_adversarial}

class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema."""


@dataclasses.dataclass
class DataConfig:
    # Where the data comes from.
    train_manifest: str = ""  # JSONL manifest for training (see README "Manifest format").
    validation_manifest: str = ""  # optional JSONL evaluated after each epoch.
    test_manifest: str = ""  # optional JSONL evaluated (and reported) after training.
    # Globs of `python -m tfmm.pack` shards read instead of that split's manifest (README).
    train_records: str = ""
    validation_records: str = ""
    test_records: str = ""
    builder: str = ""  # bundled data set written on first use (recipes.manifest.BUILDERS), or "".
    seed: int = 0  # seed the builder draws the data set's rows with (never training.seed).
    # What the rows hold.
    # "multiclass" | "multilabel" | "regression" | "qa" (extractive question answering on
    # SQuAD-format data: its files, windows and decoding are in the `qa` section).
    task: str = "multiclass"
    modalities: tuple = ("text", "image", "audio")  # inputs the model reads.
    optional_modalities: tuple = ()  # modalities a row may lack (it is then masked out).
    labels: tuple = ()  # class names; empty: the sorted labels of the training manifest.
    num_targets: int = 1  # regression outputs per example.
    skip_invalid: bool = False  # skip (and count) invalid rows instead of stopping.
    report_group_field: str = ""  # manifest field to break test metrics down by (e.g. a type).
    # Static shapes of everything that reaches the model.
    text_sequence_length: int = 32  # tokens per text, [CLS] and [SEP] included.
    # Shorter lengths a batch of texts is cut to (e.g. [16, 32, 64]): each batch takes the smallest
    # that holds its longest text, training batches are grouped by it; one XLA compilation per
    # length. Empty: every batch is text_sequence_length long (static; what TPUs need).
    text_length_buckets: tuple = ()
    image_size: int = 32  # images are resized to image_size x image_size x 3.
    audio_sample_rate: int = 8000  # Hz the model expects.
    audio_length: int = 8000  # samples per clip: longer clips are cropped, shorter padded.
    resample_audio: bool = True  # resample other rates in the graph; False: reject them.
    video_frames: int = 8  # frames per clip (README "Video"; tfmm/video_config.py).
    video_size: int = 75  # frames are resized to video_size x video_size x 3 (>= 75).
    video_sampling: str = "uniform"  # "uniform" (spread over the clip) | "first".
    batch_size: int = 64  # global batch size (split across replicas).
    shuffle_buffer: int = 10000  # examples in the shuffle buffer.
    cache: Any = True  # decoded examples: true|"memory", false|"none", or a file path prefix.
    service: Any = None  # {"dispatcher": "grpc://host:port"}: tf.data service (records_config.py)
    resample: str = "none"  # training draws: "none" | "balanced" (classes equally) | "sqrt".


@dataclasses.dataclass
class ModelConfig:
    # Text encoder (keras-hub BertBackbone).
    text_preset: str = "minilm"  # "minilm" (offline package), keras-hub preset name, or a directory.
    freeze_text_encoder: bool = True  # keep the BERT weights fixed.
    text_augmentation: Any = None  # {"token_mask_rate": 0.1}: tfmm/augmentation_config.py.
    # Image encoder (keras.applications.ResNet50).
    image_weights: str = ""  # "" (random init), "imagenet" (download) or a local weights file.
    freeze_image_encoder: bool = False
    image_augmentation: Any = 0.0  # max shift (fraction of the size), or a dict (see audio's).
    image_batchnorm_momentum: float = 0.99  # moving-statistics momentum of ResNet50's BatchNorm.
    # Audio encoder (log-Mel spectrogram + small CNN).
    audio_frame_length: int = 256  # samples per STFT window.
    audio_frame_step: int = 128  # samples between STFT windows.
    audio_num_mel_bins: int = 64
    audio_conv_filters: tuple = (32, 64, 128)  # one conv block per entry.
    audio_batchnorm_momentum: float = 0.9  # moving-statistics momentum of its BatchNorms.
    freeze_audio_encoder: bool = False
    audio_augmentation: Any = None  # {"noise_snr_db": [0, 20], ...}: tfmm/augmentation_config.py.
    video_encoder: VideoEncoderConfig = VideoEncoderConfig()  # a dict: tfmm/video_encoder_config.py
    init_encoders_from: tuple = ()  # earlier run folders / model.keras files: their encoders load.
    # Fusion and head.
    projection_dim: int = 128  # shared width every encoder projects to.
    fusion: str = "attention"  # "concat" | "attention" | "cross_attention" | ...: fusion_config.py.
    fusion_options: Any = None  # {"cross_attention_mode": "co_attention", ...}: fusion_config.py.
    fusion_num_heads: int = 4
    fusion_num_layers: int = 1
    modality_dropout: float = 0.0  # probability of dropping a modality per example in training.
    head_hidden_dim: int = 256  # hidden width of the head MLP (0: linear head).
    dropout: float = 0.1


@dataclasses.dataclass
class TrainingConfig:
    run_dir: str = "runs/default"  # checkpoints, logs, model, reports.
    epochs: int = 10
    learning_rate: float = 1e-3  # peak learning rate at the global batch size.
    weight_decay: float = 0.01  # AdamW decay; never applied to LayerNorm, bias, embeddings.
    warmup_fraction: float = 0.1  # share of all steps spent in linear warmup.
    decay: str = "cosine"  # "cosine" | "linear" | "constant" after warmup.
    clip_norm: float = 1.0  # global gradient-norm clipping (0: off).
    label_smoothing: float = 0.0
    class_weights: Any = "none"  # "none" | "balanced" | {label: weight} (classification).
    loss: str = "cross_entropy"  # "cross_entropy" | "focal" (classification).
    focal_gamma: float = 2.0  # focal loss: (1 - p)^gamma; 0 is the cross-entropy.
    focal_alpha: float = 0.0  # focal loss's alpha (multilabel: of the positives); 0: off.
    seed: int = 0
    mixed_precision: str = "none"  # "none" | "bfloat16" | "float16".
    # "auto" | "true" | "false": XLA for the train step ("auto": on for one replica off TPU)
    # and for computing cached frozen features ("auto": each encoder timed both ways on its first
    # batch, the faster kept, when the training split has 20+ batches; feature_cache.py).
    jit_compile: str = "auto"
    # "threefry": under XLA, Dropout layers draw their masks with ThreeFry while the step is
    # traced (faster on CPU; tfmm/models/dropout.py); "keras": Keras' own generator throughout.
    dropout_masks: str = "threefry"
    strategy: str = "auto"  # "auto" | "default" | "mirrored" | "tpu" | "multiworker".
    tpu: str = ""  # TPU address for strategy "tpu" ("" = Colab / local auto-detection).
    checkpoint_every_steps: int = 200  # also saved at every epoch end.
    keep_checkpoints: int = 2
    steps_per_epoch: int = 0  # 0: one pass over the training data.
    export: bool = True  # write the serving SavedModel after training.
    # Run the frozen encoders once per example and train on their cached features (inference
    # mode: no augmentation or dropout inside them); see tfmm/training/feature_cache.py.
    cache_frozen_features: bool = False
    # "" or a folder: the cached features are also saved there and loaded by a later run whose
    # frozen encoders and decoded examples are the same (named by their digest).
    feature_cache_dir: str = ""
    # DP-SGD, on when dp_l2_clip > 0 (README "Private training (DP-SGD)"; training/dp_sgd.py).
    dp_l2_clip: float = 0.0  # each example's (microbatch's) gradient is clipped to this L2 norm.
    dp_noise_multiplier: float = 0.0  # noise std per step = dp_noise_multiplier * dp_l2_clip.
    dp_microbatch_size: int = 1  # examples per clipped gradient (1: per example).
    dp_delta: float = 0.0  # epsilon is reported at this delta (0: 1 / training examples).
    adversarial: dict = dataclasses.field(default_factory=dict)  # see adversarial_config.py
    pruning: dict = dataclasses.field(default_factory=dict)  # see pruning_config.py


@dataclasses.dataclass
class QuestionAnsweringConfig:
    """Extractive question answering (`data.task = "qa"`): SQuAD-format data, windows, decoding.

    The batch size, shuffle buffer and BERT preset come from `data` and `model` as for every task.
    """

    # Data: local SQuAD v1.1/v2.0 JSON files, or TFDS `squad` when tfds_version is set (online).
    train_file: str = ""  # SQuAD JSON to train on (relative paths: to the working directory).
    eval_file: str = ""  # SQuAD JSON to evaluate on; "": split train_file by article.
    eval_fraction: float = 0.2  # share of train_file's articles held out when eval_file is "".
    tfds_version: str = ""  # "" | "v1.1" | "v2.0": TFDS squad train/validation instead of files.
    # Windows: [CLS] question [SEP] context window [SEP] padding.
    max_sequence_length: int = 384  # tokens per window.
    doc_stride: int = 128  # tokens between the starts of consecutive context windows.
    max_query_length: int = 64  # questions are cut to this many tokens.
    # Decoding.
    max_answer_length: int = 30  # longest answer in tokens.
    version_2_with_negative: bool = False  # allow "no answer" (SQuAD v2.0).
    null_score_threshold: float = 0.0  # "" when null score - best span score exceeds this.


@dataclasses.dataclass
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    qa: QuestionAnsweringConfig = dataclasses.field(default_factory=QuestionAnsweringConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        """Checks values that the types alone do not; returns self."""
        data, model, training = self.data, self.model, self.training
        if data.task in RENAMED_TASKS:
            raise ConfigError(f"`data.task` {data.task!r} is now called "
                              f"{RENAMED_TASKS[data.task]!r}: change it in the config")
        check_choice("data.task", data.task, TASK_NAMES)
        if not data.modalities:
            raise ConfigError("`data.modalities` must name at least one of "
                              f"{list(MODALITIES)}. Received: []")
        for name in data.modalities:
            check_choice("data.modalities", name, MODALITIES)
        for name in data.optional_modalities:
            if name not in data.modalities:
                raise ConfigError("`data.optional_modalities` must be a subset of `data.modalities`"
                                  f" ({list(data.modalities)}). Received: {name!r}")
        check_choice("training.mixed_precision", training.mixed_precision,
                      ("none", "bfloat16", "float16"))
        check_choice("training.jit_compile", str(training.jit_compile).lower(),
                      ("auto", "true", "false"))
        check_choice("training.dropout_masks", training.dropout_masks, ("threefry", "keras"))
        check_choice("training.strategy", training.strategy,
                      ("auto", "default", "mirrored", "tpu", "multiworker"))
        check_choice("training.decay", training.decay, ("cosine", "linear", "constant"))
        for key, value in (("data.batch_size", data.batch_size), ("training.epochs", training.epochs),
                           ("data.text_sequence_length", data.text_sequence_length),
                           ("data.audio_length", data.audio_length),
                           ("data.audio_sample_rate", data.audio_sample_rate),
                           ("model.projection_dim", model.projection_dim)):
            if value <= 0:
                raise ConfigError(f"`{key}` must be > 0. Received: {value}")
        for length in data.text_length_buckets:
            if not isinstance(length, int) or not 0 < length <= data.text_sequence_length:
                raise ConfigError("`data.text_length_buckets` must hold integers in [1, "
                                  f"data.text_sequence_length={data.text_sequence_length}]. "
                                  f"Received: {list(data.text_length_buckets)}")
        if data.text_length_buckets and "text" not in data.modalities:
            raise ConfigError("`data.text_length_buckets` needs 'text' in `data.modalities`. "
                              f"Received modalities: {list(data.modalities)}")
        if data.image_size < 32 and "image" in data.modalities:
            raise ConfigError("`data.image_size` must be >= 32 (ResNet50's smallest input). "
                              f"Received: {data.image_size}")
        if not 0.0 <= model.modality_dropout < 1.0:
            raise ConfigError("`model.modality_dropout` must be in [0, 1). "
                              f"Received: {model.modality_dropout}")
        if model.projection_dim % model.fusion_num_heads:
            raise ConfigError("`model.projection_dim` must be divisible by `model.fusion_num_heads`."
                              f" Received: projection_dim={model.projection_dim}, "
                              f"fusion_num_heads={model.fusion_num_heads}")
        for check in (check_imbalance_config, check_records_config, check_adversarial_config,
                      check_augmentation_config, check_video_config, check_fusion_config,
                      check_frozen_features_config):  # own modules
            check(self)
        get_task(data.task).check_config(self)
        from tfmm.training.privacy import check_private_training  # it imports ConfigError
        check_private_training(self)
        return self


def check_choice(key, value, choices):
    if value not in choices:
        raise ConfigError(f"`{key}` must be one of {list(choices)}. Received: {value!r}")


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig,
             "qa": QuestionAnsweringConfig}


def config_from_dict(values: dict, source: str = "config") -> Config:
    """Builds a Config from a nested dict; unknown sections or keys raise ConfigError."""
    config = Config()
    for section, fields in values.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section {section!r}; expected one of "
                              f"{list(_SECTIONS)}")
        if not isinstance(fields, dict):
            raise ConfigError(f"{source}: section {section!r} must be a dict. "
                              f"Received: {type(fields).__name__}")
        for key, value in fields.items():
            _set_field(config, f"{section}.{key}", value, source)
    return config


def _set_field(config: Config, dotted_key: str, value: Any, source: str):
    section, _, key = dotted_key.partition(".")
    if section not in _SECTIONS or not key:
        raise ConfigError(f"{source}: unknown key {dotted_key!r}; keys look like "
                          "'training.epochs' with a section in " + str(list(_SECTIONS)))
    target = getattr(config, section)
    known = {field.name: field for field in dataclasses.fields(target)}
    if key not in known:
        close = [f"{section}.{name}" for name in known if key in name or name in key]
        hint = f" Did you mean {close}?" if close else ""
        raise ConfigError(f"{source}: unknown key {dotted_key!r}.{hint} Known keys of "
                          f"{section!r}: {sorted(known)}")
    coerce = FIELD_COERCERS.get(dotted_key, _coerce)  # many types
    setattr(target, key, coerce(value, known[key].default, dotted_key, source))


def _coerce(value, default, key, source):
    """Converts a value to the type of the field's default (tuples stay tuples)."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise ConfigError(f"{source}: `{key}` must be true or false. Received: {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
            if default and all(isinstance(item, int) for item in default):
                value = [int(item) for item in value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: `{key}` must be a list. Received: {value!r}")
        return tuple(value)
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: `{key}` must be a number. Received: {value!r}") from None
        if isinstance(default, int):
            if number != int(number):
                raise ConfigError(f"{source}: `{key}` must be an integer. Received: {value!r}")
            return int(number)
        return number
    if isinstance(default, str):
        if value is None or isinstance(value, (dict, list, tuple)):
            raise ConfigError(f"{source}: `{key}` must be a string (\"\" for none). "
                              f"Received: {value!r}")
        return str(value)
    return value


def load_config(path: Optional[str] = None, overrides=()) -> Config:
    """Loads a config file (Python with `get_config()`, or JSON) and applies overrides.

    Args:
        path: config file; None starts from the defaults.
        overrides: strings "section.key=value" (value parsed as a Python literal when it is one).

    Returns:
        A validated Config.
    """
    values = _read_config_file(path) if path else {}
    if isinstance(values, list):
        raise ConfigError(f"{path} describes {len(values)} stages; load it with load_stages()")
    config = config_from_dict(values, source=path or "config")
    return _apply(config, overrides)


def _read_config_file(path: str):
    """The dict (or list of stage dicts) a .py or .json config file holds."""
    values = {}
    if path:
        if not os.path.exists(path):
            raise ConfigError(f"config file not found: {path}")
        if path.endswith(".json"):
            with open(path) as handle:
                try:
                    values = json.load(handle)
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
        elif path.endswith(".py"):
            spec = importlib.util.spec_from_file_location("tfmm_user_config", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if not hasattr(module, "get_config"):
                raise ConfigError(f"{path}: a Python config must define get_config() returning "
                                  "a dict")
            values = module.get_config()
        else:
            raise ConfigError(f"config file must end in .py or .json. Received: {path}")
    return values


def load_stages(path: str, overrides=(), only=()) -> list:
    """Loads a config file that may describe several stages run in order.

    A Python config's `get_config()` may return a list of dicts, each with a "name" key and the
    usual sections (a recipe: e.g. train each encoder, then the fused model from them). A single
    dict is one stage named after the file. Overrides apply to every stage loaded.

    Args:
        only: stage names to load (train.py's --stage); empty loads every stage. Stages left out
            are not checked, so an override that only fits the chosen ones is fine.

    Returns:
        A list of (name, Config).
    """
    values = _read_config_file(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    stages = values if isinstance(values, list) else [dict(values, name=stem)]
    named = []
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise ConfigError(f"{path}: stage {index} must be a dict. "
                              f"Received: {type(stage).__name__}")
        stage = dict(stage)
        named.append((str(stage.pop("name", f"stage{index + 1}")), stage))
    names = [name for name, _ in named]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise ConfigError(f"{path}: --stage {', '.join(unknown)} names no stage; the stages are "
                          f"{', '.join(names)}")
    return [(name, _apply(config_from_dict(stage, source=f"{path} [{name}]"), overrides))
            for name, stage in named if not only or name in only]


def _apply(config: Config, overrides) -> Config:
    for override in overrides:
        key, equals, text = override.partition("=")
        if not equals:
            raise ConfigError(f"--set expects key=value. Received: {override!r}")
        _set_field(config, key.strip(), _override_value(text.strip()), "--set")
    return config.validate()


def _override_value(text: str):
    """A --set value: a Python literal, else JSON (true / false / null, as in a JSON config),
    else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text
