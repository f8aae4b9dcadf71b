"""The dataset-level summary of explanations (issue 15): means per class and group, the shares
of examples whose needed modality is the most important, and the bar chart."""

import os

import pytest

from tfmm.explain.summary import needed_modality_shares, plot_summary, summarize


def _record(kind, label, removal, attribution, correct=True):
    top = lambda values: max(values, key=values.get)  # noqa: E731
    return {"id": f"{kind}-{label}", "label": label, "correct": correct,
            "fields": {"question_type": kind}, "removal": removal,
            "attribution": {"per_modality": attribution},
            "most_important": {"removal": top({k: v for k, v in removal.items()
                                               if v is not None}),
                               "attribution": top(attribution)}}


RECORDS = [
    _record("written", "3", {"text": 0.2, "image": 0.9, "audio": 0.0},
            {"text": 0.1, "image": 0.7, "audio": 0.1}),
    _record("written", "5", {"text": 0.95, "image": 0.9, "audio": 0.01},
            {"text": 0.1, "image": 0.2, "audio": 0.3}),
    _record("spoken", "3", {"text": 0.1, "image": 0.0, "audio": 0.8},
            {"text": 0.0, "image": 0.1, "audio": 0.6}),
    _record("spoken", "3", {"text": 0.1, "image": 0.5, "audio": 0.2},
            {"text": 0.0, "image": 0.1, "audio": 0.6}, correct=False),
    _record("sum", "8", {"text": 0.1, "image": 0.5, "audio": 0.6},
            {"text": 0.3, "image": 0.2, "audio": 0.6}),
    _record("sum", "9", {"text": 0.0, "image": 0.4, "audio": None},
            {"text": 0.0, "image": 0.4, "audio": 0.2}),
]
MODALITIES = ["text", "image", "audio"]


def test_means_per_class_and_group():
    table = summarize(RECORDS, MODALITIES, "question_type")
    assert table["all"]["count"] == 6 and table["all"]["correct"] == 5
    written = table["by_question_type"]["written"]
    assert written["removal"]["image"] == pytest.approx(0.9)
    assert written["removal"]["text"] == pytest.approx(0.575)
    assert written["attribution"]["audio"] == pytest.approx(0.2)
    assert written["top_removal_share"] == {"text": 0.5, "image": 0.5, "audio": 0.0}
    # None (undefined removal) is left out of the mean
    assert table["by_question_type"]["sum"]["removal"]["audio"] == pytest.approx(0.6)
    # the wrong answer counts in the means, not in the top shares
    assert table["by_label"]["3"]["count"] == 3
    assert table["by_label"]["3"]["top_removal_share"]["audio"] == pytest.approx(0.5)


def test_needed_modality_shares():
    shares = needed_modality_shares(RECORDS, "question_type",
                                    {"written": ("image",), "spoken": ("audio",),
                                     "sum": ("image", "audio")})
    assert shares["written"]["correct"] == 2
    assert shares["written"]["removal"] == {"top": 0.5, "top_besides_text": 1.0}
    assert shares["written"]["attribution"] == {"top": 0.5, "top_besides_text": 0.5}
    assert shares["spoken"]["removal"] == {"top": 1.0, "top_besides_text": 1.0}
    # sum needs both: the two most important must be image and audio
    assert shares["sum"]["attribution"]["top"] == 0.5  # 8: audio, then text
    assert shares["sum"]["removal"]["top"] == 0.5  # 9: audio undefined, so image, then text
    assert shares["sum"]["removal"]["top_besides_text"] is None


def test_the_bar_chart_is_written(tmp_path):
    table = summarize(RECORDS, MODALITIES, "question_type")
    path = plot_summary(table, MODALITIES, str(tmp_path / "summary.png"))
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000
