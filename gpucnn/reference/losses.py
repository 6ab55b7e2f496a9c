"""Cross-entropy and mean squared error losses (NumPy reference, Keras 3 semantics).

Each returns ``(loss, grad, correct)``: the mean loss and the number of correct predictions as 0-d
float32 arrays, and the gradient of the *mean* loss (the 1/N is already in it) with respect to the
network output (probabilities or logits), in the dtype of that output.

``label_smoothing`` (binary and categorical, as Keras 3): the loss and its gradient use the targets
``y·(1 - s) + s / classes`` (``classes`` = 2 for binary: 1 - s/2 and s/2); the correct count compares
with the labels as given, as Keras' accuracy metrics do.

``sample_weight`` (optional, float32 of shape (N,)) weighs each sample's loss as Keras 3 does
("sum_over_batch_size"): loss = Σ w_i · l_i / N, where l_i is sample i's loss (for binary
cross-entropy and mean squared error the mean over its output units), and the gradient is that of
the weighted loss.  The correct count is not weighted (Keras' ``metrics`` ignore sample weights).
"""
import numpy as np

from gpucnn.contract.losses import (
    check_binary,
    check_categorical,
    check_mean_squared_error,
    check_sample_weight,
    smoothing_terms,
)

from .activations import sigmoid_forward

#: Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON] before the log.
EPSILON = 1e-7


def _float32(value):
    return np.asarray(value, dtype=np.float32)


def _dense_labels(labels, outputs, outputs_name):
    """Float labels shaped like ``outputs``; (N,) labels are accepted for (N, 1) outputs."""
    labels = np.asarray(labels)
    check_binary(outputs_name, outputs, labels)
    return labels.astype(outputs.dtype, copy=False).reshape(outputs.shape)


def _row_labels(labels, outputs, outputs_name):
    """Float label rows shaped like the (N, classes) ``outputs``."""
    labels = np.asarray(labels)
    check_categorical(outputs_name, outputs, labels, sparse=False)
    return labels.astype(outputs.dtype, copy=False)


def _class_labels(labels, outputs, outputs_name):
    """Int class labels of shape (N,) (or (N, 1)) as one-hot rows shaped like ``outputs`` (N, K)."""
    labels = np.asarray(labels)
    check_categorical(outputs_name, outputs, labels, sparse=True)
    n, classes = outputs.shape
    labels = labels.reshape(n)
    if n and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"Argument `labels` holds class indices outside [0, {classes}): "
                         f"min {labels.min()}, max {labels.max()}.")
    one_hot = np.zeros(outputs.shape, dtype=outputs.dtype)
    one_hot[np.arange(n), labels] = 1
    return one_hot


def _smooth(labels, label_smoothing, classes):
    keep, offset = smoothing_terms(label_smoothing, classes)
    return labels * labels.dtype.type(keep) + labels.dtype.type(offset)


def _row_weights(sample_weight, outputs):
    """``sample_weight`` shaped to broadcast over each sample of ``outputs`` (1 when there is none)."""
    if sample_weight is None:
        return 1
    sample_weight = np.asarray(sample_weight)
    check_sample_weight(outputs, sample_weight)
    return sample_weight.astype(outputs.dtype).reshape((-1,) + (1,) * (outputs.ndim - 1))


def _clip(probs):
    """Probabilities clipped to [EPSILON, 1 - EPSILON] and the mask where the clip let them through."""
    low, high = probs.dtype.type(EPSILON), probs.dtype.type(1 - EPSILON)
    return np.clip(probs, low, high), (probs >= low) & (probs <= high)


def binary_crossentropy(probs, labels, label_smoothing=0.0, sample_weight=None):
    """mean(-(t log p + (1-t) log(1-p))) with p clipped and t the (smoothed) targets; correct counts
    elements with (p > 0.5) == y."""
    labels = _dense_labels(labels, probs, "probs")
    targets = _smooth(labels, label_smoothing, 2)
    w = _row_weights(sample_weight, probs)
    p, passed = _clip(probs)
    loss = -np.mean(w * (targets * np.log(p) + (1 - targets) * np.log(1 - p)))
    dprobs = w * ((1 - targets) / (1 - p) - targets / p) * passed / probs.size
    correct = np.count_nonzero((probs > 0.5) == labels)
    return _float32(loss), dprobs.astype(probs.dtype, copy=False), _float32(correct)


def sigmoid_binary_crossentropy(logits, labels, label_smoothing=0.0, sample_weight=None):
    """BCE on sigmoid(z) in the stable form mean(max(z, 0) - z·t + log(1 + exp(-|z|))), t the
    (smoothed) targets."""
    labels = _dense_labels(labels, logits, "logits")
    targets = _smooth(labels, label_smoothing, 2)
    w = _row_weights(sample_weight, logits)
    loss = np.mean(w * (np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))))
    dlogits = w * (sigmoid_forward(logits) - targets) / logits.dtype.type(logits.size)
    correct = np.count_nonzero((logits > 0) == labels)
    return _float32(loss), dlogits, _float32(correct)


def _count_same_argmax(scores, labels):
    """Rows where argmax(scores) == argmax(labels); np.argmax takes the first index on ties."""
    return _float32(np.count_nonzero(scores.argmax(axis=-1) == labels.argmax(axis=-1)))


def categorical_crossentropy(probs, labels, label_smoothing=0.0, sample_weight=None):
    """mean over rows of -Σ t log p, with p divided by its row sum and clipped (gradient of exactly that),
    t the (smoothed) targets."""
    labels = _row_labels(labels, probs, "probs")
    n, classes = probs.shape
    targets = _smooth(labels, label_smoothing, classes)
    w = _row_weights(sample_weight, probs)
    row_sum = probs.sum(axis=-1, keepdims=True)
    p, passed = _clip(probs / row_sum)
    loss = -np.sum(w * targets * np.log(p)) / n
    # d loss / d p_normalized, then through the row normalization p_k / s: (g_k - Σ_j g_j p_j) / s.
    g = -w * targets / p * passed / n
    dprobs = (g - np.sum(g * (probs / row_sum), axis=-1, keepdims=True)) / row_sum
    return _float32(loss), dprobs.astype(probs.dtype, copy=False), _count_same_argmax(probs, labels)


def softmax_categorical_crossentropy(logits, labels, label_smoothing=0.0, sample_weight=None):
    """mean over rows of -Σ t log softmax(z); dz = (softmax(z)·Σt - t) / N, t the (smoothed) targets
    (times each row's weight)."""
    labels = _row_labels(labels, logits, "logits")
    n, classes = logits.shape
    targets = _smooth(labels, label_smoothing, classes)
    w = _row_weights(sample_weight, logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    # exp(shifted) / its row sum is softmax_forward(logits), computed once for the loss and the gradient.
    softmax = np.exp(shifted)
    row_sum = softmax.sum(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(row_sum)
    softmax /= row_sum
    loss = -np.sum(w * targets * log_softmax) / n
    dlogits = w * (softmax * targets.sum(axis=-1, keepdims=True) - targets) / logits.dtype.type(n)
    return _float32(loss), dlogits, _count_same_argmax(logits, labels)


def sparse_categorical_crossentropy(probs, labels, sample_weight=None):
    """:func:`categorical_crossentropy` with int class labels of shape (N,) or (N, 1)."""
    return categorical_crossentropy(probs, _class_labels(labels, probs, "probs"), sample_weight=sample_weight)


def sparse_softmax_categorical_crossentropy(logits, labels, sample_weight=None):
    """:func:`softmax_categorical_crossentropy` with int class labels of shape (N,) or (N, 1)."""
    return softmax_categorical_crossentropy(logits, _class_labels(labels, logits, "logits"),
                                            sample_weight=sample_weight)


def mean_squared_error(outputs, labels, sample_weight=None):
    """mean((p - y)²) over every element (Keras: the mean over the last axis, then over the batch);
    dp = 2(p - y) / count.  ``correct`` is what Keras' 'accuracy' means for these outputs: elements
    with (p > 0.5) == y for one output unit, else rows where argmax p == argmax y."""
    labels = np.asarray(labels)
    check_mean_squared_error(outputs, labels)
    labels = labels.astype(outputs.dtype, copy=False).reshape(outputs.shape)
    w = _row_weights(sample_weight, outputs)
    difference = outputs - labels
    loss = np.mean(w * np.square(difference, dtype=np.float64))
    grad = w * difference * outputs.dtype.type(2 / max(outputs.size, 1))
    if outputs.shape[-1] == 1:
        correct = _float32(np.count_nonzero((outputs > 0.5) == labels))
    else:
        correct = _count_same_argmax(outputs, labels)
    return _float32(loss), grad, correct
