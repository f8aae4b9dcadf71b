"""`train.py --target-epsilon E`: the noise multiplier that spends epsilon E over a run's plan.

The plan is the one the run will follow: its N training examples and its steps per epoch as the
runner counts them (full batches; on cached frozen features the Trainer reads a pipeline without
length buckets, so N // batch), times `training.epochs`. The accountant is the run's own
(`privacy_accounting.epsilon_spent`: q = batch / N, delta = `training.dp_delta` or 1 / N), so
the epsilon the run reports after its planned steps is E, or just below it (the noise multiplier
is the smallest to `SIGMA_TOLERANCE` whose epsilon is at most E). The chosen multiplier is set
as `training.dp_noise_multiplier`, so the run folder's config.json records it and a resume with
the same flag finds the same value.
"""

from tfmm.data.dataset import count_batches
from tfmm.errors import UserError
from tfmm.training.privacy import private_training_enabled
from tfmm.training.privacy_accounting import epsilon_spent, noise_multiplier_for_epsilon

SIGMA_TOLERANCE = 1e-4


class TargetEpsilonError(UserError):
    """`--target-epsilon` without DP-SGD, or an epsilon that no noise multiplier reaches."""


def planned_privacy_terms(config) -> tuple:
    """(training examples N, steps per epoch) of the run `config` describes, read from its data
    as the runner reads it (the manifests are validated here once more)."""
    from tfmm.recipes import recipe_for
    from tfmm.training.runner import count_steps_per_epoch
    from tfmm.training.strategy import is_chief

    quiet = lambda line: None  # noqa: E731  (the run logs the same lines itself)
    recipe = recipe_for(config.data.task)
    data = recipe.load_data(config, is_chief(), quiet)
    train_pipeline, _, what = recipe.pipelines(config, data, quiet)
    examples = train_pipeline.num_examples
    steps_per_epoch = count_steps_per_epoch(config, train_pipeline, what)
    if config.training.cache_frozen_features and not config.training.steps_per_epoch:
        steps_per_epoch = count_batches(examples, config.data.batch_size, drop_remainder=True)
    return examples, steps_per_epoch


def check_target_epsilon(stages, target_epsilon: float, source: str):
    """TargetEpsilonError unless `target_epsilon` > 0 and DP-SGD is on in one of `stages`
    ((name, config) pairs: the stages with DP-SGD off run without noise)."""
    if not target_epsilon > 0:
        raise TargetEpsilonError(f"{source}: --target-epsilon must be > 0. Received: "
                                 f"{target_epsilon}")
    if not any(private_training_enabled(config.training) for _, config in stages):
        clips = sorted({config.training.dp_l2_clip for _, config in stages})
        raise TargetEpsilonError(f"{source}: --target-epsilon needs DP-SGD on (training.dp_l2_clip"
                                 " > 0, e.g. --set training.dp_l2_clip=1.0). Received: "
                                 f"training.dp_l2_clip={', '.join(map(str, clips))}")


def choose_noise_multiplier(config, target_epsilon: float, source: str = "--target-epsilon",
                            log=print) -> float:
    """Sets `config.training.dp_noise_multiplier` to the noise that spends `target_epsilon`.

    Args:
        config: a validated `tfmm.config.Config` with DP-SGD on (`training.dp_l2_clip` > 0).
        target_epsilon: epsilon at the run's delta after all its planned steps.
        source: what the error messages name first (the config file).
        log: function taking one line of text.

    Returns:
        The chosen noise multiplier.

    Raises:
        TargetEpsilonError: DP-SGD is off, or no noise multiplier up to 1e4 reaches the target.
    """
    training = config.training
    check_target_epsilon([("", config)], target_epsilon, source)
    examples, steps_per_epoch = planned_privacy_terms(config)
    steps = steps_per_epoch * training.epochs
    sampling_probability = min(1.0, config.data.batch_size / examples)
    delta = training.dp_delta or 1.0 / examples
    try:
        sigma = noise_multiplier_for_epsilon(target_epsilon, sampling_probability, steps, delta,
                                             tolerance=SIGMA_TOLERANCE)
    except ValueError:
        raise TargetEpsilonError(
            f"{source}: --target-epsilon {target_epsilon} cannot be reached at delta {delta:.3g} "
            f"over {steps} steps (q = {sampling_probability:.4g}): even noise multiplier 1e4 "
            f"spends epsilon {epsilon_spent(1e4, sampling_probability, steps, delta):.3g}; "
            "ask for a larger epsilon or train fewer steps") from None
    training.dp_noise_multiplier = sigma
    log(f"--target-epsilon {target_epsilon}: training.dp_noise_multiplier = {sigma:.6g} spends "
        f"epsilon {epsilon_spent(sigma, sampling_probability, steps, delta):.4f} at delta "
        f"{delta:.3g} over the {steps} planned steps ({training.epochs} epochs x "
        f"{steps_per_epoch}; q = {config.data.batch_size}/{examples})")
    return sigma
