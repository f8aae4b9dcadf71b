"""Memory that does not grow with the data: `data.cache = none` over 10x the examples (issue 19,
part 4). Each measurement runs in a fresh process (`helpers/records_rss.py`)."""

import json
import os

import pytest

from helpers import tiny

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def _peak_rss(tiny_preset, tmp_path, num_rows, cache):
    """Packs `num_rows` rows (the tiny manifest's files reused) and reads them in a process."""
    from tfmm.data.pack import pack_manifest

    source = tiny.write_manifest(str(tmp_path / "data"), num_rows=32, modalities=("image",))
    rows = tiny.read_jsonl(source)
    folder = os.path.dirname(source)
    manifest = tiny.write_jsonl(tmp_path / f"rows{num_rows}.jsonl", [
        dict(rows[index % 32], id=f"row{index}",
             image=os.path.join(folder, rows[index % 32]["image"])) for index in range(num_rows)])
    prefix = str(tmp_path / f"records{num_rows}" / "train")
    pack_manifest(manifest, prefix, 4, modalities=("image",), processes=1, log=lambda line: None)
    config = tiny.tiny_config(tiny_preset, manifest, str(tmp_path / "run"), modalities=("image",),
                              data={"train_manifest": "", "train_records": prefix + "-*",
                                    "image_size": 96, "batch_size": 32, "shuffle_buffer": 256,
                                    "cache": cache})
    path = tiny.write_config(tmp_path / f"config{num_rows}_{cache}.json", config)
    result = tiny.run_python([os.path.join(HELPERS, "records_rss.py"), path], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["examples"] == num_rows
    return measured["peak_rss_mb"]


@pytest.mark.slow
def test_peak_memory_at_10x_the_examples_stays_within_20_percent(tiny_preset, tmp_path):
    """96x96 decoded images are 110 kB each: 3,200 of them cached would add about 350 MB."""
    one, ten = (_peak_rss(tiny_preset, tmp_path, rows, "none") for rows in (320, 3200))
    assert ten <= 1.2 * one, (one, ten)
    cached = _peak_rss(tiny_preset, tmp_path, 3200, "memory")  # what the test guards against
    assert cached > 1.2 * one, (one, cached)
