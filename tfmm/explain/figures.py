"""The PNG of one explained example, drawn from its record and arrays (matplotlib Agg).

Panels, as the model has them: the question's words highlighted by their attribution (red for,
blue against the explained answer), the image with its attribution heat map over it, the
log-Mel spectrogram with its attribution heat map and the waveform under it, the bar chart of
modality importance (removal and attribution mass side by side) and, with attention fusion, the
fusion's attention weights per layer and head.
"""

import numpy as np
from matplotlib.figure import Figure

from tfmm.evaluation.plots import write_figure


def _title(record) -> str:
    verdict = {True: "correct", False: "wrong", None: ""}[record["correct"]]
    return (f"{record['id']}: label {record['label']}, predicted {record['predicted']} "
            f"(p={record['score']:.3f}) {verdict}")


def _draw_tokens(axes, tokens, title="text: token attributions", line_height=0.3):
    """Words on lines (wrapped), background red (for) or blue (against) by attribution.

    Args:
        tokens: [[token, attribution], ...].
    """
    axes.axis("off")
    axes.set_title(title, fontsize=9, loc="left")
    scale = max((abs(value) for _, value in tokens), default=0.0) or 1.0
    x, y = 0.0, 1.0 - line_height
    for token, value in tokens:
        strength = min(abs(value) / scale, 1.0)
        colour = (1.0, 1 - strength, 1 - strength) if value >= 0 else \
            (1 - strength, 1 - strength, 1.0)
        width = 0.015 * (len(token) + 2)
        if x + width > 1.0:
            x, y = 0.0, y - line_height
        axes.text(x, y, token, fontsize=9, family="monospace", transform=axes.transAxes,
                  bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5})
        x += width


def _heat_limits(values):
    limit = float(np.abs(values).max()) or 1.0
    return -limit, limit


def _draw_image(axes, image, attribution, mass):
    axes.imshow(np.clip(image, 0, 255).astype(np.uint8))
    low, high = _heat_limits(attribution)
    axes.imshow(attribution, cmap="bwr", vmin=low, vmax=high, alpha=0.55)
    # Each heat map is scaled to its own largest cell: the title gives the modality's total.
    axes.set_title(f"image: pixel attributions (sum {mass:+.3f})", fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_audio(spectrogram_axes, wave_axes, log_mel, attribution, waveform, mass):
    spectrogram_axes.imshow(log_mel.T, origin="lower", aspect="auto", cmap="gray")
    low, high = _heat_limits(attribution)
    spectrogram_axes.imshow(attribution.T, origin="lower", aspect="auto", cmap="bwr", vmin=low,
                            vmax=high, alpha=0.6)
    spectrogram_axes.set_title(f"audio: log-Mel attributions (sum {mass:+.3f})", fontsize=9)
    spectrogram_axes.set_xlabel("frame", fontsize=8)
    spectrogram_axes.set_ylabel("Mel band", fontsize=8)
    wave_axes.plot(np.arange(len(waveform)), waveform, linewidth=0.5, color="black")
    wave_axes.set_xlim(0, len(waveform))
    wave_axes.set_xlabel("sample", fontsize=8)
    wave_axes.set_yticks([])


def _draw_importance(axes, record):
    names = list(record["removal"])
    positions = np.arange(len(names))
    removal = [record["removal"][name] or 0.0 for name in names]
    axes.bar(positions - 0.2, removal, width=0.4, label="removal (score drop)")
    if record["attribution"]:
        mass = [record["attribution"]["per_modality"][name] for name in names]
        axes.bar(positions + 0.2, mass, width=0.4,
                 label=record["attribution"]["method"].replace("_", " "))
    axes.axhline(0.0, color="black", linewidth=0.5)
    axes.set_xticks(positions, names)
    axes.set_title("modality importance", fontsize=9)
    axes.legend(fontsize=7)


def _draw_attention(axes, attention, modalities):
    """Rows: each layer's heads (query-averaged) and the pooling's heads; columns: modalities."""
    rows, labels = [], []
    for layer, weights in attention.items():
        weights = np.asarray(weights)  # [heads, M] or [heads, queries, M]
        if weights.ndim == 3:
            weights = weights.mean(axis=1)
        for head, row in enumerate(weights):
            rows.append(row)
            labels.append(f"{layer.replace('fusion_', '')} h{head}")
    axes.imshow(np.array(rows), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(modalities)), modalities)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_title("fusion attention (mean over queries)", fontsize=9)


def plot_explanation(explanation, modalities, path: str) -> str:
    """Draws one `Explanation` to `path` (PNG); returns the path."""
    record, arrays = explanation.record, explanation.arrays
    figure = Figure(figsize=(9, 6))
    grid = figure.add_gridspec(3, 3, height_ratios=[0.5, 2, 1.0], hspace=0.5, wspace=0.3)
    figure.suptitle(_title(record), fontsize=10)
    mass = (record["attribution"] or {}).get("per_modality", {})
    if "text_tokens" in record:
        _draw_tokens(figure.add_subplot(grid[0, :]), record["text_tokens"],
                     f"text: token attributions (sum {mass['text']:+.3f})")
    if "image" in arrays:
        _draw_image(figure.add_subplot(grid[1, 0]), arrays["image"], arrays["image_attribution"],
                    mass["image"])
    if "log_mel" in arrays:
        _draw_audio(figure.add_subplot(grid[1, 1]), figure.add_subplot(grid[2, 1]),
                    arrays["log_mel"], arrays["log_mel_attribution"], arrays["waveform"],
                    mass["audio"])
    _draw_importance(figure.add_subplot(grid[1, 2]), record)
    if record.get("fusion_attention"):
        _draw_attention(figure.add_subplot(grid[2, 2]), record["fusion_attention"], modalities)
    return write_figure(figure, path)


def plot_span_explanation(record, path: str) -> str:
    """Draws a question-answering record (`explain_span_run`): the window's tokens highlighted
    by their start-logit and by their end-logit attributions."""
    tokens = record["tokens"]
    lines = max(1, int(sum(0.015 * (len(token) + 2) for token, *_ in tokens)) + 1)
    figure = Figure(figsize=(10, 1.2 + 0.5 * lines))
    figure.suptitle(f"{record['id']}: {record['question']} -> {record['answer_tokens']!r} "
                    f"(gold {record['gold_answers'][:1]})", fontsize=9)
    for row, key in enumerate(("start", "end")):
        column = record["columns"].index(key)
        axes = figure.add_subplot(2, 1, row + 1)
        share = record[key + "_mass"]
        _draw_tokens(axes, [[values[0], values[column]] for values in tokens],
                     f"{key} logit (token {record[key]}): question {share['question']:.0%}, "
                     f"context {share['context']:.0%} of the attribution mass",
                     line_height=1.0 / (lines + 1))
    return write_figure(figure, path)
