"""The `training.adversarial` field (adversarial training), checked (`tfmm.config` calls these).

    training.adversarial = {}    # off (the default)
    training.adversarial = {"method": "fgm", "epsilon": 0.5, "weight": 0.5}
    training.adversarial = {"method": "pgd", "epsilon": {"audio": 0.5, "image": 100.0},
                            "steps": 3, "step_size": 0.25, "inputs": ["audio"]}

The loss of a training step becomes (1 - weight) * clean loss + weight * loss on the perturbed
inputs; the perturbations are computed in `tfmm.training.adversarial`. Epsilon is an L2 norm per
example and per modality in the units of the model's input: image pixels in [0, 255] over the
whole [S, S, 3] image, audio waveform samples (about [-1, 1]) over the whole clip. Text is not
perturbed (README "Adversarial training" says why).
"""

import dataclasses
import math

ADVERSARIAL_METHODS = ("fgm", "pgd")
PERTURBED_MODALITIES = ("image", "audio")  # the continuous model inputs


@dataclasses.dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training's settings.

    Attributes:
        method: "fgm" (one step of size epsilon along the normalised gradient) or "pgd" (`steps`
            normalised-gradient steps of `step_size`, each projected back onto the epsilon ball).
        epsilon: L2 radius per example, one number for every perturbed input or
            {modality: number}.
        steps: PGD's steps (FGM: 1).
        step_size: PGD's step length in the same units (0: 2.5 * epsilon / steps).
        inputs: the modalities perturbed (a subset of image, audio); empty: every one of them
            that the model reads.
        weight: share of the perturbed loss in the training loss, in (0, 1].
    """

    method: str = "fgm"
    epsilon: object = 0.0
    steps: int = 1
    step_size: float = 0.0
    inputs: tuple = ()
    weight: float = 0.5

    def epsilon_of(self, modality: str) -> float:
        if isinstance(self.epsilon, dict):
            return float(self.epsilon[modality])
        return float(self.epsilon)

    def step_size_of(self, modality: str) -> float:
        """PGD's step length for a modality: `step_size`, or 2.5 * its epsilon / steps."""
        if self.step_size > 0:
            return self.step_size
        return 2.5 * self.epsilon_of(modality) / self.steps

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["inputs"] = list(self.inputs)
        return values

    @classmethod
    def from_dict(cls, values, key: str = "training.adversarial", source: str = "config"):
        """The settings a `training.adversarial` dict holds, checked; None for {} (off).

        Raises:
            ConfigError: an unknown key or a value out of range.
        """
        from tfmm.config import ConfigError

        if values is None or values == {} or values == "none":
            return None
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: `{key}` must be a dict such as {{'method': 'fgm', "
                              f"'epsilon': 0.5}} or {{}} (off). Received: {values!r}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: `{key}` has unknown keys {unknown}; known keys: "
                              f"{sorted(known)}")
        method = values.get("method", "fgm")
        if method not in ADVERSARIAL_METHODS:
            raise ConfigError(f"{source}: `{key}.method` must be one of "
                              f"{list(ADVERSARIAL_METHODS)}. Received: {method!r}")
        inputs = values.get("inputs", ())
        if isinstance(inputs, str):
            inputs = [part.strip() for part in inputs.split(",") if part.strip()]
        if not isinstance(inputs, (list, tuple)) or any(
                name not in PERTURBED_MODALITIES for name in inputs):
            raise ConfigError(f"{source}: `{key}.inputs` must list modalities among "
                              f"{list(PERTURBED_MODALITIES)} (text is not perturbed). "
                              f"Received: {inputs!r}")
        epsilon = values.get("epsilon", 0.0)
        epsilons = epsilon if isinstance(epsilon, dict) else {"": epsilon}
        for name, radius in epsilons.items():
            if name and name not in PERTURBED_MODALITIES:
                raise ConfigError(f"{source}: `{key}.epsilon` names {name!r}; the perturbed "
                                  f"modalities are {list(PERTURBED_MODALITIES)}")
            if not _positive_number(radius):
                raise ConfigError(f"{source}: `{key}.epsilon` must be a number > 0 (an L2 norm "
                                  f"in input units) or {{modality: number}}. Received: {epsilon!r}")
        steps = values.get("steps", 1 if method == "fgm" else 3)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or (
                method == "fgm" and steps != 1):
            raise ConfigError(f"{source}: `{key}.steps` must be an integer >= 1 (1 for 'fgm'). "
                              f"Received: {steps!r}")
        step_size = values.get("step_size", 0.0)
        if not (_positive_number(step_size) or step_size == 0):
            raise ConfigError(f"{source}: `{key}.step_size` must be a number >= 0 (0: 2.5 * "
                              f"epsilon / steps). Received: {step_size!r}")
        weight = values.get("weight", 0.5)
        if not _positive_number(weight) or weight > 1:
            raise ConfigError(f"{source}: `{key}.weight` (share of the perturbed loss) must be in "
                              f"(0, 1]. Received: {weight!r}")
        return cls(method=method,
                   epsilon=({name: float(value) for name, value in epsilon.items()}
                            if isinstance(epsilon, dict) else float(epsilon)),
                   steps=int(steps), step_size=float(step_size),
                   inputs=tuple(dict.fromkeys(inputs)), weight=float(weight))

    def perturbed_inputs(self, modalities, setting: str = "`training.adversarial`") -> tuple:
        """The modalities perturbed for a model reading `modalities` (its input names).

        Raises:
            ConfigError (a UserError), naming `setting`: nothing to perturb, or `inputs` names a
            modality the model does not read.
        """
        from tfmm.config import ConfigError

        perturbed = self.inputs or tuple(name for name in PERTURBED_MODALITIES
                                         if name in modalities)
        if not perturbed or any(name not in modalities for name in perturbed):
            raise ConfigError(f"{setting} perturbs image or audio inputs the model reads "
                              f"({list(modalities)}). Received inputs: "
                              f"{list(self.inputs) or 'none of them'}")
        return perturbed


def _positive_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and value > 0)


def coerce_adversarial(value, default, key: str, source: str) -> dict:
    """A `training.adversarial` value from a config file or `--set`, checked and completed with
    the defaults ({} when off), kept as a plain dict so config.json round-trips it."""
    settings = AdversarialConfig.from_dict(value, key, source)
    return settings.to_dict() if settings else {}


def adversarial_settings(training):
    """The `AdversarialConfig` of a `TrainingConfig`, or None when adversarial training is off."""
    return AdversarialConfig.from_dict(training.adversarial)


def check_adversarial_config(config):
    """Raises ConfigError for adversarial settings the model or the other settings cannot run."""
    from tfmm.config import ConfigError

    settings = AdversarialConfig.from_dict(config.training.adversarial)
    if settings is None:
        return
    data, model, training = config.data, config.model, config.training
    perturbed = settings.perturbed_inputs(data.modalities)
    if isinstance(settings.epsilon, dict):
        unset = [name for name in perturbed if name not in settings.epsilon]
        if unset:
            raise ConfigError(f"`training.adversarial.epsilon` gives no radius for {unset}. "
                              f"Received: {settings.epsilon}")
        if settings.step_size > 0 and len(set(settings.epsilon.values())) > 1:
            raise ConfigError("`training.adversarial.step_size` applies to every modality: with "
                              "an epsilon per modality leave it 0 (2.5 * epsilon / steps each)")
    if training.dp_l2_clip > 0:
        raise ConfigError("`training.adversarial` cannot be combined with DP-SGD "
                          "(training.dp_l2_clip > 0): the perturbation of each example would "
                          "come from the unclipped gradient of its loss. Set one of them off")
    if training.cache_frozen_features:
        cached = [name for name in perturbed if getattr(model, f"freeze_{name}_encoder")]
        if cached:
            raise ConfigError(f"`training.adversarial` perturbs {cached}, whose frozen encoder's "
                              "features `training.cache_frozen_features` computes once: set it "
                              "off, or leave those modalities out of `training.adversarial.inputs`")
