"""Training on imbalanced classes: class weights, focal loss, resampling, and the metrics that
show what imbalance hides (README "Imbalanced data")."""

import json
import os

import numpy as np
import pytest

from helpers import tiny


# --- class weights ------------------------------------------------------------------------------
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_class_weights_scale_each_multiclass_loss_by_its_true_class_weight(loss,
                                                                          label_smoothing):
    from tfmm.config import TrainingConfig
    from tfmm.tasks import MulticlassTask

    training = TrainingConfig(loss=loss, focal_gamma=2.0)
    weights = np.array([0.5, 3.0, 7.0], np.float32)
    plain, weighted = MulticlassTask().with_loss(training), MulticlassTask().with_loss(
        training, weights)
    targets = np.array([0, 1, 2, 2, 1])
    outputs = {"logits": np.array([[2.0, 0.1, -1], [0.3, 0.2, 0.1], [1, 2, 3], [3, 1, 0.5],
                                   [-1, 0, 4]], np.float32)}
    unweighted = plain.per_example_loss(targets, outputs, label_smoothing).numpy()
    losses = weighted.per_example_loss(targets, outputs, label_smoothing).numpy()
    np.testing.assert_allclose(losses, unweighted * weights[targets], rtol=1e-6)


def test_multilabel_class_weights_weigh_each_class_positive_term():
    from tfmm.config import TrainingConfig
    from tfmm.tasks import MultilabelTask

    weights = np.array([4.0, 0.25], np.float32)
    task = MultilabelTask().with_loss(TrainingConfig(), weights)
    targets = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    logits = np.array([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.5]], np.float32)
    probabilities = 1 / (1 + np.exp(-logits))
    terms = -(targets * np.log(probabilities) + (1 - targets) * np.log(1 - probabilities))
    expected = np.mean(terms * np.where(targets == 1, weights, 1.0), axis=-1)
    np.testing.assert_allclose(task.per_example_loss(targets, {"logits": logits}).numpy(),
                               expected, rtol=1e-5)


def test_balanced_weights_are_scikit_learns_and_negatives_per_positive_for_multilabel():
    from sklearn.utils.class_weight import compute_class_weight

    from tfmm.tasks import MulticlassTask, MultilabelTask

    targets = np.array([0] * 20 + [1] * 5 + [2] * 1 + [3] * 2)
    weights, counts = MulticlassTask().class_weights_for("balanced", targets, list("abcd"))
    np.testing.assert_allclose(weights, compute_class_weight(
        "balanced", classes=np.arange(4), y=targets))
    assert counts.tolist() == [20, 5, 1, 2]
    given, _ = MulticlassTask().class_weights_for({"c": 9.0}, targets, list("abcd"))
    assert given.tolist() == [1.0, 1.0, 9.0, 1.0]
    with pytest.raises(ValueError, match="'z'"):
        MulticlassTask().class_weights_for({"z": 2.0}, targets, list("abcd"))
    multi_hot = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]], np.float32)
    weights, counts = MultilabelTask().class_weights_for("balanced", multi_hot, list("xyz"))
    # x: 3 positives, 1 negative; y: 1 and 3; z: positive everywhere (no negative: weight 1).
    np.testing.assert_allclose(weights, [1 / 3, 3.0, 1.0])
    assert counts.tolist() == [3, 1, 4]


def test_class_weights_config_from_json_python_and_set(tmp_path):
    from tfmm.config import ConfigError, load_config

    manifest = "train.jsonl"
    path = tiny.write_config(tmp_path / "c.json", {"data": {"train_manifest": manifest},
                                                   "training": {"class_weights": {"5": 20}}})
    assert load_config(path).training.class_weights == {"5": 20.0}
    path = tiny.write_config(tmp_path / "c.py", {"data": {"train_manifest": manifest},
                                                 "training": {"class_weights": {5: 2.5}}})
    assert load_config(path).training.class_weights == {"5": 2.5}
    config = load_config(path, ["training.class_weights=balanced"])
    assert config.training.class_weights == "balanced"
    config = load_config(path, ["training.class_weights={'a': 3, 'b': 0.5}"])
    assert config.training.class_weights == {"a": 3.0, "b": 0.5}
    for bad, message in (("sometimes", "must be one of"), ("{'a': 0}", "> 0"),
                         ("{'a': 'x'}", "> 0"), ("[1, 2]", "dict")):
        with pytest.raises(ConfigError, match=message):
            load_config(path, [f"training.class_weights={bad}"])
    with pytest.raises(ConfigError, match="not in `data.labels`"):
        load_config(path, ["data.labels=high,low", "training.class_weights={'hgh': 2}"])


@pytest.mark.parametrize("task, extra", [("regression", {}),
                                         ("qa", {"qa": {"train_file": "x.json"}})])
@pytest.mark.parametrize("training", [{"class_weights": "balanced"}, {"loss": "focal"}])
def test_class_weights_and_focal_loss_need_a_classification_task(task, extra, training):
    from tfmm.config import ConfigError, config_from_dict

    values = {"data": {"task": task, "train_manifest": "t.jsonl"}, "training": training, **extra}
    with pytest.raises(ConfigError, match="classification task"):
        config_from_dict(values).validate()


def test_the_manifest_recipe_trains_with_the_weights_it_logs_and_saves(tmp_path):
    from tfmm.config import config_from_dict
    from tfmm.recipes import recipe_for
    from tfmm.run_folder import RunFolder

    rows = tiny.read_jsonl(tiny.write_manifest(str(tmp_path / "data"), num_rows=12,
                                               modalities=("audio",)))
    manifest = tiny.write_jsonl(tmp_path / "data" / "skewed.jsonl", rows[:10] + rows[10:11])
    run_dir = str(tmp_path / "run")
    config = config_from_dict(tiny.tiny_config("unused", manifest, run_dir, ("audio",),
                                               class_weights="balanced")).validate()
    lines = []
    recipe = recipe_for("multiclass")
    recipe.load_data(config, chief=True, log=lines.append)
    # 11 rows: high 6, low 5 -> 11 / (2 * 6), 11 / (2 * 5).
    np.testing.assert_allclose(recipe.task.class_weights, [11 / 12, 11 / 10], rtol=1e-6)
    assert any("class weights (balanced" in line and "high 0.917 (6)" in line for line in lines)
    with open(RunFolder(run_dir).class_weights) as handle:
        saved = json.load(handle)
    assert saved["weights"] == pytest.approx({"high": 11 / 12, "low": 11 / 10})
    assert saved["counts"] == {"high": 6, "low": 5} and saved["setting"] == "balanced"


# --- focal loss ---------------------------------------------------------------------------------
def test_focal_loss_matches_hand_computed_values():
    from tfmm.config import TrainingConfig
    from tfmm.tasks import MulticlassTask, MultilabelTask

    # logits (0, ln 3): softmax (0.25, 0.75); a sigmoid of ln 3 is 0.75.
    logits = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]], np.float32)
    focal = TrainingConfig(loss="focal", focal_gamma=2.0)
    losses = MulticlassTask().with_loss(focal).per_example_loss(np.array([1, 0]),
                                                                {"logits": logits}).numpy()
    # -(1 - 0.75)^2 ln 0.75 and -(1 - 0.25)^2 ln 0.25.
    np.testing.assert_allclose(losses, [0.0625 * 0.2876821, 0.5625 * 1.3862944], rtol=1e-5)
    with_alpha = TrainingConfig(loss="focal", focal_gamma=2.0, focal_alpha=0.25)
    multi_hot = np.array([[1.0, 0.0]], np.float32)
    loss = MultilabelTask().with_loss(with_alpha).per_example_loss(
        multi_hot, {"logits": np.log(np.array([[3.0, 3.0]], np.float32))}).numpy()
    # Class 0 positive at p 0.75: 0.25 * 0.25^2 * -ln 0.75; class 1 negative at p 0.75:
    # 0.75 * 0.75^2 * -ln 0.25; the mean over the two classes.
    expected = (0.25 * 0.0625 * 0.2876821 + 0.75 * 0.5625 * 1.3862944) / 2
    np.testing.assert_allclose(loss, [expected], rtol=1e-5)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_focal_loss_with_gamma_0_is_the_cross_entropy(label_smoothing):
    from tfmm.config import TrainingConfig
    from tfmm.tasks import MulticlassTask, MultilabelTask

    random = np.random.default_rng(3)
    logits = {"logits": random.normal(size=(6, 4)).astype(np.float32) * 3}
    gamma_0 = TrainingConfig(loss="focal", focal_gamma=0.0)
    labels = random.integers(0, 4, size=6)
    multi_hot = (random.random((6, 4)) > 0.5).astype(np.float32)
    for task, targets in ((MulticlassTask(), labels), (MultilabelTask(), multi_hot)):
        np.testing.assert_allclose(
            task.with_loss(gamma_0).per_example_loss(targets, logits, label_smoothing).numpy(),
            task.per_example_loss(targets, logits, label_smoothing).numpy(), rtol=1e-5)
    # gamma > 0 lowers the loss of every example (each term shrinks by (1 - p)^gamma < 1).
    focal = MulticlassTask().with_loss(TrainingConfig(loss="focal", focal_gamma=2.0))
    assert np.all(focal.per_example_loss(labels, logits).numpy()
                  < MulticlassTask().per_example_loss(labels, logits).numpy())


def test_focal_settings_are_checked():
    from tfmm.config import ConfigError, config_from_dict

    for training, message in (({"loss": "hinge"}, "training.loss"),
                              ({"loss": "focal", "focal_gamma": -1}, "focal_gamma"),
                              ({"loss": "focal", "focal_alpha": 1.5}, "focal_alpha")):
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"data": {"train_manifest": "t.jsonl"},
                              "training": training}).validate()


# --- resampling ---------------------------------------------------------------------------------
def _class_stream(counts):
    import tensorflow as tf

    targets = np.concatenate([np.full(count, index) for index, count in enumerate(counts)])
    features = {"x": np.arange(len(targets), dtype=np.float32)[:, None]}
    return tf.data.Dataset.from_tensor_slices((features, targets.astype(np.int32))).cache()


@pytest.mark.parametrize("resample", ["balanced", "sqrt"])
def test_resampled_stream_draws_the_classes_at_the_configured_frequencies(resample):
    from tfmm.data.dataset import resampled_examples

    counts = np.array([900, 90, 0, 10])
    expected = {"balanced": np.array([1, 1, 0, 1]) / 3,
                "sqrt": np.sqrt(counts) / np.sqrt(counts).sum()}[resample]
    drawn = np.concatenate([
        np.array([int(target) for _, target in resampled_examples(
            _class_stream(counts), counts, resample, 1000, seed=epoch)])
        for epoch in range(4)])
    assert len(drawn) == 4000
    frequencies = np.bincount(drawn, minlength=4) / len(drawn)
    # Binomial standard error at 4000 draws is below 0.008: 0.03 is ~4 of them.
    np.testing.assert_allclose(frequencies, expected, atol=0.03)
    assert frequencies[2] == 0.0  # a class without examples is never drawn


def test_resampling_is_deterministic_per_seed_and_epoch_with_static_batches(tmp_path):
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.config import DataConfig
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    rows = tiny.read_jsonl(tiny.write_manifest(str(tmp_path), num_rows=24, modalities=("audio",)))
    skewed = ([row for row in rows if row["label"] == "high"][:10]
              + [row for row in rows if row["label"] == "low"][:2])  # 10 high, 2 low
    path = tiny.write_jsonl(tmp_path / "skewed.jsonl", skewed)
    data = DataConfig(train_manifest=path, modalities=("audio",), labels=tiny.LABELS,
                      audio_length=800, batch_size=4)
    manifest = read_manifest_for_config(path, data)
    pipeline = ExamplePipeline(manifest, MultimodalPreprocessor.from_data_config(data, ""),
                               "multiclass", resample="balanced")

    def epoch_targets(epoch, skip=0):
        batches = list(pipeline.batches(4, shuffle=True, seed=5, epoch=epoch,
                                        drop_remainder=True, skip_batches=skip))
        assert all(features["audio"].shape == (4, 800) for features, _ in batches)
        return [target.numpy().tolist() for _, target in batches]

    first = epoch_targets(0)
    assert len(first) == 3 and epoch_targets(0) == first  # 12 draws, 3 full batches, replayed
    assert epoch_targets(0, skip=1) == first[1:]  # a resumed epoch continues where it stopped
    drawn = np.concatenate([np.ravel(epoch_targets(epoch)) for epoch in range(8)])
    assert epoch_targets(1) != first
    # 2 of the 12 rows are "low" (index 1); resampled, about half the draws are.
    assert 0.35 < np.mean(drawn == 1) < 0.65
    # Without shuffle (evaluation) the manifest is read as it is.
    assert [t for _, b in pipeline.batches(4) for t in b.numpy()].count(1) == 2


@pytest.mark.parametrize("data, training, message", [
    ({"resample": "often"}, {}, "`data.resample` must be one of"),
    ({"resample": "balanced", "task": "multilabel"}, {}, "one label per example"),
    ({"resample": "sqrt", "text_length_buckets": [4]}, {}, "cannot be combined with `data.text"),
    ({"resample": "balanced"}, {"cache_frozen_features": True}, "cache_frozen_features"),
])
def test_resample_settings_are_checked(data, training, message):
    from tfmm.config import ConfigError, config_from_dict

    values = {"data": {"train_manifest": "t.jsonl", "text_sequence_length": 8, **data},
              "model": {"freeze_text_encoder": True}, "training": training}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values).validate()


# --- metrics imbalance hides --------------------------------------------------------------------
def test_multiclass_report_has_balanced_accuracy_per_class_and_normalized_confusion(tmp_path):
    from tfmm.tasks import MulticlassTask

    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 0, 1, 1, 0, 2])
    logits = np.log(np.eye(4)[predicted] * 0.9 + 0.025)  # class "d": no example, never predicted
    task = MulticlassTask()
    report = task.metrics({"logits": logits}, labels, ["a", "b", "c", "d"])
    assert report["accuracy"] == pytest.approx(5 / 7)
    # Recall a 3/4, b 1/2, c 1 (d has no example and is left out): their mean.
    assert report["balanced_accuracy"] == pytest.approx(0.75)
    assert report["macro_f1"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert report["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["a"]["precision"] == pytest.approx(0.75)
    assert report["confusion_matrix_normalized"] == [
        [0.75, 0.25, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [None] * 4]
    json.dumps(report)  # written as it is
    assert "balanced accuracy 0.7500" in task.headline(report)
    plots = task.write_plots(report, {"logits": logits}, labels, ["a", "b", "c", "d"],
                             str(tmp_path), "test")
    assert set(plots) == {"confusion_matrix", "confusion_matrix_normalized"}
    with open(plots["confusion_matrix"], "rb") as counts, \
            open(plots["confusion_matrix_normalized"], "rb") as shares:
        count_png, share_png = counts.read(), shares.read()
    assert share_png.startswith(b"\x89PNG") and share_png != count_png


def test_the_xla_train_step_optimises_the_weighted_loss(tmp_path):
    """The Trainer takes the configured task as it is: its compiled step's loss is the class
    weighted mean over the batch."""
    import keras
    import tensorflow as tf

    from tfmm.config import Config
    from tfmm.tasks import MulticlassTask
    from tfmm.training.trainer import Trainer

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    model = keras.Model({"x": inputs}, {"logits": keras.layers.Dense(3)(inputs)})
    config = Config()
    config.training.jit_compile = "true"
    config.training.class_weights = "balanced"
    weights = np.array([0.5, 2.0, 4.0], np.float32)
    task = MulticlassTask().with_loss(config.training, weights)
    features = {"x": tf.constant(np.random.default_rng(0).normal(size=(4, 8)), tf.float32)}
    targets = tf.constant([0, 1, 2, 0])
    plain = MulticlassTask().per_example_loss(targets, model(features, training=True)).numpy()
    trainer = Trainer(model, task, config.training, tf.distribute.get_strategy(), 4,
                      str(tmp_path), batch_size=4, log=lambda line: None)
    assert trainer.jit_compile
    loss, _ = trainer.train_step((features, targets))
    np.testing.assert_allclose(float(loss), np.mean(plain * weights[targets.numpy()]), rtol=1e-5)


@pytest.mark.slow
def test_two_mirrored_replicas_train_the_imbalance_settings_like_one(tiny_config, tmp_path):
    """Class weights, focal loss and resampling together: MirroredStrategy over two logical CPU
    devices (global batch 8 = 2 x 4, XLA off as DESIGN.md requires there) gives the losses and
    weights of one replica at batch 8 (the bound is test_distribution's, summation order)."""
    import re

    config, _ = tiny_config("imbalance_replicas", jit_compile="false")
    out = str(tmp_path / "replicas.npz")
    result = tiny.run_python(
        [os.path.join(os.path.dirname(tiny.__file__), "compare_replicas.py"), config, out,
         "training.class_weights={'high': 3.0}", "training.loss=focal",
         "data.resample=balanced"], timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"class weights \(given.*high 3 \(\d+\), low 1 \(\d+\)", result.stdout)
    arrays = np.load(out)
    assert int(arrays["two/replicas"]) == 2
    np.testing.assert_allclose(arrays["two/loss"], arrays["one/loss"], rtol=1e-5)
    names = [key[len("one/"):] for key in arrays.files
             if key.startswith("one/") and key not in ("one/replicas", "one/loss")]
    assert len(names) > 20
    for name in names:
        np.testing.assert_allclose(arrays[f"two/{name}"], arrays[f"one/{name}"], rtol=1e-4,
                                   atol=1e-4, err_msg=name)
