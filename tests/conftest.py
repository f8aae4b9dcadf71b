"""Shared pytest setup: the repository on sys.path and tiny run fixtures.

The `slow` marker (tests over ~30 s: multi-process and kill/resume runs) is registered in
pytest.ini, which deselects it by default; run them with `pytest -m slow`.
"""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # `pytest` (not only `python -m pytest`) finds tfmm uninstalled.
    sys.path.insert(0, REPO_ROOT)


@pytest.fixture(scope="session")
def tiny_preset(tmp_path_factory):
    """A keras-hub preset folder: 2-layer BERT (hidden 8) with a WordPiece tokenizer of the
    words of helpers.tiny.VOCABULARY. Shared by every test module: do not write into it."""
    from helpers import tiny

    return tiny.write_bert_preset(str(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    """32 rows (8x8 PNG, 0.1 s 8 kHz WAV, text) whose label "high"/"low" every modality tells."""
    from helpers import tiny

    return tiny.write_manifest(str(tmp_path_factory.mktemp("tiny_data")), num_rows=32)


@pytest.fixture
def tiny_config(tiny_preset, tiny_manifest, tmp_path):
    """Factory: `tiny_config(name="run", modalities=..., manifest=None, data=None, model=None,
    **training)` writes a JSON config for a tiny run in tmp_path (`data` / `model`: overrides of
    those sections, as in helpers.tiny.tiny_config) and returns (config path, run folder)."""
    from helpers import tiny

    def make(name="run", modalities=("text", "audio"), manifest=None, data=None, model=None,
             **training):
        run_dir = str(tmp_path / name)
        config = tiny.tiny_config(tiny_preset, manifest or tiny_manifest, run_dir,
                                  modalities=modalities, data=data, model=model, **training)
        path = tiny.write_config(str(tmp_path / f"{name}.json"), config)
        return path, run_dir

    return make
