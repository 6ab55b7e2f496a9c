"""Losses with Keras names and semantics, plus the accuracy each one computes in the same op.

Each cross-entropy maps to two ops of the backend: one on probabilities and one fused with the last
activation on logits.  When the model's last layer ends in the matching activation (sigmoid for binary,
softmax for categorical), ``compile`` makes that layer output logits and uses the fused op, which is
numerically stable; predictions still go through the activation.  Mean squared error has one op.
"""
import functools

import numpy as np

from gpucnn.contract.losses import check_label_smoothing


class Loss:
    name = None
    probability_op = None
    logits_op = None
    activation = None  # the activation whose pre-activation logits the fused op takes
    accuracy_name = None
    label_smoothing = 0.0

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def op(self, ops, logits):
        """The backend op of this loss (``ops`` = ``backend.current().ops``) with its options bound:
        ``op(outputs, labels) -> (loss, grad, correct)``."""
        name = self.logits_op if logits else self.probability_op
        if self.label_smoothing:
            return functools.partial(getattr(ops, name), label_smoothing=self.label_smoothing)
        return getattr(ops, name)

    def prepare_labels(self, y, output_shape, argument="y"):
        """``y`` as a NumPy array the loss op accepts, or a ValueError naming ``argument``."""
        raise NotImplementedError

    def accuracy_count(self, labels):
        """How many predictions the loss op's correct count is out of, for a batch of ``labels``:
        one per sample (the categorical losses compare one argmax per row)."""
        return len(labels)

    def get_config(self):
        return {"from_logits": self.from_logits}


def _check_shape(y, output_shape, argument, loss_name, hint):
    expected = (len(y),) + tuple(output_shape)
    if y.shape != expected:
        raise ValueError(f"Argument `{argument}` has shape {y.shape}, but the model outputs "
                         f"{(None,) + tuple(output_shape)} and loss '{loss_name}' needs labels of shape "
                         f"{expected}. Fix: {hint}")


def _as_float_labels(y, argument):
    y = np.asarray(y)
    if y.dtype.kind == "c":
        raise TypeError(f"Argument `{argument}` must hold real numbers, got dtype {y.dtype}: the "
                        f"imaginary part would be dropped. Fix: pass real labels, e.g. np.real(y).")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(f"Argument `{argument}` must hold numbers, got dtype {y.dtype}.")
    # C order: the kernels read labels as flat C-contiguous rows, and a batch sliced from Fortran-order
    # labels (pandas' to_numpy() of several columns) would not be contiguous.
    y = y.astype(np.float32, order="C")
    if not np.isfinite(y).all():
        raise ValueError(f"Argument `{argument}` contains NaN or Inf. Fix: clean the labels.")
    return y


class _SmoothedCrossentropy(Loss):
    """A cross-entropy with Keras 3's ``label_smoothing`` in [0, 1] (the targets become
    y·(1 - s) + s / classes; accuracy still compares with y)."""

    def __init__(self, from_logits=False, label_smoothing=0.0):
        super().__init__(from_logits)
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class BinaryCrossentropy(_SmoothedCrossentropy):
    name = "binary_crossentropy"
    probability_op = "binary_crossentropy"
    logits_op = "sigmoid_binary_crossentropy"
    activation = "sigmoid"
    accuracy_name = "binary_accuracy"

    def accuracy_count(self, labels):
        """One prediction per output unit: Keras' binary accuracy is the mean over every unit."""
        return int(labels.size)

    def prepare_labels(self, y, output_shape, argument="y"):
        y = _as_float_labels(y, argument)
        if y.ndim == 1 and tuple(output_shape) == (1,):
            y = y.reshape(-1, 1)  # Keras accepts (N,) labels for a single sigmoid unit
        _check_shape(y, output_shape, argument, self.name,
                     "give one 0/1 label per output unit, e.g. y.reshape(-1, 1) for Dense(1).")
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"Argument `{argument}` must hold labels in [0, 1] for binary_crossentropy, "
                             f"got values in [{y.min()}, {y.max()}]. Fix: use 0/1 labels, or "
                             f"sparse_categorical_crossentropy for class indices.")
        return y


class CategoricalCrossentropy(_SmoothedCrossentropy):
    name = "categorical_crossentropy"
    probability_op = "categorical_crossentropy"
    logits_op = "softmax_categorical_crossentropy"
    activation = "softmax"
    accuracy_name = "categorical_accuracy"

    def prepare_labels(self, y, output_shape, argument="y"):
        y = _as_float_labels(y, argument)
        _check_shape(y, output_shape, argument, self.name,
                     "one-hot encode the labels, or use loss='sparse_categorical_crossentropy' for class "
                     "indices.")
        if y.size and y.min() < 0:
            raise ValueError(f"Argument `{argument}` must hold non-negative (one-hot) labels, "
                             f"got a minimum of {y.min()}.")
        return y


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"
    probability_op = "sparse_categorical_crossentropy"
    logits_op = "sparse_softmax_categorical_crossentropy"
    activation = "softmax"
    accuracy_name = "sparse_categorical_accuracy"

    def prepare_labels(self, y, output_shape, argument="y"):
        y = _as_float_labels(y, argument)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(output_shape) != 1:
            raise ValueError(f"Argument `{argument}` must be a vector of class indices of shape (N,) for "
                             f"sparse_categorical_crossentropy with outputs (None, classes); got labels "
                             f"{y.shape} for outputs {(None,) + tuple(output_shape)}.")
        classes = output_shape[0]
        if y.size and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= classes):
            raise ValueError(f"Argument `{argument}` must hold integer class indices in [0, {classes}), "
                             f"got values in [{y.min()}, {y.max()}].")
        return y.astype(np.int32)


class MeanSquaredError(Loss):
    """mean((y_pred - y)²), Keras 3's MeanSquaredError; never fused with an activation.  Its accuracy is
    what Keras' 'accuracy' computes for the output shape: binary (threshold 0.5) for one unit, else
    categorical (argmax)."""

    name = "mean_squared_error"
    probability_op = logits_op = "mean_squared_error"

    def __init__(self):
        super().__init__(from_logits=False)

    def accuracy_count(self, labels):
        """One prediction per row of the last axis (per element for one output unit)."""
        return int(labels.size // labels.shape[-1])

    def prepare_labels(self, y, output_shape, argument="y"):
        y = _as_float_labels(y, argument)
        if y.ndim == 1 and tuple(output_shape) == (1,):
            y = y.reshape(-1, 1)  # Keras accepts (N,) targets for a single unit
        _check_shape(y, output_shape, argument, self.name, "give one target per output unit.")
        return y

    def get_config(self):
        return {}


_BY_NAME = {cls.name: cls for cls in (BinaryCrossentropy, CategoricalCrossentropy,
                                      SparseCategoricalCrossentropy, MeanSquaredError)}
#: Keras' short names.
_ALIASES = {"mse": MeanSquaredError}
NAMES = tuple(sorted(_BY_NAME))


def get(identifier):
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in {**_BY_NAME, **_ALIASES}:
        return {**_BY_NAME, **_ALIASES}[identifier.lower()]()
    # Keras also takes the class names, e.g. loss='BinaryCrossentropy'.
    by_class = {cls.__name__: cls for cls in _BY_NAME.values()}
    if isinstance(identifier, str) and identifier in by_class:
        return by_class[identifier]()
    raise ValueError(f"Unknown `loss` {identifier!r}: expected one of {sorted({**_BY_NAME, **_ALIASES})} "
                     f"or an instance of gpucnn.losses.BinaryCrossentropy / CategoricalCrossentropy / "
                     f"SparseCategoricalCrossentropy / MeanSquaredError.")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(entry):
    classes = {cls.__name__: cls for cls in _BY_NAME.values()}
    if entry.get("class_name") not in classes:
        raise ValueError(f"Unknown loss class {entry.get('class_name')!r} in a saved model.")
    return classes[entry["class_name"]](**entry.get("config", {}))


def metric_names(metrics, loss):
    """Validated metric names.  Accuracy is computed by the loss op itself, so the accuracy metrics are
    'accuracy' / 'acc' or the one matching the loss (e.g. 'binary_accuracy' with binary_crossentropy)."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"Argument `metrics` must be a list of metric names, e.g. ['accuracy'], "
                        f"got {metrics!r}.")
    allowed = ("accuracy", "acc") + ((loss.accuracy_name,) if loss.accuracy_name else ())
    for metric in metrics:
        if metric not in allowed:
            raise ValueError(f"Argument `metrics`: unknown or unsupported metric {metric!r} for loss "
                             f"'{loss.name}'. Fix: use one of {list(allowed)}.")
    return list(dict.fromkeys(metrics))


def check_fits_output(loss, metrics, output_shape):
    """Refuse a loss, then metrics, that cannot work on the model's outputs (batch-less
    ``output_shape``): known as soon as the model is built, so ``compile`` reports it.

    A categorical loss on one output unit is constant (a softmax over one class is 1), so the model
    cannot learn.  Keras picks the accuracy for 'accuracy'/'acc' from the output shape: binary for one
    output unit, else categorical (argmax); our accuracy comes from the loss op, so binary
    cross-entropy on several units (Keras: argmax accuracy; ours: per-unit) would silently differ
    (mean squared error's op computes the accuracy Keras picks)."""
    units = output_shape[-1]
    if isinstance(loss, (CategoricalCrossentropy, SparseCategoricalCrossentropy)) and units == 1:
        raise ValueError(f"Loss '{loss.name}' on a model with 1 output unit cannot learn: a softmax "
                         f"over one class is always 1, so the loss is constant. Fix: "
                         f"loss='binary_crossentropy' with Dense(1, activation='sigmoid'), or one output "
                         f"unit per class with Dense(classes, activation='softmax').")
    generic = [name for name in metrics if name in ("accuracy", "acc")]
    if generic and isinstance(loss, BinaryCrossentropy) and units > 1:
        raise ValueError(f"Argument `metrics={metrics!r}`: with loss 'binary_crossentropy' on "
                         f"{units} output units, Keras' {generic[0]!r} is categorical (argmax) "
                         f"accuracy, while gpucnn computes the per-unit binary accuracy. Fix: "
                         f"metrics=['binary_accuracy'] for per-unit accuracy, or "
                         f"loss='categorical_crossentropy' with a softmax output for one class per "
                         f"sample.")
