"""PNG plots of evaluation results: confusion matrix, training curves, regression scatter.

The figures are drawn on matplotlib's Agg canvas without pyplot, so they work headless and
leave no global figure state behind. Files are written through `tf.io.gfile`, so `path` may be
local or a `gs://` URL.

Example:
    plot_confusion_matrix(report["confusion_matrix"], class_names, "runs/x/confusion.png")
"""

import io
import math
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tfmm.atomic_write import write_bytes
from tfmm.evaluation.metrics import confusion_in_reading_order

_DOTS_PER_INCH = 120


def plot_confusion_matrix(confusion_matrix, class_names: Sequence[str], path: str,
                          title: str = "Confusion matrix", normalized: bool = False) -> str:
    """Draws a confusion matrix with the counts (or, normalized, the row shares) in the cells.

    The cell colour is the count divided by its row total (the share of that true class), so
    classes of different sizes are comparable; the number printed is the raw count, or with
    `normalized` that share (two decimals; the diagonal is each class's recall). Rows and
    columns are drawn in `reading_order` of the names ("2" before "10"). Figure and
    font sizes scale with the number of classes so that up to about 25 classes stay readable.

    Args:
        confusion_matrix: C x C counts (nested lists or array), rows = true class,
            columns = predicted class.
        class_names: The `C` class names, in index order.
        path: Where to write the PNG (local path or `gs://` URL).
        title: Figure title.

    Returns:
        `path`.

    Raises:
        ValueError: If the matrix is not C x C with C = len(class_names).
    """
    counts = np.asarray(confusion_matrix, dtype=np.int64)
    class_names = [str(name) for name in class_names]
    num_classes = len(class_names)
    if counts.shape != (num_classes, num_classes):
        raise ValueError(f"`confusion_matrix` must be C x C with C = len(class_names) = "
                         f"{num_classes}. Received shape: {counts.shape}")
    counts, class_names = confusion_in_reading_order(counts, class_names)
    row_totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64),
                       where=row_totals > 0)

    longest_name = max((len(name) for name in class_names), default=1)
    cell_inches = 0.5 if num_classes <= 12 else 0.42
    label_inches = min(0.08 * longest_name, 2.5) + 0.8
    side = max(3.0, cell_inches * num_classes)
    figure = Figure(figsize=(side + label_inches + 1.6, side + label_inches + 0.8),
                    dpi=_DOTS_PER_INCH, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("share of the true class (row)")

    # Largest font whose widest count still fits in a cell (a digit is ~0.6 em wide).
    cell_points = cell_inches * 72.0
    digits = 4 if normalized else (len(str(int(counts.max()))) if counts.size else 1)
    cell_font = _clip(min(0.32 * cell_points, 0.75 * cell_points / (0.6 * max(digits, 2))),
                      5.0, 11.0)
    for row in range(num_classes):
        for column in range(num_classes):
            count = counts[row, column]
            if count == 0 and num_classes > 10:
                continue  # blank cells read faster than a sea of zeros
            colour = "white" if shares[row, column] > 0.5 else "black"
            text = f"{shares[row, column]:.2f}" if normalized else str(count)
            axes.text(column, row, text, ha="center", va="center", color=colour,
                      fontsize=cell_font)

    tick_font = _clip(11.0 - 0.15 * num_classes, 7.0, 10.0)
    axes.set_xticks(range(num_classes))
    axes.set_yticks(range(num_classes))
    rotate = num_classes > 6 or longest_name > 6
    axes.set_xticklabels(class_names, fontsize=tick_font, rotation=45 if rotate else 0,
                         ha="right" if rotate else "center", rotation_mode="anchor")
    axes.set_yticklabels(class_names, fontsize=tick_font)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = f", accuracy {correct / total:.3f}" if total else ""
    if normalized and total:
        present = row_totals[:, 0] > 0
        accuracy += f", balanced accuracy {np.mean(np.diag(shares)[present]):.3f}"
    axes.set_title(f"{title}\n({total} examples{accuracy})")
    return write_figure(figure, path)


def plot_training_curves(history: dict, path: str, title: str = "Training") -> str:
    """Draws per-epoch training curves, one subplot per metric family.

    Keys are grouped by family: "accuracy" and "val_accuracy" share a subplot, drawn as
    "train" (solid) and "validation" (dashed) when both exist. Every family whose name ends
    in "loss" (e.g. "loss" and a per-output "head_loss") goes into one first "loss" subplot;
    each other family gets its own.

    Args:
        history: {metric name: list of per-epoch values}, e.g. Keras' `History.history`.
            Entries that are not sequences of numbers, or are empty, are skipped.
        path: Where to write the PNG (local path or `gs://` URL).
        title: Figure title.

    Returns:
        `path`.

    Raises:
        ValueError: If `history` holds no plottable series.
    """
    series = {}
    for key, values in history.items():
        try:
            array = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            continue
        if array.size:
            series[str(key)] = array
    if not series:
        raise ValueError("`history` holds no per-epoch values to plot. Received keys: "
                         f"{list(history)}")

    families = []  # family names in first-seen order
    for key in series:
        family = key[len("val_"):] if key.startswith("val_") else key
        if family not in families:
            families.append(family)
    loss_families = [family for family in families if family.endswith("loss")]
    panels = ([("loss", loss_families)] if loss_families else []) + [
        (family, [family]) for family in families if family not in loss_families]

    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows + 0.4), dpi=_DOTS_PER_INCH,
                    layout="constrained")
    FigureCanvasAgg(figure)
    colours = [f"C{index}" for index in range(10)]
    for panel_index, (panel_name, panel_families) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, panel_index + 1)
        for family_index, family in enumerate(panel_families):
            # One family: train blue, validation orange. Several: one colour per family.
            if len(panel_families) > 1:
                prefix = f"{family} "
                train_colour = validation_colour = colours[family_index % len(colours)]
            else:
                prefix, train_colour, validation_colour = "", "C0", "C1"
            for key, split, style, colour in (
                    (family, "train", "-", train_colour),
                    (f"val_{family}", "validation", "--", validation_colour)):
                if key not in series:
                    continue
                values = series[key]
                epochs = np.arange(1, values.size + 1)
                axes.plot(epochs, values, linestyle=style, color=colour,
                          marker="o" if values.size <= 30 else None, markersize=3,
                          label=f"{prefix}{split}")
        axes.set_title(panel_name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title)
    return write_figure(figure, path)


def plot_regression_scatter(targets, predictions, path: str,
                            target_names: Optional[Sequence[str]] = None,
                            title: str = "Predicted vs true") -> str:
    """Scatters predicted against true values with the y = x line; one subplot per target.

    Args:
        targets: True values, shape `[N]` or `[N, T]`.
        predictions: Predicted values, the same shape as `targets`.
        path: Where to write the PNG (local path or `gs://` URL).
        target_names: Names of the `T` targets, used as subplot titles.
        title: Figure title.

    Returns:
        `path`.

    Raises:
        ValueError: If the shapes disagree.
    """
    targets = np.asarray(targets, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = targets.reshape(targets.shape[0], -1) if targets.ndim else targets.reshape(1, 1)
    predictions = (predictions.reshape(predictions.shape[0], -1) if predictions.ndim
                   else predictions.reshape(1, 1))
    if targets.shape != predictions.shape:
        raise ValueError(f"`predictions` must have the shape of `targets` {targets.shape}. "
                         f"Received shape: {predictions.shape}")
    num_targets = targets.shape[1]
    if target_names is None:
        target_names = ([] if num_targets == 1
                        else [f"target_{index}" for index in range(num_targets)])
    target_names = [str(name) for name in target_names]

    columns = min(num_targets, 3)
    rows = math.ceil(num_targets / columns)
    figure = Figure(figsize=(4.4 * columns, 4.2 * rows + 0.4), dpi=_DOTS_PER_INCH,
                    layout="constrained")
    FigureCanvasAgg(figure)
    point_alpha = _clip(300.0 / max(targets.shape[0], 1), 0.15, 0.9)
    for index in range(num_targets):
        axes = figure.add_subplot(rows, columns, index + 1)
        true_values, predicted_values = targets[:, index], predictions[:, index]
        finite = np.isfinite(true_values) & np.isfinite(predicted_values)
        axes.scatter(true_values[finite], predicted_values[finite], s=12, alpha=point_alpha,
                     edgecolors="none", label="examples")
        if finite.any():
            low = min(true_values[finite].min(), predicted_values[finite].min())
            high = max(true_values[finite].max(), predicted_values[finite].max())
            margin = 0.05 * (high - low) if high > low else 1.0
            low, high = low - margin, high + margin
            axes.plot([low, high], [low, high], color="C3", linewidth=1, label="y = x")
            axes.set_xlim(low, high)
            axes.set_ylim(low, high)
        axes.set_aspect("equal", adjustable="box")
        axes.set_xlabel("true")
        axes.set_ylabel("predicted")
        if index < len(target_names):
            axes.set_title(target_names[index])
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="upper left")
    figure.suptitle(f"{title} ({targets.shape[0]} examples)")
    return write_figure(figure, path)


def _clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def write_figure(figure: Figure, path: str) -> str:
    """Renders `figure` to PNG and writes it to `path` (temporary name, then renamed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DOTS_PER_INCH)
    directory = os.path.dirname(path)
    if directory and not tf.io.gfile.exists(directory):
        tf.io.gfile.makedirs(directory)
    write_bytes(path, buffer.getvalue())
    return path
