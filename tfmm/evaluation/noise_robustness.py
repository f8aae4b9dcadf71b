"""Noise robustness at test time: a run scored with white noise at given SNRs added to its audio.

`evaluate.py RUN --data M --noise-snr 10` adds Gaussian white noise at 10 dB SNR to every
waveform after preprocessing (resampled, cropped or padded to `data.audio_length`), so the
model sees the noisy clip; the SNR is relative to each clip's own power (mean square over its
samples). `--noise-snr clean,20,10,5,0` scores each level, writes one report each
(`<name>_snr10db_report.json`, ...; "clean" is `<name>_report.json`), a summary
(`<name>_noise_sweep_report.json`) and the accuracy-vs-SNR plot (`<name>_noise_sweep.png`).
The noise is drawn from (seed, batch index): the same for every model at a given batch size.

    batches = add_audio_noise(pipeline.batches(64), snr_db=10.0)
"""

import os

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfmm.atomic_write import write_json
from tfmm.errors import UserError
from tfmm.evaluation.modality_removal import check_removable
from tfmm.evaluation.plots import write_figure
from tfmm.evaluation.report import evaluate_pipeline
from tfmm.models.audio_augmentation import add_noise_at_snr
from tfmm.recipes import recipe_for
from tfmm.run_folder import RunFolder, history_by_metric, load_finished_run


class NoiseLevelError(UserError):
    """A --noise-snr value that is not "clean" or a number, or a run without audio."""


def parse_noise_levels(text: str) -> list:
    """"clean,20,10" -> [None, 20.0, 10.0] (None: no noise)."""
    levels = []
    for part in text.split(","):
        part = part.strip().lower()
        try:
            levels.append(None if part == "clean" else float(part))
        except ValueError:
            raise NoiseLevelError(f"--noise-snr expects 'clean' or SNRs in dB separated by "
                                  f"commas (e.g. clean,20,10,5,0). Received: {text!r}") from None
        if levels[-1] is not None and not np.isfinite(levels[-1]):
            raise NoiseLevelError(f"--noise-snr must be finite. Received: {text!r}")
    return levels


def level_name(snr_db) -> str:
    return "clean" if snr_db is None else f"{snr_db:g} dB"


def add_audio_noise(dataset: tf.data.Dataset, snr_db, seed: int = 0) -> tf.data.Dataset:
    """Batches (features, targets) with white noise at `snr_db` dB added to features["audio"]
    [B, N] (each clip's SNR relative to its own power); unchanged for None."""
    if snr_db is None:
        return dataset

    def add_noise(index, batch):
        features, targets = batch
        features = dict(features)
        audio = tf.cast(features["audio"], tf.float32)
        unit_noise = tf.random.stateless_normal(tf.shape(audio), seed=tf.stack(
            [tf.cast(seed, tf.int64), index]))
        snr = tf.fill([tf.shape(audio)[0], 1], tf.constant(snr_db, tf.float32))
        features["audio"] = add_noise_at_snr(audio, snr, unit_noise)
        return features, targets

    return dataset.enumerate().map(add_noise)


class NoisyPipeline:
    """An `ExamplePipeline` whose batches carry noisy audio (what `evaluate_pipeline` reads)."""

    def __init__(self, pipeline, snr_db, seed: int = 0):
        self.pipeline, self.snr_db, self.seed = pipeline, snr_db, seed
        self.manifest = pipeline.manifest

    def batches(self, batch_size):
        return add_audio_noise(self.pipeline.batches(batch_size), self.snr_db, self.seed)


def sweep_noise_levels(path: str, data_path: str, levels, out_dir=None, name=None,
                       batch_size=64, skip_invalid=False, drop_modalities=(),
                       drop_fraction: float = 1.0, seed: int = 0, log=print) -> dict:
    """Scores a run at each noise level of `levels` (None: clean; else SNR in dB) and writes a
    report per level; with two levels or more also the summary report and its plot.

    Returns:
        The summary: {"rows": [{"snr_db": None | float, score: value, ...}], ...}.

    Raises:
        NoiseLevelError: the run reads no audio.
    """
    run = load_finished_run(path)
    config = run.config
    if "audio" not in config.data.modalities:
        raise NoiseLevelError(f"--noise-snr adds noise to the audio, but {path} reads "
                              f"{list(config.data.modalities)}")
    recipe = recipe_for(config.data.task)
    task = recipe.task
    removed = check_removable(config.data.modalities, drop_modalities)
    pipeline, labels = recipe.file_pipeline(run, data_path, skip_invalid, log)
    history = history_by_metric(run.folder.read_history()) or None
    reports = RunFolder(out_dir) if out_dir else run.folder
    name = name or os.path.splitext(os.path.basename(data_path))[0]
    rows = []
    for snr_db in levels:
        report_name = name if snr_db is None else f"{name}_snr{snr_db:g}db"
        report = evaluate_pipeline(run.model, NoisyPipeline(pipeline, snr_db, seed), task,
                                   labels, reports.path, batch_size,
                                   history=history if snr_db is None else None,
                                   name=report_name, group_field=config.data.report_group_field,
                                   drop_modalities=removed, drop_fraction=drop_fraction,
                                   extra={"noise_snr_db": snr_db})
        log(f"{report_name} ({level_name(snr_db)}): {task.headline(report)}")
        row = {"snr_db": snr_db, task.score_name: report[task.score_name]}
        row.update({key: report[key] for key in ("macro_f1",) if key in report})
        rows.append(row)
    summary = {"data": data_path, "task": task.name, "score_name": task.score_name,
               "noise_seed": seed, "batch_size": batch_size, "rows": rows}
    if len(levels) > 1:
        plot = plot_score_vs_snr({os.path.basename(os.path.normpath(run.folder.path)): rows},
                                 task.score_name,
                                 os.path.join(reports.path, f"{name}_noise_sweep.png"))
        summary["plot"] = os.path.basename(plot)
        write_json(reports.report(name + "_noise_sweep"), summary)
        log(noise_table(summary))
    return summary


def noise_table(summary: dict) -> str:
    """A Markdown table of a noise sweep: SNR -> score (and macro-F1)."""
    score_name = summary["score_name"]
    has_f1 = all("macro_f1" in row for row in summary["rows"])
    header = ["SNR", score_name] + (["macro-F1"] if has_f1 else [])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in summary["rows"]:
        cells = [level_name(row["snr_db"]), f"{row[score_name]:.4f}"]
        if has_f1:
            cells.append(f"{row['macro_f1']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_score_vs_snr(curves: dict, score_name: str, path: str,
                      title: str = "Accuracy under white noise") -> str:
    """One line per model: score against SNR, noisiest on the left, "clean" rightmost.

    Args:
        curves: {label: rows}, rows as `sweep_noise_levels` writes them ({"snr_db", score}); a
            row may hold "spread" (e.g. the standard deviation over seeds), drawn as an error bar.
        score_name: the rows' score key (e.g. "accuracy").
        path: PNG to write.
    """
    levels = sorted({row["snr_db"] for rows in curves.values() for row in rows},
                    key=lambda snr: float("inf") if snr is None else snr)
    positions = {snr: index for index, snr in enumerate(levels)}
    figure = Figure(figsize=(6.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for index, (label, rows) in enumerate(curves.items()):
        rows = sorted(rows, key=lambda row: positions[row["snr_db"]])
        axes.errorbar([positions[row["snr_db"]] for row in rows],
                      [row[score_name] for row in rows],
                      yerr=[row.get("spread", 0.0) for row in rows], marker="o", capsize=3,
                      color=f"C{index % 10}", label=label)
    axes.set_xticks(range(len(levels)), [level_name(snr) for snr in levels])
    axes.set_xlabel("test SNR (white noise)")
    axes.set_ylabel(score_name)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title)
    return write_figure(figure, path)
