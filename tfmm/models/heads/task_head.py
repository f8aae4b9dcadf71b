"""Task heads: multi-class and multi-label classification, regression."""

import keras

from tfmm.tasks import get_task


@keras.saving.register_keras_serializable(package="tfmm")
class TaskHead(keras.layers.Layer):
    """A small MLP from the fused vector to the task's outputs, computed in float32.

    Args:
        task: "multiclass" (softmax logits), "multilabel" (one sigmoid logit per class) or
            "regression" (real values).
        num_outputs: classes, or regression targets.
        hidden_dim: width of the hidden layer; 0 for a linear head.
        dropout: dropout before the hidden and output layers.

    Input shape: [B, D]. Output shape: float32 [B, num_outputs].
    """

    def __init__(self, task="multiclass", num_outputs=2, hidden_dim=256, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        if len(get_task(task).output_keys) != 1:  # "qa" has its own head (span_model)
            raise ValueError("TaskHead: `task` must be a task with one output (multiclass, "
                             f"multilabel, regression). Received: task={task!r}")
        if num_outputs < 1:
            raise ValueError(f"TaskHead: `num_outputs` must be >= 1. Received: {num_outputs}")
        self.task = task
        self.num_outputs = num_outputs
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.hidden_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.hidden = (keras.layers.Dense(hidden_dim, activation="gelu", name="head_hidden",
                                          dtype=self.dtype_policy) if hidden_dim else None)
        self.output_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.output_layer = keras.layers.Dense(num_outputs, name="head_output", dtype="float32")

    def build(self, input_shape):
        shape = input_shape
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = (shape[0], self.hidden_dim)
        self.output_layer.build(shape)
        self.built = True

    def call(self, fused, training=None):
        features = self.hidden_dropout(fused, training=training)
        if self.hidden is not None:
            features = self.hidden(features)
            features = self.output_dropout(features, training=training)
        return self.output_layer(features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    def get_config(self):
        config = super().get_config()
        config.update({"task": self.task, "num_outputs": self.num_outputs,
                       "hidden_dim": self.hidden_dim, "dropout": self.dropout})
        return config
