"""Tests of tfmm.evaluation: metrics against hand-worked examples, plots write real PNGs."""

import json
import math

import numpy as np
import pytest

from tfmm.evaluation import metrics, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- classification_metrics


def test_classification_perfect_predictions():
    labels = np.array([0, 1, 2, 2, 1, 0])
    probabilities = np.eye(3)[labels] * 0.8 + 0.1 / 1.5
    report = metrics.classification_metrics(labels, probabilities, ["a", "b", "c"])
    assert report["num_examples"] == 6
    assert report["accuracy"] == 1.0
    assert report["macro_f1"] == 1.0
    assert report["auroc"] == 1.0
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert report["per_class"]["b"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    json.dumps(report)  # plain Python values only


def test_classification_two_class_hand_worked():
    # Predicted (argmax): [0, 1, 1, 1, 0].
    # Class 0: TP 1, FP 1, FN 1 -> P = R = F1 = 1/2. Class 1: TP 2, FP 1, FN 1 -> 2/3.
    # AUROC: positives {0.7, 0.9, 0.4} over negatives {0.2, 0.6}: 5 of 6 pairs ordered.
    labels = np.array([0, 0, 1, 1, 1])
    positive = np.array([0.2, 0.6, 0.7, 0.9, 0.4])
    probabilities = np.stack([1 - positive, positive], axis=1)
    report = metrics.classification_metrics(labels, probabilities, ["no", "yes"])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["per_class"]["no"]["f1"] == pytest.approx(1 / 2)
    assert report["per_class"]["yes"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["yes"]["recall"] == pytest.approx(2 / 3)
    assert report["per_class"]["yes"]["support"] == 3
    assert report["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert report["auroc"] == pytest.approx(5 / 6)
    assert report["confusion_matrix"] == [[1, 1], [1, 2]]
    assert "auroc_note" not in report


def test_classification_auroc_over_present_classes_only():
    # Class "c" never occurs: the confusion matrix still covers it, AUROC ignores it.
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    report = metrics.classification_metrics(labels, probabilities, ["a", "b", "c"])
    assert report["auroc"] == 1.0
    assert report["macro_f1"] == 1.0
    assert len(report["confusion_matrix"]) == 3
    assert report["per_class"]["c"]["support"] == 0


def test_classification_one_class_gives_auroc_note():
    labels = np.array([1, 1, 1])
    probabilities = np.array([[0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    report = metrics.classification_metrics(labels, probabilities, ["a", "b"])
    assert report["auroc"] is None
    assert "at least 2 classes" in report["auroc_note"]
    assert report["accuracy"] == pytest.approx(2 / 3)
    json.dumps(report)


def test_classification_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.classification_metrics(np.array([0, 1]), np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        metrics.classification_metrics(np.array([0, 2]), np.zeros((2, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="0 examples"):
        metrics.classification_metrics(np.zeros([0], int), np.zeros((0, 2)), ["a", "b"])


# ---------------------------------------------------------------- multilabel_metrics


def test_multilabel_hand_worked():
    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    probabilities = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.6], [0.6, 0.9, 0.3]])
    # Predicted: [[1,0,1], [0,1,1], [1,1,0]] -> rows 1 and 3 exact: subset accuracy 2/3.
    # Class "z": TP 1, FP 1, FN 0 -> F1 2/3; "x" and "y" perfect. Pooled: TP 5, FP 1, FN 0.
    report = metrics.multilabel_metrics(labels, probabilities, ["x", "y", "z"])
    assert report["num_examples"] == 3
    assert report["subset_accuracy"] == pytest.approx(2 / 3)
    assert report["per_class"]["z"]["f1"] == pytest.approx(2 / 3)
    assert report["per_class"]["x"]["support"] == 2
    assert report["macro_f1"] == pytest.approx((1 + 1 + 2 / 3) / 3)
    assert report["micro_f1"] == pytest.approx(10 / 11)
    # "z": positive 0.8 above both negatives {0.6, 0.3}: AUROC 1; "x", "y" perfect too.
    assert report["macro_auroc"] == 1.0
    assert "macro_auroc_note" not in report
    json.dumps(report)


def test_multilabel_threshold_changes_predictions():
    labels = np.array([[1, 0], [0, 1]])
    probabilities = np.array([[0.4, 0.1], [0.1, 0.4]])
    assert metrics.multilabel_metrics(labels, probabilities, ["a", "b"])["subset_accuracy"] == 0
    report = metrics.multilabel_metrics(labels, probabilities, ["a", "b"], threshold=0.3)
    assert report["subset_accuracy"] == 1.0
    assert report["threshold"] == 0.3


def test_multilabel_auroc_skips_single_valued_classes():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    probabilities = np.array([[0.8, 0.1], [0.3, 0.2], [0.6, 0.1]])
    report = metrics.multilabel_metrics(labels, probabilities, ["a", "b"])
    assert report["macro_auroc"] == 1.0
    assert report["per_class"]["b"]["auroc"] is None
    assert "b" in report["macro_auroc_note"]
    # "b" is never positive nor predicted: it has no F1 and does not drag the macro mean down.
    assert report["macro_f1"] == 1.0

    all_negative = metrics.multilabel_metrics(np.zeros((2, 2)), np.full((2, 2), 0.1), ["a", "b"])
    assert all_negative["macro_auroc"] is None
    assert all_negative["subset_accuracy"] == 1.0
    json.dumps(all_negative)


def test_multilabel_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="0 and 1"):
        metrics.multilabel_metrics(np.array([[2, 0]]), np.zeros((1, 2)), ["a", "b"])


# ---------------------------------------------------------------- regression_metrics


def test_regression_hand_worked_errors():
    # Errors [1, 0, 2, 0]: MAE 3/4, MSE 5/4.
    report = metrics.regression_metrics(np.array([1.0, 2, 3, 4]), np.array([2.0, 2, 5, 4]))
    assert report["num_examples"] == 4
    assert report["mae"] == pytest.approx(0.75)
    assert report["rmse"] == pytest.approx(math.sqrt(1.25))
    assert "per_target" not in report
    json.dumps(report)


def test_regression_pearson_of_linear_relation_is_one():
    targets = np.linspace(-3.0, 5.0, 17)
    report = metrics.regression_metrics(targets, 2 * targets + 1)
    assert report["pearson_r"] == pytest.approx(1.0)
    assert metrics.regression_metrics(targets, -targets)["pearson_r"] == pytest.approx(-1.0)


def test_regression_constant_prediction_gives_note():
    report = metrics.regression_metrics(np.array([1.0, 2, 3]), np.array([2.0, 2, 2]))
    assert report["pearson_r"] is None
    assert "constant" in report["pearson_r_note"]
    assert report["mae"] == pytest.approx(2 / 3)
    json.dumps(report)


def test_regression_multiple_targets():
    targets = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    predictions = np.array([[3.0, 4.0], [5.0, 6.0], [7.0, 5.0]])  # first: y = 2x + 1
    report = metrics.regression_metrics(targets, predictions, target_names=["size", "flat"])
    first = report["per_target"]["size"]
    assert first["pearson_r"] == pytest.approx(1.0)
    assert first["mae"] == pytest.approx((2 + 3 + 4) / 3)
    assert report["per_target"]["flat"]["pearson_r"] is None
    assert report["per_target"]["flat"]["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert report["pearson_r"] == pytest.approx(1.0)  # mean over the defined targets
    assert "flat" in report["pearson_r_note"]
    assert report["mae"] == pytest.approx((2 + 3 + 4 + 1 + 1 + 0) / 6)
    json.dumps(report)


def test_regression_column_vector_matches_flat():
    targets = np.array([1.0, 2, 3, 4])
    predictions = np.array([1.5, 2, 2, 5])
    assert (metrics.regression_metrics(targets[:, None], predictions)
            == metrics.regression_metrics(targets, predictions[:, None]))
    with pytest.raises(ValueError, match="shape"):
        metrics.regression_metrics(targets, predictions[:3])


# ---------------------------------------------------------------- plots


def _assert_png(path):
    with open(path, "rb") as file:
        content = file.read()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 1000


def test_plot_confusion_matrix_small(tmp_path):
    path = str(tmp_path / "nested" / "confusion.png")
    assert plots.plot_confusion_matrix([[5, 1], [0, 3]], ["cat", "dog"], path) == path
    _assert_png(path)


def test_plot_confusion_matrix_many_classes(tmp_path):
    random = np.random.default_rng(0)
    class_names = [f"class_with_long_name_{index}" for index in range(25)]
    confusion = random.integers(0, 5, size=(25, 25)) + np.diag(random.integers(20, 400, 25))
    confusion[3] = 0  # a class absent from the data: no division by zero
    path = str(tmp_path / "confusion_25.png")
    plots.plot_confusion_matrix(confusion, class_names, path, title="Test split")
    _assert_png(path)


def test_plot_confusion_matrix_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="C x C"):
        plots.plot_confusion_matrix([[1, 2]], ["a", "b"], str(tmp_path / "x.png"))


def test_plot_training_curves_with_validation(tmp_path):
    history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8], "auc": [0.6, 0.8, 0.9],
               "val_loss": [1.1, 0.8, 0.7], "val_accuracy": [0.4, 0.6, 0.7],
               "val_auc": [0.5, 0.7, 0.8], "learning_rate": [1e-3, 5e-4, 1e-4]}
    path = str(tmp_path / "curves.png")
    assert plots.plot_training_curves(history, path) == path
    _assert_png(path)


def test_plot_training_curves_without_validation(tmp_path):
    path = str(tmp_path / "curves_train_only.png")
    plots.plot_training_curves({"loss": [0.9, 0.5], "mae": [2.0, 1.0]}, path, title="Run")
    _assert_png(path)
    single = str(tmp_path / "single_epoch.png")
    plots.plot_training_curves({"loss": [0.3]}, single)
    _assert_png(single)


def test_plot_training_curves_rejects_empty_history(tmp_path):
    with pytest.raises(ValueError, match="no per-epoch values"):
        plots.plot_training_curves({"loss": []}, str(tmp_path / "x.png"))


def test_plot_regression_scatter(tmp_path):
    targets = np.linspace(0.0, 10.0, 50)
    predictions = targets + np.random.default_rng(1).normal(0.0, 0.5, 50)
    path = str(tmp_path / "scatter.png")
    assert plots.plot_regression_scatter(targets, predictions, path) == path
    _assert_png(path)
    two_targets = str(tmp_path / "scatter_2.png")
    plots.plot_regression_scatter(np.stack([targets, -targets], 1),
                                  np.stack([predictions, -predictions], 1), two_targets)
    _assert_png(two_targets)


def test_plots_write_through_tf_gfile():
    # "ram://" is TensorFlow's in-memory file system: the same code path as "gs://".
    import tensorflow as tf

    path = plots.plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], "ram://evaluation/cm.png")
    with tf.io.gfile.GFile(path, "rb") as file:
        assert file.read().startswith(PNG_SIGNATURE)


def test_predict_dataset_traces_once_per_model_and_frees_it():
    import gc
    import weakref

    import keras
    import tensorflow as tf

    from tfmm.evaluation.predict import _PREDICT_STEPS, predict_dataset, predict_step

    inputs = keras.Input((4,), name="x")
    model = keras.Model({"x": inputs}, {"logits": keras.layers.Dense(3)(inputs)})
    features = {"x": np.arange(40, dtype=np.float32).reshape(10, 4)}
    dataset = tf.data.Dataset.from_tensor_slices((features, np.arange(10) % 3)).batch(4)
    gc.collect()  # models of earlier tests that are already gone leave the cache now
    cached_models = len(_PREDICT_STEPS)
    first = predict_dataset(model, dataset, "multiclass")
    traces = predict_step(model, "multiclass").experimental_get_tracing_count()
    second = predict_dataset(model, dataset, "multiclass")  # e.g. the next epoch's validation
    np.testing.assert_allclose(first[0]["logits"], second[0]["logits"])
    assert first[0]["logits"].shape == (10, 3)
    # Batches of 4, 4 and 2 traced at most twice (the second relaxed to any batch size); the
    # second call traces nothing.
    assert traces <= 2
    assert predict_step(model, "multiclass").experimental_get_tracing_count() == traces
    assert len(_PREDICT_STEPS) == cached_models + 1
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None
    assert len(_PREDICT_STEPS) <= cached_models  # its entry went with it


def test_numeric_class_names_read_in_number_order():
    names = ["0", "1", "10", "11", "18", "2", "3", "no", "yes"]  # the label vocabulary's order
    assert [names[i] for i in metrics.reading_order(names)] == [
        "0", "1", "2", "3", "10", "11", "18", "no", "yes"]
    mixed = ["class10", "class9", "a"]
    assert [mixed[i] for i in metrics.reading_order(mixed)] == ["a", "class9", "class10"]
    labels = np.array([0, 1, 2, 5, 5])
    probabilities = np.eye(len(names))[[0, 1, 2, 5, 6]]
    report = metrics.classification_metrics(labels, probabilities, names)
    assert list(report["per_class"]) == ["0", "1", "2", "3", "10", "11", "18", "no", "yes"]
    counts, ordered = metrics.confusion_in_reading_order(report["confusion_matrix"], names)
    assert ordered == ["0", "1", "2", "3", "10", "11", "18", "no", "yes"]
    assert counts[ordered.index("2"), ordered.index("2")] == 1  # "2" is class index 5
    assert counts[ordered.index("2"), ordered.index("3")] == 1  # predicted "3" (index 6)
    multilabel = metrics.multilabel_metrics(np.eye(3)[[0, 1, 2, 0]], np.eye(3)[[0, 1, 2, 1]],
                                            ["10", "2", "1"])
    assert list(multilabel["per_class"]) == ["1", "2", "10"]


def test_grouped_scores_list_groups_in_number_order():
    from tfmm.evaluation.report import grouped_scores

    groups = ["10", "2", "1", "2"]
    outputs = np.eye(2)[[0, 1, 0, 0]]
    scores = grouped_scores("multiclass", groups, {"logits": outputs}, np.array([0, 1, 1, 0]))
    assert list(scores) == ["1", "2", "10"]
    assert scores["2"] == {"accuracy": 1.0, "num_examples": 2}
    assert scores["1"] == {"accuracy": 0.0, "num_examples": 1}
