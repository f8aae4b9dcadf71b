"""Dataset-level summary of explanations: mean modality importance per class and per group.

    summary = summarize(records, modalities, group_field="question_type")
    plot_summary(summary, modalities, "explain_summary.png")
"""

import numpy as np
from matplotlib.figure import Figure

from tfmm.evaluation.plots import write_figure

METHODS = ("removal", "attribution")


def _importance(record, method) -> dict:
    if method == "removal":
        return record["removal"]
    return record["attribution"]["per_modality"] if record["attribution"] else {}


def _group_summary(records, modalities) -> dict:
    """Counts, mean importance per method and modality, and how often each modality is the most
    important one among the correctly answered examples."""
    correct = [record for record in records if record["correct"]]
    summary = {"count": len(records), "correct": len(correct)}
    for method in METHODS:
        means = {}
        for name in modalities:
            values = [_importance(record, method).get(name) for record in records]
            values = [value for value in values if value is not None]
            means[name] = float(np.mean(values)) if values else None
        summary[method] = means
        tops = [record["most_important"][method] for record in correct
                if record["most_important"][method] is not None]
        summary[f"top_{method}_share"] = {
            name: (tops.count(name) / len(tops) if tops else None) for name in modalities}
    return summary


def _label_key(record) -> str:
    label = record["label"]
    return "+".join(map(str, label)) if isinstance(label, list) else str(label)


def summarize(records, modalities, group_field: str = "") -> dict:
    """The summary table of explained records.

    Args:
        records: the per-example records of `ExampleExplainer`.
        modalities: the model's modalities, in order.
        group_field: a manifest field to group by as well (e.g. "question_type"), or "".

    Returns:
        {"all": group, "by_label": {label: group}, "by_<group_field>": {value: group}}; a group
        holds count, correct, "removal" and "attribution" {modality: mean importance} and
        "top_removal_share" / "top_attribution_share" {modality: share of the correctly
        answered examples whose most important modality it is}.
    """
    summary = {"all": _group_summary(records, modalities), "by_label": {}}
    groupings = [("by_label", _label_key)]
    if group_field:
        summary["by_" + group_field] = {}
        groupings.append(("by_" + group_field,
                          lambda record: str(record["fields"].get(group_field))))
    for key, group_of in groupings:
        groups = {}
        for record in records:
            groups.setdefault(group_of(record), []).append(record)
        summary[key] = {name: _group_summary(group, modalities)
                        for name, group in sorted(groups.items())}
    return summary


def plot_summary(summary, modalities, path: str, grouping: str = "") -> str:
    """Bar charts of the mean importance per modality for each group of `grouping` (a key of
    `summary`; default: the group field's when there is one, else by_label), removal on the
    left, attribution mass on the right."""
    grouping = grouping or next((key for key in summary if key not in ("all", "by_label")),
                                "by_label")
    groups = summary[grouping]
    names = list(groups)
    figure = Figure(figsize=(max(6, 1.2 * len(names) + 3), 4))
    width = 0.8 / len(modalities)
    for column, method in enumerate(METHODS):
        axes = figure.add_subplot(1, 2, column + 1)
        positions = np.arange(len(names))
        for offset, modality in enumerate(modalities):
            values = [groups[name][method][modality] or 0.0 for name in names]
            axes.bar(positions + (offset - (len(modalities) - 1) / 2) * width, values, width,
                     label=modality)
        axes.axhline(0.0, color="black", linewidth=0.5)
        axes.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        axes.set_title(f"mean {method} importance {grouping.replace('_', ' ')}", fontsize=9)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return write_figure(figure, path)


def needed_modality_shares(records, group_field: str, needs: dict) -> dict:
    """How often the modalities a group's questions need are the most important ones.

    Args:
        records: explained records (`summary["records"]`).
        group_field: the field that names the group (e.g. "question_type").
        needs: {group value: modalities its answers need besides text}, e.g. {"written":
            ("image",), "spoken": ("audio",), "sum": ("image", "audio")}.

    Returns:
        {group: {"correct": n, method: {"top": share of the correctly answered examples whose
        len(needed) most important modalities (all modalities, text included) are exactly
        the needed ones, "top_besides_text": the same ranking text left out (None when the
        needed ones are all the other modalities)}}} for methods "removal" and "attribution"
        (the latter only when the records hold attributions).
    """
    result = {}
    for group, needed in needs.items():
        needed = set(needed)
        correct = [record for record in records
                   if record["correct"] and str(record["fields"].get(group_field)) == group]
        shares = {"correct": len(correct)}
        for method in METHODS:
            rankings = []
            for record in correct:
                importance = _importance(record, method)
                known = {name: value for name, value in importance.items() if value is not None}
                if known:
                    rankings.append(sorted(known, key=known.get, reverse=True))
            if not rankings:
                continue
            top = [set(ranking[:len(needed)]) == needed for ranking in rankings]
            without_text = [[name for name in ranking if name != "text"] for ranking in rankings]
            informative = any(set(ranking) - needed for ranking in without_text)
            besides = [set(ranking[:len(needed)]) == needed for ranking in without_text]
            shares[method] = {"top": sum(top) / len(top),
                              "top_besides_text": (sum(besides) / len(besides)
                                                   if informative else None)}
        result[group] = shares
    return result
