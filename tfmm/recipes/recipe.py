"""What a family of tasks adds to the one run sequence (`tfmm.training.runner`).

The runner owns the order every run follows (seed, run folder, strategy, resume check, data,
model, Trainer, save, evaluate, export); a recipe supplies the steps that differ between task
families: where the examples come from, which pipelines and model they need, how a trained model
is evaluated and exported. `evaluate.py` asks the same recipe to score a finished run on a file.
"""


class Recipe:
    """Base class of the recipes; `tfmm.recipes.recipe_for` picks one by task.

    Args:
        task: the run's `tfmm.tasks.Task`.

    Attributes:
        report_name: name of the report the run writes at the end of training ("test", "eval").
        export_description: what the export is, for the log line.
    """

    report_name = "test"
    export_description = "the serving SavedModel"

    def __init__(self, task):
        self.task = task

    def load_data(self, config, chief: bool, log=print):
        """Reads and validates every example the config names, before any model is built.

        May complete the config from what the data holds (it is saved afterwards). Returns the
        recipe's own data object, handed back to the methods below.
        """
        raise NotImplementedError

    def pipelines(self, config, data, log=print) -> tuple:
        """(training pipeline, validation pipeline or None, what the training examples are)."""
        raise NotImplementedError

    def build_model(self, config, data, log=print):
        """The untrained model (called under the strategy's scope)."""
        raise NotImplementedError

    def prepare_training(self, model, config, train_pipeline, validation_pipeline, strategy,
                         log=print) -> tuple:
        """(model to train, training pipeline, validation pipeline): by default unchanged.

        A recipe may train another model sharing `model`'s weights on other pipelines (cached
        frozen features); `model` is what gets saved, evaluated and exported.
        """
        return model, train_pipeline, validation_pipeline

    def run_info(self, config, data) -> dict:
        """What the run folder's run info records beyond task, labels and sizes."""
        return {}

    def evaluate(self, model, config, data, out_dir: str, history: dict, log=print):
        """Scores the trained model on the held-out data the config names; the report dict
        (written to `out_dir` under `report_name`), or None when there is none."""
        raise NotImplementedError

    def export(self, model, config, data, export_dir: str):
        """Writes the serving SavedModel into `export_dir`."""
        raise NotImplementedError

    def export_finished(self, model, run, export_dir: str):
        """The same serving SavedModel for `model` (e.g. a compressed copy) of a finished run
        (`tfmm.run_folder.FinishedRun`), from what the run folder holds."""
        raise NotImplementedError

    def evaluate_file(self, run, data_path: str, out_dir: str, name: str, batch_size: int,
                      skip_invalid: bool, log=print, drop_modalities=(),
                      drop_fraction: float = 1.0) -> dict:
        """What `evaluate.py` does: scores a finished run (`tfmm.run_folder.FinishedRun`) on a
        data file and writes the report (and its plots or predictions) to `out_dir`, with
        `drop_modalities` removed from a `drop_fraction` share of the examples
        (`tfmm.evaluation.modality_removal`)."""
        raise NotImplementedError
