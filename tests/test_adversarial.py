"""Adversarial training and robust accuracy (training.adversarial, evaluate.py --attack): the
FGM / PGD perturbations, the mixed training loss, the attacked evaluation, the config checks."""

import json
import os
import re

import numpy as np
import pytest

from helpers import tiny

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")


def _tiny_classifier(seed=0, hidden=0):
    """A Keras model {"image": [B, 4, 4, 3], "audio": [B, 20]} -> {"logits": [B, 3]} whose
    examples do not interact (no BatchNorm); `hidden` > 0 adds a tanh layer (non-linear)."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((4, 4, 3), name="image")
    audio = keras.Input((20,), name="audio")
    pixels = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(image))
    joined = keras.layers.Concatenate()([pixels, audio])
    if hidden:
        joined = keras.layers.Dense(hidden, activation="tanh")(joined)
    logits = keras.layers.Dense(3)(joined)
    return keras.Model({"image": image, "audio": audio}, {"logits": logits})


def _batch(size=6, seed=1):
    import tensorflow as tf

    random = np.random.default_rng(seed)
    features = {"image": tf.constant(random.uniform(0, 255, (size, 4, 4, 3)), tf.float32),
                "audio": tf.constant(random.normal(0, 0.3, (size, 20)), tf.float32)}
    return features, tf.constant(random.integers(0, 3, size), tf.int32)


def _settings(**values):
    from tfmm.adversarial_config import AdversarialConfig

    return AdversarialConfig.from_dict(values)


def _loss_function(model, targets):
    from tfmm.tasks import MulticlassTask

    return lambda inputs: MulticlassTask().per_example_loss(targets, model(inputs))


def _norms(array):
    return np.linalg.norm(array.reshape(len(array), -1), axis=1)


def test_fgm_perturbation_has_norm_epsilon_along_each_examples_gradient():
    """r = epsilon * g / ||g||: norm epsilon (per modality's own epsilon) and cosine 1 with the
    gradient of that example's loss, computed here one example at a time; an example with a
    zero gradient (its logits do not depend on the input) is left as it is."""
    import tensorflow as tf

    from tfmm.adversarial_attack import InputAttack

    model = _tiny_classifier(hidden=8)
    features, targets = _batch()
    settings = _settings(method="fgm", epsilon={"image": 30.0, "audio": 0.2})
    perturbed = InputAttack(settings, ["image", "audio"]).perturb(
        _loss_function(model, targets), features)
    loss_of = _loss_function(model, targets)
    for name, epsilon in (("image", 30.0), ("audio", 0.2)):
        delta = (perturbed[name] - features[name]).numpy()
        np.testing.assert_allclose(_norms(delta), epsilon, rtol=1e-5)
        for index in range(len(delta)):
            one = {key: value[index:index + 1] for key, value in features.items()}
            with tf.GradientTape() as tape:  # this example's loss alone
                tape.watch(one[name])
                loss = _loss_function(model, targets[index:index + 1])(one)[0]
            gradient = tape.gradient(loss, one[name]).numpy().ravel()
            cosine = delta[index].ravel() @ gradient / (
                np.linalg.norm(delta[index]) * np.linalg.norm(gradient))
            assert cosine == pytest.approx(1.0, abs=1e-5), (name, index)
    # A zero gradient (audio multiplied by 0 in the model): no perturbation, no NaN.
    zeroed = lambda inputs: loss_of({**inputs, "audio": inputs["audio"] * 0.0})  # noqa: E731
    quiet = InputAttack(settings, ["audio"]).perturb(zeroed, features)
    np.testing.assert_array_equal(quiet["audio"].numpy(), features["audio"].numpy())


def test_pgd_stays_in_the_ball_and_raises_the_loss_at_least_as_much_as_fgm():
    from tfmm.adversarial_attack import InputAttack

    model = _tiny_classifier(seed=3, hidden=16)
    features, targets = _batch(size=16, seed=4)
    loss_of = _loss_function(model, targets)
    epsilon = 1.5
    fgm = InputAttack(_settings(method="fgm", epsilon=epsilon), ["audio"]).perturb(
        loss_of, features)
    pgd = InputAttack(_settings(method="pgd", epsilon=epsilon, steps=8), ["audio"]).perturb(
        loss_of, features)
    assert np.all(_norms((pgd["audio"] - features["audio"]).numpy()) <= epsilon * (1 + 1e-5))
    np.testing.assert_array_equal(pgd["image"].numpy(), features["image"].numpy())
    clean, fgm_loss, pgd_loss = (float(loss_of(inputs).numpy().sum())
                                 for inputs in (features, fgm, pgd))
    assert clean < fgm_loss <= pgd_loss, (clean, fgm_loss, pgd_loss)


# ------------------------------------------------------------------------------------------------
# Config
def test_adversarial_config_round_trips_through_config_json_and_set(tmp_path):
    """`--set training.adversarial={...}` is checked and completed with the defaults; the saved
    config.json dict loads back to the same settings; {} (the default) is off."""
    from tfmm.adversarial_config import AdversarialConfig, adversarial_settings
    from tfmm.config import Config, config_from_dict, load_config

    assert Config().training.adversarial == {} and adversarial_settings(Config().training) is None
    config = load_config(None, ["data.train_manifest=train.jsonl",
                                "data.modalities=['audio', 'image']",
                                "training.adversarial={'method': 'pgd', 'epsilon': "
                                "{'audio': 0.5, 'image': 40}, 'steps': 4}"])
    settings = adversarial_settings(config.training)
    assert settings == AdversarialConfig(method="pgd", epsilon={"audio": 0.5, "image": 40.0},
                                         steps=4, step_size=0.0, inputs=(), weight=0.5)
    assert settings.perturbed_inputs(("audio", "image")) == ("image", "audio")
    assert settings.step_size_of("audio") == pytest.approx(2.5 * 0.5 / 4)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    again = config_from_dict(json.loads(path.read_text())).validate()
    assert again.training.adversarial == config.training.adversarial
    assert AdversarialConfig.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize("overrides, message", [
    (["training.adversarial={'method': 'fgsm', 'epsilon': 1}"], r"method` must be one of"),
    (["training.adversarial={'epsilon': 0}"], r"epsilon` must be a number > 0"),
    (["training.adversarial={'epsilon': 1, 'radius': 2}"], r"unknown keys \['radius'\]"),
    (["training.adversarial={'epsilon': 1, 'steps': 3}"], r"steps` must be an integer >= 1 "
                                                         r"\(1 for 'fgm'\)"),
    (["training.adversarial={'epsilon': 1, 'inputs': ['text']}"], r"text is not perturbed"),
    (["training.adversarial={'epsilon': 1, 'weight': 1.5}"], r"weight` .* must be in \(0, 1\]"),
    (["data.modalities=['text']", "training.adversarial={'epsilon': 1}"],
     r"perturbs image or audio inputs the model reads"),
    (["data.modalities=['audio']", "training.adversarial={'epsilon': 1, 'inputs': ['image']}"],
     r"perturbs image or audio inputs the model reads"),
    (["data.modalities=['audio', 'image']", "training.adversarial={'epsilon': {'audio': 1}}"],
     r"gives no radius for \['image'\]"),
    (["data.modalities=['audio']", "training.dp_l2_clip=1.0",
      "model.freeze_audio_encoder=true", "training.adversarial={'epsilon': 1}"],
     r"cannot be combined with DP-SGD"),
    (["data.modalities=['audio']", "model.freeze_audio_encoder=true",
      "training.cache_frozen_features=true", "training.adversarial={'epsilon': 1}"],
     r"cache_frozen_features` computes once"),
])
def test_adversarial_settings_that_cannot_run_fail_with_one_line(overrides, message):
    from tfmm.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, ["data.train_manifest=train.jsonl", *overrides])
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------------
# Training
def _tiny_audio_config(task="multiclass", jit="true", **training):
    from tfmm.config import Config

    config = Config()
    config.data.task, config.data.modalities, config.data.audio_length = task, ("audio",), 800
    config.model.audio_frame_length, config.model.audio_frame_step = 128, 64
    config.model.audio_num_mel_bins, config.model.audio_conv_filters = 16, (4, 8)
    config.model.projection_dim, config.model.fusion = 16, "concat"
    config.model.head_hidden_dim = 16
    config.model.dropout = 0.0
    config.training.jit_compile = jit
    for key, value in training.items():
        setattr(config.training, key, value)
    return config


@pytest.mark.parametrize("task, jit", [("multiclass", "true"), ("regression", "false")])
def test_the_train_step_loss_is_the_configured_mix_of_clean_and_perturbed_losses(task, jit,
                                                                                 tmp_path):
    """The step's loss (XLA on, label smoothing attacked and trained) equals, computed here by
    hand, mean((1 - w) * clean + w * loss at x + epsilon * g / ||g|| per example), g the
    gradient of the summed losses w.r.t. the waveforms (BatchNorm in training mode, as in the
    step)."""
    import keras
    import tensorflow as tf

    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.tasks import get_task
    from tfmm.training.trainer import Trainer

    weight, epsilon = 0.3, 0.4
    config = _tiny_audio_config(task, jit, label_smoothing=0.1,
                                adversarial={"method": "fgm", "epsilon": epsilon,
                                             "weight": weight})
    keras.utils.set_random_seed(5)
    model = build_multimodal_model(config, num_outputs=3 if task == "multiclass" else 1)
    random = np.random.default_rng(2)
    features = {"audio": tf.constant(random.normal(0, 0.3, (4, 800)), tf.float32),
                "audio_mask": tf.ones((4,))}
    targets = (tf.constant([0, 1, 2, 1]) if task == "multiclass"
               else tf.constant(random.normal(size=(4, 1)), tf.float32))
    task_object = get_task(task)
    loss_of = lambda inputs: task_object.per_example_loss(  # noqa: E731
        targets, model(inputs, training=True), 0.1)
    audio = tf.Variable(features["audio"])
    with tf.GradientTape() as tape:
        clean = loss_of({**features, "audio": audio})
        total = tf.reduce_sum(clean)
    gradient = tape.gradient(total, audio).numpy()
    perturbed = features["audio"].numpy() + epsilon * gradient / _norms(gradient)[:, None]
    attacked = loss_of({**features, "audio": tf.constant(perturbed)}).numpy()
    expected = np.mean((1 - weight) * clean.numpy() + weight * attacked)
    assert abs(attacked.mean() - clean.numpy().mean()) > 1e-3  # the mix is not the clean loss
    trainer = Trainer(model, task, config.training, tf.distribute.get_strategy(), 4,
                      str(tmp_path), batch_size=4, log=lambda line: None)
    assert trainer.jit_compile == (jit == "true")
    loss, _ = trainer.train_step((features, targets))
    assert float(loss) == pytest.approx(expected, rel=2e-4)


@pytest.mark.slow
@pytest.mark.parametrize("task, overrides", [
    ("multilabel", ["model.dropout=0.2", "training.mixed_precision=bfloat16",
                    "training.adversarial={'method': 'pgd', 'epsilon': 0.3, 'steps': 2}"]),
    ("multiclass", ["model.dropout=0.2", "training.jit_compile=false",
                    "training.mixed_precision=float16",
                    "training.adversarial={'method': 'fgm', 'epsilon': 0.3, 'weight': 1.0}"]),
])
def test_adversarial_training_runs_with_dropout_mixed_precision_and_xla(task, overrides,
                                                                        tiny_preset, tmp_path):
    """A whole tiny run (the text and audio model, dropout on, bfloat16 under XLA with PGD;
    float16 with loss scaling with FGM) trains with finite losses that fall. Slow: 2-6 minutes
    each on the loaded 2-core machine (the XLA compilation of the unrolled PGD step)."""
    import keras

    from tfmm.config import load_config
    from tfmm.training.runner import run_training

    manifest = tiny.write_manifest(str(tmp_path / "data"), num_rows=32, task=task)
    config_path = tiny.write_config(str(tmp_path / "config.json"), tiny.tiny_config(
        tiny_preset, manifest, str(tmp_path / "run"), modalities=("text", "audio"),
        data={"task": task}, epochs=3))
    try:
        result = run_training(load_config(config_path, overrides), log=lambda line: None)
    finally:
        keras.config.set_dtype_policy("float32")
    losses = result["history"]["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


# ------------------------------------------------------------------------------------------------
# Robust accuracy
@pytest.fixture(scope="module")
def trained_audio_run(tiny_preset, tmp_path_factory):
    """A finished tiny audio-only run (3 epochs) and its manifest."""
    from tfmm.config import load_config
    from tfmm.training.runner import run_training

    folder = tmp_path_factory.mktemp("adversarial_run")
    manifest = tiny.write_manifest(str(folder / "data"), num_rows=32)
    config_path = tiny.write_config(str(folder / "config.json"), tiny.tiny_config(
        tiny_preset, manifest, str(folder / "run"), modalities=("audio",), epochs=3))
    run_training(load_config(config_path), log=lambda line: None)
    return str(folder / "run"), manifest


def test_robust_accuracy_is_the_accuracy_on_inputs_perturbed_by_hand(trained_audio_run,
                                                                     tmp_path):
    """evaluate.py --attack fgm: the report's accuracy is the accuracy on waveforms moved by
    epsilon along each clip's normalised loss gradient (inference mode, true labels), computed
    here by hand; it is at most the clean accuracy, which the report holds beside it."""
    import tensorflow as tf

    import evaluate
    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.run_folder import load_finished_run
    from tfmm.tasks import MulticlassTask

    run_dir, manifest = trained_audio_run
    epsilon = 40.0  # the tones' norm is about 7; at 3-10 the tiny model is not fooled
    assert evaluate.main([run_dir, "--data", manifest, "--out", str(tmp_path), "--name", "tiny",
                          "--attack", "fgm", "--attack-epsilon", str(epsilon),
                          "--batch-size", "8"]) == 0
    with open(tmp_path / "tiny_fgm_eps40_report.json") as handle:
        report = json.load(handle)
    assert report["attack"]["method"] == "fgm" and report["attack"]["inputs"] == ["audio"]

    run = load_finished_run(run_dir)
    data = run.config.data
    pipeline = ExamplePipeline(read_manifest_for_config(manifest, data, labels=data.labels),
                               MultimodalPreprocessor.from_data_config(
                                   data, run.config.model.text_preset), "multiclass")
    right, clean_right, count = 0, 0, 0
    for features, targets in pipeline.batches(8):
        audio = tf.Variable(features["audio"])
        with tf.GradientTape() as tape:
            logits = run.model({**features, "audio": audio}, training=False)["logits"]
            total = tf.reduce_sum(MulticlassTask().per_example_loss(targets, {"logits": logits}))
        gradient = tape.gradient(total, audio).numpy()
        moved = features["audio"].numpy() + epsilon * gradient / _norms(gradient)[:, None]
        attacked = run.model({**features, "audio": tf.constant(moved)}, training=False)["logits"]
        right += int(np.sum(np.argmax(attacked, -1) == targets.numpy()))
        clean_right += int(np.sum(np.argmax(logits, -1) == targets.numpy()))
        count += len(moved)
    assert report["accuracy"] == pytest.approx(right / count)
    assert report["clean"]["accuracy"] == pytest.approx(clean_right / count)
    assert report["accuracy"] < report["clean"]["accuracy"], report


def test_evaluate_attack_errors_are_one_line(trained_audio_run, capsys):
    import evaluate

    run_dir, manifest = trained_audio_run
    for extra, message in ((["--attack", "fgm"], "--attack needs --attack-epsilon"),
                           (["--attack", "fgm", "--attack-epsilon", "1", "--attack-inputs",
                             "image"], "--attack perturbs image or audio inputs the model reads"),
                           (["--attack", "fgm", "--attack-epsilon", "-1"],
                            "epsilon` must be a number > 0"),
                           (["--attack", "fgm", "--attack-epsilon", "1", "--drop-modality",
                             "audio"], "not both")):
        assert evaluate.main([run_dir, "--data", manifest, *extra]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and message in error[0], error


# ------------------------------------------------------------------------------------------------
# Several replicas
@pytest.mark.slow
def test_two_mirrored_replicas_train_adversarially_like_one(tiny_config, tmp_path):
    """FGM adversarial training under MirroredStrategy over two logical CPU devices (global batch
    8 = 2 x 4, XLA off as DESIGN.md requires there, dropout 0) gives the losses and weights of
    one replica at batch 8 (the bounds of test_distribution's comparison: summation order).
    Each replica attacks its own examples; BatchNorm statistics are synchronised, so the
    gradients w.r.t. the inputs are those of the global batch."""
    config, _ = tiny_config("adversarial_replicas", modalities=("audio",), jit_compile="false")
    out = str(tmp_path / "replicas.npz")
    result = tiny.run_python(
        [os.path.join(HELPERS, "compare_replicas.py"), config, out,
         "training.adversarial={'method': 'pgd', 'epsilon': 2.0, 'steps': 2}"], timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"BatchNormalization layers compute their statistics across the 2",
                     result.stdout)
    arrays = np.load(out)
    assert int(arrays["two/replicas"]) == 2
    # Epoch 1 agrees to float rounding (measured: 4e-7 relative); after it the attack's
    # normalisation g / ||g|| amplifies rounding where a well-fit example's gradient is tiny
    # (measured: epoch 2's loss 2.0e-4 relative, weights 1.4e-4 at most, over 46 arrays).
    np.testing.assert_allclose(arrays["two/loss"][0], arrays["one/loss"][0], rtol=1e-5)
    np.testing.assert_allclose(arrays["two/loss"], arrays["one/loss"], rtol=1e-3)
    names = [key[len("one/"):] for key in arrays.files
             if key.startswith("one/") and key not in ("one/replicas", "one/loss")]
    assert len(names) > 10
    for name in names:
        np.testing.assert_allclose(arrays[f"two/{name}"], arrays[f"one/{name}"], rtol=1e-3,
                                   atol=5e-4, err_msg=name)
