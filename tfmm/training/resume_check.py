"""A resume checks its config: the run folder's config.json against the config given now.

A run folder holding a checkpoint resumes from it. Before anything in the folder is overwritten,
the saved config is compared with the new one, field by field:

- identical, or different only in fields that do not change what is computed
  (`COMPUTATION_NEUTRAL_KEYS`: where the run folder is, checkpoint cadence and count, export,
  the test manifest and its report grouping, the in-memory cache, invalid-row skipping, the
  distribution strategy and TPU address, which by design compute the same step): the run resumes;
- any other change (learning rate, epochs, data, model, seed, ...) stops the run with one line
  naming the changed keys and the ways out: a new run folder (`--run-dir`), or
  `--allow-config-change`, which resumes under the new config and records the change in
  the run folder's list of config changes.
"""

import json

from tfmm.config import ConfigError, config_from_dict
from tfmm.errors import UserError
from tfmm.run_folder import RunFolder

COMPUTATION_NEUTRAL_KEYS = frozenset({
    "training.run_dir", "training.export", "training.checkpoint_every_steps",
    "training.keep_checkpoints", "training.strategy", "training.tpu", "data.test_manifest",
    "data.report_group_field", "data.cache", "data.skip_invalid",
})


class ConfigChangedError(UserError):
    """A resume whose config changes what the run computes."""


def _flatten(config_dict: dict) -> dict:
    """{"section.key": value} with tuples as lists (as JSON stores them)."""
    normalised = json.loads(json.dumps(config_dict))
    return {f"{section}.{key}": value for section, fields in normalised.items()
            for key, value in fields.items()}


def _saved_config(folder: RunFolder) -> dict:
    saved = folder.read_config_dict()
    try:  # fields added since the run started take their defaults
        return _flatten(config_from_dict(saved, source=folder.config).to_dict())
    except ConfigError:
        return _flatten(saved)


def changed_keys(saved: dict, new: dict) -> list:
    """The "section.key"s whose values differ between two flattened configs, sorted."""
    return sorted(key for key in set(saved) | set(new) if saved.get(key) != new.get(key))


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_resume_config(config, run_dir: str, allow_change: bool = False, chief: bool = True,
                        log=print) -> list:
    """Compares the run folder's saved config with `config` when the folder will be resumed.

    Args:
        config: the validated `tfmm.config.Config` of this run.
        run_dir: the run folder.
        allow_change: resume even when computation-changing fields differ (recorded in
            the run folder's config changes on the chief).
        chief: whether this worker writes files.
        log: function taking one line of text.

    Returns:
        The changed keys that alter the computation (empty when none, or nothing to resume).

    Raises:
        ConfigChangedError: such keys changed and `allow_change` is False.
    """
    folder = RunFolder(run_dir)
    if folder.read_config_dict() is None or not folder.has_checkpoint():
        return []
    saved = _saved_config(folder)
    new = _flatten(config.to_dict())
    changed = [key for key in changed_keys(saved, new) if key not in COMPUTATION_NEUTRAL_KEYS]
    if not changed:
        return []
    described = ", ".join(f"{key} {_short(saved.get(key))} -> {_short(new.get(key))}"
                          for key in changed)
    if not allow_change:
        raise ConfigChangedError(
            f"{folder.config}: this run folder holds a checkpoint of a run with another config "
            f"({described}); start a new run folder (--run-dir) or resume under the new config "
            f"with --allow-config-change")
    log(f"resuming {run_dir} under a changed config ({described}): --allow-config-change")
    if chief:
        folder.append_config_change({key: {"before": saved.get(key), "after": new.get(key)}
                                     for key in changed})
    return changed
