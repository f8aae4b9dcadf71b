"""explain.py / `explain_run` on a trained tiny run whose answer only the audio tells (issue 15):
the records, the figures, the summary and the one-line errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from helpers.tiny import read_jsonl, tiny_config, write_jsonl, write_manifest
from tfmm.config import config_from_dict


@pytest.fixture(scope="module")
def audio_only_run(tmp_path_factory, tiny_preset):
    """A trained text + audio run (attention fusion, dropout 0.1) on rows whose texts are random
    words and whose tone (1500 Hz or 300 Hz) alone tells the label; rows carry a `kind` field."""
    from tfmm.training.runner import run_training

    root = tmp_path_factory.mktemp("explain_run")
    manifest = write_manifest(str(root / "data"), num_rows=32, varied_texts=True)
    rows = [dict(row, kind="first" if index < 16 else "second")
            for index, row in enumerate(read_jsonl(manifest))]
    manifest = write_jsonl(manifest, rows)
    config = config_from_dict(tiny_config(
        tiny_preset, manifest, str(root / "run"), modalities=("text", "audio"), epochs=4,
        data={"report_group_field": "kind"}, model={"dropout": 0.1, "modality_dropout": 0.3}))
    run_training(config.validate(), log=lambda line: None)
    return config.training.run_dir, manifest


@pytest.fixture(scope="module")
def explained(audio_only_run, tmp_path_factory):
    from tfmm.explain.explain_run import explain_run

    run_dir, manifest = audio_only_run
    out_dir = str(tmp_path_factory.mktemp("explained"))
    return explain_run(run_dir, manifest, limit=12, out_dir=out_dir, steps=16,
                       log=lambda line: None), out_dir


def test_the_modality_that_tells_the_answer_gets_the_importance(explained):
    summary, _ = explained
    correct = [record for record in summary["records"] if record["correct"]]
    assert len(correct) >= 10  # the tone is easy to learn
    for method in ("removal", "attribution"):
        tops = [record["most_important"][method] for record in correct]
        assert tops.count("audio") >= 0.9 * len(correct), (method, tops)
    audio_share = summary["table"]["all"]["top_removal_share"]["audio"]
    assert audio_share >= 0.9


def test_records_figures_and_summary_are_written(explained):
    summary, out_dir = explained
    assert summary["num_examples"] == 12
    assert [record["id"] for record in summary["records"]] == [f"row{i}" for i in range(12)]
    for record in summary["records"]:
        with open(os.path.join(out_dir, record["id"] + ".json")) as handle:
            assert json.load(handle) == record
        with open(os.path.join(out_dir, record["id"] + ".png"), "rb") as handle:
            image = tf.io.decode_png(handle.read()).numpy()
        assert image.shape[0] > 400 and image.shape[1] > 600
        assert set(record["fusion_attention"]) == {"fusion_transformer_0", "fusion_pooling"}
        np.testing.assert_allclose(np.sum(record["fusion_attention"]["fusion_pooling"], -1), 1.0,
                                   atol=1e-5)
    with open(os.path.join(out_dir, "explain_summary.json")) as handle:
        assert json.load(handle) == json.loads(json.dumps(summary))
    table = summary["table"]
    assert set(table["by_label"]) == {"high", "low"}
    assert set(table["by_kind"]) == {"first"}  # rows 0-11
    assert table["by_kind"]["first"]["count"] == 12
    removal = [record["removal"]["audio"] for record in summary["records"]]
    assert table["all"]["removal"]["audio"] == pytest.approx(np.mean(removal))
    assert os.path.getsize(os.path.join(out_dir, "explain_summary.png")) > 5000


def test_explain_py_mistakes_end_with_one_error_line(audio_only_run, tmp_path, capsys):
    import explain

    run_dir, manifest = audio_only_run
    cases = [(["--ids", "row1", "nope"], "no row with id nope"),
             (["--limit", "0"], "--limit must be >= 1"),
             (["--ids", "row1", "--limit", "2"], "give --ids or --limit, not both"),
             (["--limit", "1", "--method", "saliency"], "--method must be one of"),
             ]
    for extra, message in cases:
        assert explain.main([run_dir, "--data", manifest, "--out", str(tmp_path), *extra]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and message in error[0], error
    assert explain.main([str(tmp_path / "missing"), "--data", manifest]) == 2
    assert "is not a finished tfmm run" in capsys.readouterr().err


@pytest.mark.slow
def test_the_importance_export_keeps_serving_default(audio_only_run, tmp_path):
    """The importance signature returns serving_default's outputs unchanged plus the removal
    importance of each modality, equal to what explain.py's records hold."""
    from tfmm.explain.explain_run import explain_run
    from tfmm.explain.serving_importance import export_with_importance

    run_dir, manifest = audio_only_run
    export_dir = export_with_importance(run_dir, str(tmp_path / "export"))
    loaded = tf.saved_model.load(export_dir)
    rows = read_jsonl(manifest)[:4]
    folder = os.path.dirname(manifest)

    def read(name):
        with open(os.path.join(folder, name), "rb") as handle:
            return handle.read()

    inputs = {"text": tf.constant([row["text"] for row in rows]),
              "audio": tf.constant([read(row["audio"]) for row in rows])}
    plain = loaded.signatures["serving_default"](**inputs)
    with_importance = loaded.signatures["modality_importance"](**inputs)
    assert set(plain) == {"probabilities", "label", "score"}
    assert set(with_importance) == set(plain) | {"importance_text", "importance_audio"}
    for key in plain:
        assert np.array_equal(plain[key].numpy(), with_importance[key].numpy())
    records = explain_run(run_dir, manifest, limit=4, out_dir=str(tmp_path / "explained"),
                          method="none", figures=False, log=lambda line: None)["records"]
    for position, record in enumerate(records):
        for name in ("text", "audio"):
            assert with_importance["importance_" + name][position].numpy() == pytest.approx(
                record["removal"][name], abs=1e-4)
