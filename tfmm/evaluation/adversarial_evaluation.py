"""Robust accuracy: a finished run scored on a manifest whose image / audio inputs are perturbed
by FGM or PGD (`evaluate.py RUN --data M --attack fgm --attack-epsilon E`).

The attack is the one adversarial training uses (`tfmm.adversarial_attack.InputAttack`), run
against the model in inference mode: the gradient of the task's loss on the true labels with
respect to each example's input, scaled per example to L2 norm epsilon (in the input's units:
pixels in [0, 255], waveform samples about [-1, 1]). Each epsilon writes one report,
`<name>_<method>_eps<E>_report.json`: the task's metrics under the attack, the attack, and the
clean figures beside them (`clean`).
"""

import os

import tensorflow as tf

from tfmm.adversarial_attack import InputAttack
from tfmm.adversarial_config import AdversarialConfig
from tfmm.atomic_write import write_json
from tfmm.errors import UserError
from tfmm.evaluation.predict import predict_dataset
from tfmm.recipes import recipe_for
from tfmm.run_folder import RunFolder, load_finished_run
from tfmm.tasks import get_task


def attack_settings(method: str, epsilon: float, steps: int = 0, step_size: float = 0.0,
                    inputs=(), modalities=()) -> AdversarialConfig:
    """The checked settings of one attack on a model reading `modalities`.

    Raises:
        ConfigError: a bad method, epsilon, steps or input, or nothing the model reads to attack.
    """
    values = {"method": method, "epsilon": epsilon, "step_size": step_size,
              "inputs": list(inputs)}
    if steps:
        values["steps"] = steps
    settings = AdversarialConfig.from_dict(values, "attack", "--attack")
    settings.perturbed_inputs(modalities, "--attack")
    return settings


def attacked_predictions(model, dataset, task, settings):
    """Outputs of `model` (inference mode) on every batch of `dataset` with its inputs attacked.

    Args:
        model: a tfmm model (dict in, dict out); `model.modalities` names its inputs.
        dataset: batches of (features, targets).
        task: a `tfmm.tasks.Task`; its loss (no label smoothing) on the true targets is attacked.
        settings: an `AdversarialConfig` (method, epsilon, steps, inputs).

    Returns:
        (outputs, targets, mean loss) as `tfmm.evaluation.predict.predict_dataset` returns them.
    """
    attack = InputAttack(settings, settings.perturbed_inputs(model.modalities))

    @tf.function(reduce_retracing=True)
    def step(features, targets):
        perturbed = attack.perturb(lambda inputs: task.per_example_loss(
            targets, model(inputs, training=False)), features)
        outputs = model(perturbed, training=False)
        return task.select_outputs(outputs), task.per_example_loss(targets, outputs)

    return predict_dataset(model, dataset, task, step=step)


def evaluate_under_attack(path: str, data_path: str, method: str, epsilons, steps: int = 0,
                          step_size: float = 0.0, inputs=(), out_dir=None, name=None,
                          batch_size: int = 64, skip_invalid: bool = False, log=print) -> list:
    """Scores a run on a manifest clean and under an attack at each epsilon; writes a report
    per epsilon.

    Args:
        path: run folder (or its model file) of a classification or regression run.
        data_path: JSONL manifest.
        method: "fgm" or "pgd"; steps and step_size: PGD's (0: the defaults).
        epsilons: L2 radii per example in input units, one report each.
        inputs: modalities attacked (image, audio); empty: every one the model reads.

    Returns:
        The reports, one per epsilon.
    """
    run = load_finished_run(path)
    config = run.config
    task = get_task(config.data.task)
    if not task.reads_jsonl_manifests:
        raise UserError(f"--attack scores manifest tasks (classification, regression). "
                        f"Received a {task.name!r} run")
    all_settings = [attack_settings(method, epsilon, steps, step_size, inputs,
                                    run.model.modalities) for epsilon in epsilons]
    pipeline, labels = recipe_for(config.data.task).file_pipeline(run, data_path, skip_invalid,
                                                                  log)
    clean_outputs, targets, clean_loss = predict_dataset(run.model, pipeline.batches(batch_size),
                                                         task)
    clean = {"loss": clean_loss, **task.metrics(clean_outputs, targets, labels)}
    folder = RunFolder(out_dir) if out_dir else run.folder
    tf.io.gfile.makedirs(folder.path)
    name = name or os.path.splitext(os.path.basename(data_path))[0]
    reports = []
    for settings in all_settings:
        outputs, targets, loss = attacked_predictions(run.model, pipeline.batches(batch_size),
                                                      task, settings)
        report_name = f"{name}_{settings.method}_eps{settings.epsilon:g}"
        attack = settings.to_dict()
        attack["inputs"] = list(settings.perturbed_inputs(run.model.modalities))
        report = {"manifest": pipeline.manifest.path, "task": task.name, "attack": attack, "loss": loss,
                  **task.metrics(outputs, targets, labels),
                  "clean": {key: value for key, value in clean.items()
                            if not isinstance(value, (list, dict))}}
        plots = task.write_plots(report, outputs, targets, labels, folder.path, report_name)
        report["plots"] = {key: os.path.basename(plot) for key, plot in plots.items()}
        write_json(folder.report(report_name), report)
        score = task.score_name
        log(f"{report_name}: {score} {report['clean'][score]:.4f} clean, {report[score]:.4f} "
            f"under {settings.method} (epsilon {settings.epsilon:g} on "
            f"{', '.join(attack['inputs'])}); report: {folder.report(report_name)}")
        reports.append(report)
    return reports


def run_attack_arguments(arguments, log=print) -> list:
    """What `evaluate.py --attack ...` runs, from its parsed arguments."""
    if arguments.drop_modality or arguments.drop_sweep:
        raise UserError("give --attack or --drop-modality / --drop-sweep, not both")
    if not arguments.attack_epsilon:
        raise UserError("--attack needs --attack-epsilon E (an L2 norm per example in input "
                        "units; repeatable). Received none")
    inputs = [name.strip() for name in arguments.attack_inputs.split(",") if name.strip()]
    return evaluate_under_attack(
        arguments.model, arguments.data, arguments.attack, arguments.attack_epsilon,
        steps=arguments.attack_steps, step_size=arguments.attack_step_size, inputs=inputs,
        out_dir=arguments.out, name=arguments.name, batch_size=arguments.batch_size,
        skip_invalid=arguments.skip_invalid, log=log)
