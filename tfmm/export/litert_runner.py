"""Running a tfmm .tflite file with the `ai-edge-litert` interpreter.

`LiteRTModel` takes the preprocessed tensors the model was converted with
(`tfmm.export.litert`); `predict_raw` first runs the training-time `MultimodalPreprocessor` on raw
strings, image bytes and WAV bytes, so a caller gives the same inputs as to the SavedModel:

    model = LiteRTModel("runs/av_digits/fused/litert/model_int8.tflite")
    preprocessor = MultimodalPreprocessor.from_data_config(config.data, config.model.text_preset)
    outputs = model.predict_raw(preprocessor, {"text": [...], "image": [...], "audio": [...]})

Inside TensorFlow code (a `tf.function`, `tfmm.evaluation.predict`), `model(features)` runs the
interpreter through `tf.numpy_function`, so evaluation code written for a Keras model takes a
`LiteRTModel` unchanged.
"""

import os
import threading

import numpy as np
import tensorflow as tf


def read_flatbuffer(path_or_bytes) -> bytes:
    """The bytes of a .tflite file (local or gs:// path), or the given bytes."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return bytes(path_or_bytes)
    with tf.io.gfile.GFile(path_or_bytes, "rb") as handle:
        return handle.read()


def load_interpreter(flatbuffer: bytes, num_threads=None, xnnpack: bool = True):
    """An `ai_edge_litert` Interpreter; `xnnpack` False: the builtin kernels only (no default
    delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if xnnpack
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return Interpreter(model_content=flatbuffer, num_threads=num_threads,
                       experimental_op_resolver_type=resolver)


class LiteRTModel:
    """A .tflite model with a dict-in, dict-out call, like the Keras model it came from.

    Args:
        path_or_bytes: the .tflite file (or its bytes), written by `tfmm.export.litert`.
        num_threads: interpreter threads (None: the interpreter's default).

    Runs with the XNNPACK delegate, and with the builtin kernels alone (`xnnpack` False) when
    XNNPACK cannot prepare the graph.

    Attributes:
        input_specs: {name: (shape with -1 for the batch, numpy dtype)}.
        output_specs: the same for the outputs ("logits", "start_logits", ...).
    """

    def __init__(self, path_or_bytes, num_threads=None):
        self.flatbuffer = read_flatbuffer(path_or_bytes)
        self.num_threads = num_threads
        self._load(xnnpack=True)
        self._lock = threading.Lock()  # one interpreter: one call at a time

    def _load(self, xnnpack: bool):
        self.xnnpack = xnnpack
        self.interpreter = load_interpreter(self.flatbuffer, self.num_threads, xnnpack)
        self.runner = self.interpreter.get_signature_runner()
        self.input_specs = _specs(self.runner.get_input_details())
        self.output_specs = _specs(self.runner.get_output_details())

    def predict(self, features: dict) -> dict:
        """Runs one batch.

        Args:
            features: {input name: array [B, ...]} (extra keys are ignored).

        Returns:
            {output name: numpy array [B, ...]}.
        """
        missing = sorted(set(self.input_specs) - set(features))
        if missing:
            raise ValueError(f"LiteRT model inputs missing: {missing}. "
                             f"Received: {sorted(features)}")
        inputs = {name: np.asarray(features[name], dtype=dtype)
                  for name, (_, dtype) in self.input_specs.items()}
        with self._lock:
            try:
                outputs = self.runner(**inputs)
            except RuntimeError as error:
                # XNNPACK cannot prepare some full-int8 graphs at a resized batch ("failed to
                # create XNNPACK runtime"): the builtin kernels run them.
                if not self.xnnpack or "XNNPACK" not in str(error):
                    raise
                self._load(xnnpack=False)
                outputs = self.runner(**inputs)
        return {name: np.array(value) for name, value in outputs.items()}

    def predict_raw(self, preprocessor, raw_inputs: dict) -> dict:
        """Raw inputs -> the preprocessor used in training -> `predict`.

        Args:
            preprocessor: the run's `MultimodalPreprocessor`.
            raw_inputs: {modality: list or array of strings / encoded bytes [B]}.
        """
        features = preprocessor({name: tf.constant(value, tf.string)
                                 for name, value in raw_inputs.items()})
        return self.predict({name: value.numpy() for name, value in features.items()})

    def __call__(self, features: dict, training=False) -> dict:
        """`predict` as a TensorFlow op, for code that calls a Keras model on tensors."""
        del training  # a .tflite model has no training mode
        names = list(self.input_specs)
        output_names = list(self.output_specs)

        def run(*arrays):
            outputs = self.predict(dict(zip(names, arrays)))
            return [outputs[name] for name in output_names]

        results = tf.numpy_function(
            run, [features[name] for name in names],
            [tf.as_dtype(dtype) for _, dtype in self.output_specs.values()], stateful=False)
        batch = tf.shape(features[names[0]])[:1]
        outputs = {}
        for name, tensor in zip(output_names, results):
            shape = self.output_specs[name][0]
            tensor = tf.reshape(tensor, tf.concat([batch, shape[1:]], 0))
            tensor.set_shape([None] + [int(size) for size in shape[1:]])
            outputs[name] = tensor
        return outputs


def _specs(details: dict) -> dict:
    return {name: (np.array(detail.get("shape_signature", detail["shape"])), detail["dtype"])
            for name, detail in details.items()}


def find_run_folder(tflite_path: str) -> str:
    """The run folder a .tflite file belongs to: its folder or the nearest one above holding the
    run's config and run info (export.py writes into `<run>/litert/`)."""
    from tfmm.run_folder import RunFolder, RunFolderError

    folder = os.path.dirname(os.path.abspath(tflite_path))
    while True:
        run = RunFolder(folder)
        if tf.io.gfile.exists(run.config) and tf.io.gfile.exists(run.run_info):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            raise RunFolderError(f"{tflite_path}: no run folder (a run's config and run info) "
                                 "in its folder or above it")
        folder = parent


def load_litert_run(tflite_path: str):
    """A `tfmm.run_folder.FinishedRun` whose model is the .tflite file (`LiteRTModel`)."""
    from tfmm.run_folder import FinishedRun, RunFolder, RunFolderError

    if not tf.io.gfile.exists(tflite_path):
        raise RunFolderError(f"{tflite_path} does not exist")
    folder = RunFolder(find_run_folder(tflite_path))
    return FinishedRun(folder, folder.read_config(), folder.read_run_info(),
                       LiteRTModel(tflite_path))


def evaluate_litert(tflite_path: str, data_path: str, out_dir=None, name=None, batch_size=64,
                    skip_invalid=False, log=print, drop_modalities=(),
                    drop_fraction: float = 1.0) -> dict:
    """`tfmm.evaluation.evaluate_run.evaluate_run` with the .tflite model in place of the Keras
    one (the same evaluation code: preprocessing, report, plots, log lines). The report's
    default name is the data file's name and the .tflite file's name (`test_model_int8`),
    beside the run's other reports."""
    from tfmm.evaluation.evaluate_run import evaluate_finished_run

    name = name or "_".join(os.path.splitext(os.path.basename(path))[0]
                            for path in (data_path, tflite_path))
    return evaluate_finished_run(load_litert_run(tflite_path), data_path, out_dir, name,
                                 batch_size, skip_invalid, log, drop_modalities, drop_fraction)
