"""Online-only options fail offline with one line naming what failed and the offline alternative.

The downloads are real: HTTP(S) goes through a proxy on a closed local port, so each request
fails at once with the exception a machine without network raises (a ConnectionError, keras'
"URL fetch failure"), also where the network happens to be open.
"""

import os

import pytest

from helpers.tiny import free_port, run_python, tiny_config, write_config, write_manifest
from tfmm.data.squad import TfdsDownloadError, load_tfds_squad
from tfmm.models.image_encoder import ImageWeightsError, build_image_encoder
from tfmm.models.text_encoder import load_bert_backbone
from tfmm.preprocessing.bert_presets import PresetError
from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer

ONLINE_PRESET = "bert_tiny_en_uncased"


def closed_proxy_env(tmp_path) -> dict:
    """Environment variables that make every HTTP(S) request fail fast, with empty caches."""
    proxy = f"http://127.0.0.1:{free_port()}"
    return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy,
            "http_proxy": proxy, "NO_PROXY": "", "no_proxy": "",
            "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub_cache")}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    for name, value in closed_proxy_env(tmp_path).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("load", [load_bert_tokenizer, load_bert_backbone],
                         ids=["tokenizer", "backbone"])
def test_online_text_preset_offline_is_one_preset_error(offline, load):
    with pytest.raises(PresetError) as raised:
        load(ONLINE_PRESET)
    message = str(raised.value)
    assert message.startswith(f"model.text_preset='{ONLINE_PRESET}': downloading the keras-hub "
                              "preset failed (")
    assert "offline, set model.text_preset to a local folder" in message
    assert "'minilm'" in message and "\n" not in message


def test_imagenet_weights_offline_is_one_image_weights_error(offline):
    import keras

    cached = os.path.join(os.path.expanduser("~"), ".keras", "models",
                          "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    if os.path.exists(cached):
        pytest.skip("the ImageNet weights are cached here: nothing is downloaded")
    with pytest.raises(ImageWeightsError) as raised:
        build_image_encoder(32, 8, weights="imagenet")
    message = str(raised.value)
    assert message.startswith("model.image_weights='imagenet': downloading the ResNet50 "
                              "ImageNet weights failed (URL fetch failure")
    assert "set model.image_weights to a local ResNet50 weights file" in message
    assert "\n" not in message
    keras.backend.clear_session()


def test_tfds_squad_imports_and_fails_at_the_download(offline, monkeypatch, tmp_path):
    from tensorflow_datasets.core.download import downloader

    # TFDS retries a failed request 10 times with growing pauses (minutes offline); one try
    # gives the same error.
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)
    with pytest.raises(TfdsDownloadError) as raised:
        load_tfds_squad("v1.1", "validation", data_dir=str(tmp_path / "tfds"))
    message = str(raised.value)
    assert message.startswith("qa.tfds_version='v1.1': downloading squad/v1.1 through "
                              "TensorFlow Datasets failed (")
    assert "Connection" in message  # requests' ConnectionError (here its ProxyError subclass)
    assert message.endswith("set qa.train_file (and qa.eval_file) to a local SQuAD v1.1 JSON "
                            "file such as train-v1.1.json")


def test_train_py_with_an_online_preset_offline_prints_one_line(tmp_path):
    manifest = write_manifest(str(tmp_path / "data"), num_rows=4)
    config = tiny_config(ONLINE_PRESET, manifest, str(tmp_path / "run"))
    config_path = write_config(tmp_path / "config.json", config)
    output = run_python(["train.py", str(config_path)], timeout=300,
                        **closed_proxy_env(tmp_path))
    errors = [line for line in output.stderr.splitlines() if line.startswith("error:")]
    assert output.returncode == 2, output.stderr[-3000:]
    assert "Traceback" not in output.stderr
    assert len(errors) == 1 and "model.text_preset='bert_tiny_en_uncased'" in errors[0]
