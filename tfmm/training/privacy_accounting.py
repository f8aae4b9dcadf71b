"""The privacy a DP-SGD run has spent: epsilon at delta, from Google's `dp-accounting` library.

Accountant: Renyi DP (`dp_accounting.rdp.RdpAccountant`, its default orders) composing `steps`
Poisson-subsampled Gaussian mechanisms with sampling probability q = global batch / training
examples and noise multiplier sigma: the accounting of Abadi et al. (2016) and Mironov et al.
(2019) that TensorFlow Privacy and Opacus report.

What the pipeline really does: tfmm shuffles the examples each epoch and cuts fixed-size batches
(every example once per epoch), not Poisson sampling (each example in each batch independently
with probability q). Reporting the Poisson figure for shuffled batches is the common practice;
Chua et al. (ICML 2024, "How Private are DP-SGD Implementations?") show that for shuffled batches
the true epsilon can be noticeably larger than the Poisson figure, so read the number as the
guarantee of the Poisson-sampled variant of the same run, not a proven bound for shuffling.

`steps` is the optimizer's iteration count, which the checkpoint keeps: a resumed run counts the
steps before the interruption once.
"""

import logging
import math

from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

ACCOUNTANT = "RDP (dp-accounting), Poisson-subsampled Gaussian, q = batch / examples"


class _DroppedOrdersFilter(logging.Filter):
    """Drops dp-accounting's warning for each Renyi order (e.g. 1.1-1.5 at sigma < 1) whose term
    does not converge: it leaves that order out and the epsilon, the minimum over the other
    orders, is still a valid bound; one warning per order and epsilon buried the run's log."""

    def filter(self, record):
        return "_compute_log_a_frac failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_DroppedOrdersFilter())


def epsilon_spent(noise_multiplier: float, sampling_probability: float, steps: int,
                  delta: float) -> float:
    """Epsilon at `delta` after `steps` Poisson-subsampled Gaussian steps (inf without noise)."""
    if steps <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sampling_probability,
                                       dp_event.GaussianDpEvent(noise_multiplier)), steps)
    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


def noise_multiplier_for_epsilon(target_epsilon: float, sampling_probability: float, steps: int,
                                 delta: float, tolerance: float = 1e-3) -> float:
    """The smallest noise multiplier (to `tolerance`) whose epsilon after `steps` is at most
    `target_epsilon` (bisection: dp-accounting has no inverse)."""
    low, high = 0.0, 1.0
    while epsilon_spent(high, sampling_probability, steps, delta) > target_epsilon:
        low, high = high, high * 2
        if high > 1e4:
            raise ValueError(f"no noise multiplier up to 1e4 reaches epsilon {target_epsilon}")
    while high - low > tolerance:
        middle = (low + high) / 2
        if epsilon_spent(middle, sampling_probability, steps, delta) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


def privacy_spent(training, batch_size: int, num_examples: int, steps: int) -> dict:
    """The privacy a run has spent after `steps` optimizer steps ({} when DP-SGD is off).

    Args:
        training: the run's `TrainingConfig` (dp_* fields).
        batch_size: global batch size.
        num_examples: training examples (N): q = batch_size / N, delta 0 means 1 / N.
        steps: optimizer steps taken.

    Returns:
        {"epsilon" (None when dp_noise_multiplier is 0: no privacy), "delta", "steps",
        "sampling_probability", "noise_multiplier", "l2_clip", "microbatch_size", "accountant"}.
    """
    if training.dp_l2_clip <= 0:
        return {}
    delta = training.dp_delta or 1.0 / num_examples
    sampling_probability = min(1.0, batch_size / num_examples)
    epsilon = epsilon_spent(training.dp_noise_multiplier, sampling_probability, steps, delta)
    return {"epsilon": None if math.isinf(epsilon) else epsilon, "delta": delta,
            "steps": int(steps), "sampling_probability": sampling_probability,
            "noise_multiplier": training.dp_noise_multiplier, "l2_clip": training.dp_l2_clip,
            "microbatch_size": training.dp_microbatch_size, "accountant": ACCOUNTANT}
