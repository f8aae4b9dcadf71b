"""A manifest no one here wrote, packed and trained from shards, reaches the same test accuracy as
trained from the manifest (issue 19, acceptance). Real recordings: a subset of FSDD (the bundled
zip's raw WAV files), its manifests written by scripts/fsdd_manifest.py from the file names."""

import json
import os
import zipfile

import pytest

from helpers import tiny

pytestmark = pytest.mark.slow

FSDD_ZIP = os.path.join(tiny.REPO_ROOT, "tfmm", "data", "assets", "fsdd_subset.zip")
MAX_TRAIN_INDEX = 19  # training recordings 5-19 of each speaker and digit: 900; test 0-4: 300
EPOCHS = 4
# Both runs see the same examples in a different order (the manifest's seeded shuffle against
# the shards' seeded shard order and shuffle buffer), so the models differ a little: 15 of the
# 300 test recordings at most.
ACCURACY_TOLERANCE = 0.05
CHANCE = 0.1


def _load_script():
    return tiny.load_script("fsdd_manifest")


def _extract_recordings(folder, max_index):
    """The bundled zip's recordings with index <= max_index, as FSDD's raw files."""
    script = _load_script()
    with zipfile.ZipFile(FSDD_ZIP) as archive:
        names = [name for name in archive.namelist()
                 if (match := script.RECORDING_NAME.match(os.path.basename(name)))
                 and int(match.group(3)) <= max_index]
        archive.extractall(folder, members=names)
    return os.path.join(folder, "recordings")


def _report(run_dir, name="test"):
    with open(os.path.join(run_dir, f"{name}_report.json")) as handle:
        return json.load(handle)


def test_training_from_shards_reaches_the_manifests_test_accuracy(tmp_path):
    from tfmm.data.pack import pack_manifest

    script = _load_script()
    recordings = _extract_recordings(str(tmp_path / "fsdd"), MAX_TRAIN_INDEX)
    out, runs = str(tmp_path / "manifests"), str(tmp_path / "runs")
    counts = script.write_manifests(recordings, out, runs, EPOCHS, MAX_TRAIN_INDEX)
    assert counts == {"train": 900, "test": 300}
    for split, shards in (("train", 4), ("test", 2)):
        pack_manifest(os.path.join(out, f"{split}.jsonl"), os.path.join(out, "records", split),
                      shards, modalities=("audio",), audio_sample_rate=8000, processes=1,
                      log=lambda line: None)

    # XLA off: its compilation is most of a short run's time here, and both stages run the same
    # step; what differs is where the examples come from.
    result = tiny.run_python(["train.py", os.path.join(out, "config.json"),
                              "--set", "training.jit_compile=false"], timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from_manifest = _report(os.path.join(runs, "from_manifest"))
    from_records = _report(os.path.join(runs, "from_records"))
    assert from_manifest["num_examples"] == from_records["num_examples"] == 300
    assert from_records["manifest"].endswith("test-*")
    accuracies = (from_manifest["accuracy"], from_records["accuracy"])
    print(f"test accuracy from the manifest {accuracies[0]:.4f}, from shards {accuracies[1]:.4f}; "
          f"test loss {from_manifest['loss']:.4f} and {from_records['loss']:.4f}")
    assert min(accuracies) > 5 * CHANCE, accuracies
    assert abs(accuracies[0] - accuracies[1]) <= ACCURACY_TOLERANCE, accuracies

    # The test split is the same examples either way: one model scores the same from both.
    import evaluate

    run_dir = os.path.join(runs, "from_manifest")
    scored = str(tmp_path / "scored")
    assert evaluate.main([run_dir, "--data", os.path.join(out, "records", "test-*"),
                          "--out", scored]) == 0
    assert _report(scored)["accuracy"] == pytest.approx(from_manifest["accuracy"], abs=1e-6)
