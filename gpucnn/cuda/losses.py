"""Launchers of the loss kernels (``kernels/reduce.py``): gradient, mean loss and correct count in one
launch, the last two as 0-d float32 device arrays (no host sync).  Label smoothing reaches the kernels
as the (keep, offset) of ``gpucnn.contract.losses.smoothing_terms``.

Same names and signatures as ``gpucnn.reference.losses`` (Keras 3 semantics, optional per-sample
``sample_weight``).  Labels and weights must already be on the device: float32 for the dense losses and
the weights, int32 class indices for the sparse ones.
"""
import numpy as np

from gpucnn.contract.losses import (
    check_binary,
    check_categorical,
    check_mean_squared_error,
    check_sample_weight,
    smoothing_terms,
)
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import flat, launch_loss
from gpucnn.kernels import reduce


def _check_arrays(outputs_name, outputs, labels, labels_dtype=np.float32):
    """What only a launch needs (arrays of the backend, their dtypes); the shapes are the contract's."""
    runtime.check_array(outputs_name, outputs)
    runtime.check_array("labels", labels, dtype=labels_dtype)


def _sample_weight(sample_weight, outputs):
    """(weights, weighted flag, elements per sample) for a loss kernel: the checked ``sample_weight``
    (float32, one per sample along the first axis), or a placeholder the kernel never reads."""
    rows = outputs.shape[0] if outputs.ndim else 1
    units = outputs.size // rows if rows else 1
    if sample_weight is None:
        return flat(outputs), np.bool_(False), np.int64(units)
    runtime.check_array("sample_weight", sample_weight)
    check_sample_weight(outputs, sample_weight)
    return sample_weight, np.bool_(True), np.int64(units)


def _binary(outputs_name, outputs, labels, from_logits, label_smoothing, sample_weight):
    _check_arrays(outputs_name, outputs, labels)
    check_binary(outputs_name, outputs, labels)
    keep, offset = smoothing_terms(label_smoothing, 2)
    weights, weighted, units = _sample_weight(sample_weight, outputs)
    grad = runtime.xp().empty_like(outputs)
    loss, correct = launch_loss(reduce.binary_crossentropy, outputs.size, flat(outputs), flat(labels), weights,
                                weighted, units, np.bool_(from_logits), keep, offset, np.float32(outputs.size),
                                flat(grad))
    return loss, grad, correct


def _categorical(outputs_name, outputs, labels, sparse, from_logits, sample_weight, label_smoothing=0.0):
    _check_arrays(outputs_name, outputs, labels, np.int32 if sparse else np.float32)
    check_categorical(outputs_name, outputs, labels, sparse)
    rows, classes = outputs.shape
    xp = runtime.xp()
    if sparse:
        # The kernel reads one labels array; the other argument is a placeholder it never touches.
        dense_labels, class_labels = flat(outputs), flat(labels)
    else:
        dense_labels, class_labels = flat(labels), xp.zeros(1, dtype=np.int32)
    keep, offset = smoothing_terms(label_smoothing, classes)
    weights, weighted, _ = _sample_weight(sample_weight, outputs)
    grad = xp.empty_like(outputs)
    loss, correct = launch_loss(reduce.categorical_crossentropy, rows, flat(outputs), dense_labels,
                                class_labels, weights, weighted, np.bool_(sparse), np.bool_(from_logits), keep,
                                offset, np.int64(classes), np.float32(rows), flat(grad))
    return loss, grad, correct


def binary_crossentropy(probs, labels, label_smoothing=0.0, sample_weight=None):
    """(loss, dprobs, correct) of BCE on probabilities clipped to [1e-7, 1 - 1e-7]."""
    return _binary("probs", probs, labels, False, label_smoothing, sample_weight)


def sigmoid_binary_crossentropy(logits, labels, label_smoothing=0.0, sample_weight=None):
    """(loss, dlogits, correct) of BCE on sigmoid(logits), in the stable form."""
    return _binary("logits", logits, labels, True, label_smoothing, sample_weight)


def categorical_crossentropy(probs, labels, label_smoothing=0.0, sample_weight=None):
    """(loss, dprobs, correct) of CE on row-normalized, clipped probabilities; labels (N, K) float32."""
    return _categorical("probs", probs, labels, False, False, sample_weight, label_smoothing)


def softmax_categorical_crossentropy(logits, labels, label_smoothing=0.0, sample_weight=None):
    """(loss, dlogits, correct) of CE on softmax(logits); labels (N, K) float32."""
    return _categorical("logits", logits, labels, False, True, sample_weight, label_smoothing)


def sparse_categorical_crossentropy(probs, labels, sample_weight=None):
    """:func:`categorical_crossentropy` with int32 class labels of shape (N,) or (N, 1)."""
    return _categorical("probs", probs, labels, True, False, sample_weight)


def sparse_softmax_categorical_crossentropy(logits, labels, sample_weight=None):
    """:func:`softmax_categorical_crossentropy` with int32 class labels of shape (N,) or (N, 1)."""
    return _categorical("logits", logits, labels, True, True, sample_weight)


def mean_squared_error(outputs, labels, sample_weight=None):
    """(loss, doutputs, correct) of mean((p - y)²); correct as Keras' 'accuracy' for these outputs."""
    _check_arrays("outputs", outputs, labels)
    check_mean_squared_error(outputs, labels)
    width = outputs.shape[-1]
    weights, weighted, units = _sample_weight(sample_weight, outputs)
    grad = runtime.xp().empty_like(outputs)
    loss, correct = launch_loss(reduce.mean_squared_error, outputs.size // width if width else 0,
                                flat(outputs), flat(labels), weights, weighted, units, np.int64(width),
                                np.float32(outputs.size), flat(grad))
    return loss, grad, correct
