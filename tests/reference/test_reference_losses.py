"""Loss references vs independent closed forms, finite differences of the loss, and direct counts."""
import warnings

import numpy as np
import pytest
from gradcheck import numerical_gradient
from scipy import special

from gpucnn.reference import (
    binary_crossentropy,
    categorical_crossentropy,
    mean_squared_error,
    sigmoid_binary_crossentropy,
    softmax_categorical_crossentropy,
    sparse_categorical_crossentropy,
    sparse_softmax_categorical_crossentropy,
)

RNG_SEED = 7


def _assert_scalar_float32(value):
    assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32


def _assert_loss_gradient(loss_fn, outputs, labels, grad, rtol=1e-5, atol=1e-8):
    expected = numerical_gradient(lambda v: float(loss_fn(v, labels)[0]), outputs)
    np.testing.assert_allclose(grad, expected, rtol=rtol, atol=atol)


def _binary_data(shape):
    rng = np.random.default_rng(RNG_SEED)
    return rng.uniform(0.05, 0.95, size=shape), (rng.random(shape) < 0.5).astype(np.float64)


@pytest.mark.parametrize("shape", [(6, 1), (4, 3), (5,)])
def test_binary_crossentropy_matches_closed_form_and_counts(shape):
    probs, labels = _binary_data(shape)
    loss, dprobs, correct = binary_crossentropy(probs, labels)
    _assert_scalar_float32(loss)
    _assert_scalar_float32(correct)
    expected = np.mean([-np.log(p) if y == 1 else -np.log1p(-p) for p, y in zip(probs.ravel(), labels.ravel())])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert correct == sum((p > 0.5) == (y == 1) for p, y in zip(probs.ravel(), labels.ravel()))
    # The loss is computed as float32 in the output, so finite differences use a float64 loss closure.
    _assert_loss_gradient(lambda v, y: (np.mean(-(y * np.log(v) + (1 - y) * np.log(1 - v))),), probs, labels, dprobs)


def test_binary_crossentropy_gradient_is_that_of_the_op_itself():
    probs, labels = _binary_data((3, 2))
    _, dprobs, _ = binary_crossentropy(probs, labels)
    # The op's own float32 loss: a coarser step, a looser tolerance.
    expected = numerical_gradient(lambda v: float(binary_crossentropy(v, labels)[0]), probs, eps=1e-3)
    np.testing.assert_allclose(dprobs, expected, rtol=1e-3, atol=1e-4)


def test_binary_crossentropy_clips_probabilities():
    probs = np.array([[0.0], [1.0], [0.0], [1.0], [0.3]], np.float32)
    labels = np.array([[1.0], [0.0], [0.0], [1.0], [1.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy overflow / log(0)
        loss, dprobs, correct = binary_crossentropy(probs, labels)
    # Keras clips to [1e-7, 1 - 1e-7] in float32, where 1 - 1e-7 rounds to 1 - 1.19e-7.
    low, high = np.float64(np.float32(1e-7)), np.float64(np.float32(1 - 1e-7))
    expected = (-np.log(low) - np.log(1 - high) - np.log(1 - low) - np.log(high) - np.log(0.3)) / 5
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_array_equal(dprobs[:4], 0)          # zero gradient where the clip was active
    np.testing.assert_allclose(dprobs[4], -1 / (0.3 * 5), rtol=1e-6)
    assert correct == 2


def test_sigmoid_binary_crossentropy_equals_probability_loss_on_sigmoid():
    rng = np.random.default_rng(RNG_SEED)
    logits = rng.uniform(-8, 8, size=(6, 2))
    labels = (rng.random((6, 2)) < 0.5).astype(np.float64)
    loss, dlogits, correct = sigmoid_binary_crossentropy(logits, labels)
    _assert_scalar_float32(loss)
    prob_loss, dprobs, prob_correct = binary_crossentropy(special.expit(logits), labels)
    np.testing.assert_allclose(loss, prob_loss, rtol=1e-6)
    np.testing.assert_allclose(dlogits, dprobs * special.expit(logits) * special.expit(-logits), rtol=1e-6, atol=1e-12)
    assert correct == prob_correct == np.count_nonzero((logits > 0) == (labels == 1))
    _assert_loss_gradient(
        lambda v, y: (np.mean(-(y * special.log_expit(v) + (1 - y) * special.log_expit(-v))),), logits, labels, dlogits)


def test_sigmoid_binary_crossentropy_is_stable_for_large_logits():
    logits = np.array([[-200.0], [200.0], [-200.0], [200.0]], np.float32)
    labels = np.array([[0.0], [1.0], [1.0], [0.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy overflow / log(0)
        loss, dlogits, correct = sigmoid_binary_crossentropy(logits, labels)
    np.testing.assert_allclose(loss, 100.0, rtol=1e-6)    # two right (≈0) and two wrong by 200
    np.testing.assert_allclose(dlogits.ravel(), [0, 0, -0.25, 0.25], atol=1e-7)
    assert correct == 2


def _categorical_data(n, k, seed=RNG_SEED):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    return rng.uniform(0.1, 2.0, size=(n, k)), labels, np.eye(k)[labels]


@pytest.mark.parametrize("n, k", [(5, 3), (1, 4), (4, 2)])
def test_categorical_crossentropy_normalizes_rows_and_matches_closed_form(n, k):
    raw, class_ids, one_hot = _categorical_data(n, k)     # rows do not sum to 1
    loss, dprobs, correct = categorical_crossentropy(raw, one_hot)
    _assert_scalar_float32(loss)
    expected = np.mean([-np.log(raw[i, class_ids[i]] / raw[i].sum()) for i in range(n)])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert correct == sum(np.argmax(raw[i]) == class_ids[i] for i in range(n))
    reference = lambda v, y: (-np.mean(np.sum(y * np.log(v / v.sum(axis=1, keepdims=True)), axis=1)),)  # noqa: E731
    _assert_loss_gradient(reference, raw, one_hot, dprobs)


def test_categorical_crossentropy_clip_and_tie_rule():
    probs = np.array([[0.0, 1.0, 0.0], [0.4, 0.4, 0.2]], np.float32)
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    loss, dprobs, correct = categorical_crossentropy(probs, labels)
    expected = (-np.log(np.float64(np.float32(1e-7))) - np.log(0.4)) / 2
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert np.all(np.isfinite(dprobs))
    assert correct == 0     # the tie [0.4, 0.4, 0.2] picks class 0, the label is class 1


@pytest.mark.parametrize("n, k", [(5, 3), (1, 4), (4, 2)])
def test_softmax_categorical_crossentropy_matches_log_softmax(n, k):
    rng = np.random.default_rng(RNG_SEED)
    logits = rng.normal(0, 3, size=(n, k))
    labels = rng.uniform(0, 1, size=(n, k))              # soft labels whose rows do not sum to 1
    loss, dlogits, correct = softmax_categorical_crossentropy(logits, labels)
    np.testing.assert_allclose(loss, -np.mean(np.sum(labels * special.log_softmax(logits, axis=1), axis=1)),
                               rtol=1e-6)
    assert correct == np.count_nonzero(logits.argmax(axis=1) == labels.argmax(axis=1))
    reference = lambda v, y: (-np.mean(np.sum(y * special.log_softmax(v, axis=1), axis=1)),)  # noqa: E731
    _assert_loss_gradient(reference, logits, labels, dlogits)


def test_softmax_categorical_crossentropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # NumPy overflow / log(0)
        loss, dlogits, _ = softmax_categorical_crossentropy(logits, np.array([[0.0, 0.0, 1.0]], np.float32))
    np.testing.assert_allclose(loss, 2000.0, rtol=1e-6)
    np.testing.assert_allclose(dlogits, [[1.0, 0.0, -1.0]], atol=1e-7)


@pytest.mark.parametrize("label_shape", ["flat", "column"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sparse_variants_equal_the_one_hot_losses(label_shape, dtype):
    raw, class_ids, one_hot = _categorical_data(6, 4)
    labels = class_ids.astype(dtype).reshape((6,) if label_shape == "flat" else (6, 1))
    logits = np.log(raw)
    for sparse, dense, outputs in [(sparse_categorical_crossentropy, categorical_crossentropy, raw),
                                   (sparse_softmax_categorical_crossentropy, softmax_categorical_crossentropy, logits)]:
        got, expected = sparse(outputs.astype(np.float32), labels), dense(outputs.astype(np.float32), one_hot)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
        assert got[2] == expected[2] == np.count_nonzero(raw.argmax(axis=1) == class_ids)
        assert got[1].dtype == np.float32


def test_labels_are_checked_against_the_class_count():
    # Only the reference reads the labels on the host; the shape checks are the contract's (test_contract.py).
    raw = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(ValueError, match="outside"):
        sparse_categorical_crossentropy(raw, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="integer"):
        sparse_softmax_categorical_crossentropy(raw, np.array([0.0, 1.0, 1.0]))


# ---- label smoothing (Keras 3: targets y·(1 - s) + s/2 for binary, y·(1 - s) + s/K for categorical) ------

def _binary_targets_loss(probs, targets):
    """float64 BCE of probabilities against (smoothed) targets, for finite differences."""
    return np.mean(-(targets * np.log(probs) + (1 - targets) * np.log1p(-probs)))


@pytest.mark.parametrize("smoothing", [0.1, 0.5, 1.0])
def test_binary_label_smoothing_is_the_loss_on_smoothed_targets(smoothing):
    probs, labels = _binary_data((5, 2))
    targets = labels * (1 - smoothing) + smoothing / 2
    for op, outputs, to_probs in ((binary_crossentropy, probs, lambda v: v),
                                  (sigmoid_binary_crossentropy, special.logit(probs), special.expit)):
        loss, grad, correct = op(outputs, labels, label_smoothing=smoothing)
        np.testing.assert_allclose(loss, _binary_targets_loss(probs, targets), rtol=1e-6)
        # the accuracy is that of the labels as given, not of the smoothed targets
        assert correct == np.count_nonzero((probs > 0.5) == (labels == 1))
        _assert_loss_gradient(lambda v, y, to_probs=to_probs: (_binary_targets_loss(to_probs(v), targets),),
                              outputs, labels, grad)


@pytest.mark.parametrize("smoothing", [0.1, 1.0])
def test_categorical_label_smoothing_is_the_loss_on_smoothed_targets(smoothing):
    raw, class_ids, one_hot = _categorical_data(4, 3)
    probs = raw / raw.sum(axis=1, keepdims=True)
    targets = one_hot * (1 - smoothing) + smoothing / 3
    expected = np.mean(-np.sum(targets * np.log(probs), axis=1))
    for op, outputs, to_probs in ((categorical_crossentropy, probs, lambda v: v / v.sum(axis=1, keepdims=True)),
                                  (softmax_categorical_crossentropy, np.log(probs),
                                   lambda v: special.softmax(v, axis=1))):
        loss, grad, correct = op(outputs, one_hot, label_smoothing=smoothing)
        np.testing.assert_allclose(loss, expected, rtol=1e-6)
        assert correct == sum(np.argmax(probs[i]) == class_ids[i] for i in range(4))
        reference = lambda v, y, to_probs=to_probs: (-np.mean(np.sum(targets * np.log(to_probs(v)), axis=1)),)  # noqa: E731
        _assert_loss_gradient(reference, outputs, one_hot, grad)


@pytest.mark.parametrize("smoothing", [-0.1, 1.5, float("nan"), "0.1", True])
def test_label_smoothing_outside_0_1_is_refused(smoothing):
    probs, labels = _binary_data((2, 1))
    with pytest.raises(ValueError, match=r"`label_smoothing` must be a float in \[0, 1\]"):
        binary_crossentropy(probs, labels, label_smoothing=smoothing)


# ---- mean squared error --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 1), (4, 3), (2, 2, 2, 3)])
def test_mean_squared_error_matches_closed_form_and_keras_accuracy(shape):
    rng = np.random.default_rng(RNG_SEED)
    outputs, labels = rng.uniform(-1, 2, shape), rng.uniform(0, 1, shape)
    labels[..., 0] = np.round(labels[..., 0])
    loss, grad, correct = mean_squared_error(outputs, labels)
    _assert_scalar_float32(loss)
    _assert_scalar_float32(correct)
    rows_out, rows_lab = outputs.reshape(-1, shape[-1]), labels.reshape(-1, shape[-1])
    # Keras: the mean over the last axis, then the mean over the rows.
    np.testing.assert_allclose(loss, np.mean([np.mean((o - y) ** 2) for o, y in zip(rows_out, rows_lab)]),
                               rtol=1e-6)
    if shape[-1] == 1:   # Keras' 'accuracy' is binary accuracy for one unit
        expected_correct = sum(float(o[0] > 0.5) == y[0] for o, y in zip(rows_out, rows_lab))
    else:                # and categorical accuracy otherwise
        expected_correct = sum(int(np.argmax(o)) == int(np.argmax(y)) for o, y in zip(rows_out, rows_lab))
    assert correct == expected_correct
    _assert_loss_gradient(lambda v, y: (np.mean((v - y) ** 2),), outputs, labels, grad)


def test_mean_squared_error_takes_vector_labels_for_one_unit():
    outputs = np.array([[0.2], [0.9]], np.float32)
    loss, _, correct = mean_squared_error(outputs, np.array([0.0, 1.0], np.float32))
    np.testing.assert_allclose(loss, (0.04 + 0.01) / 2, rtol=1e-6)
    assert correct == 2


def _bce(p, y):
    return np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)), axis=-1)


def _one_hot(labels, k=3):
    return labels if labels.ndim == 2 else np.eye(k)[labels]


# (op, outputs, labels, each sample's loss in float64 closed form), 4 samples each.
WEIGHTED_CASES = [
    (binary_crossentropy, np.random.default_rng(1).uniform(0.05, 0.95, (4, 3)),
     (np.arange(12) % 2).reshape(4, 3), _bce),
    (sigmoid_binary_crossentropy, np.random.default_rng(2).normal(size=(4, 1)), np.array([[1.0], [0], [0], [1]]),
     lambda z, y: _bce(special.expit(z), y)),
    (categorical_crossentropy, np.random.default_rng(3).uniform(0.1, 2, (4, 3)), np.eye(3)[[0, 2, 1, 2]],
     lambda p, y: -np.sum(y * np.log(p / p.sum(axis=1, keepdims=True)), axis=1)),
    (softmax_categorical_crossentropy, np.random.default_rng(4).normal(size=(4, 3)), np.eye(3)[[1, 0, 2, 2]],
     lambda z, y: -np.sum(y * special.log_softmax(z, axis=1), axis=1)),
    (sparse_categorical_crossentropy, np.random.default_rng(5).uniform(0.1, 2, (4, 3)), np.array([0, 2, 1, 1]),
     lambda p, y: -np.sum(_one_hot(y) * np.log(p / p.sum(axis=1, keepdims=True)), axis=1)),
    (sparse_softmax_categorical_crossentropy, np.random.default_rng(6).normal(size=(4, 3)), np.array([2, 0, 1, 0]),
     lambda z, y: -np.sum(_one_hot(y) * special.log_softmax(z, axis=1), axis=1)),
    (mean_squared_error, np.random.default_rng(7).normal(size=(4, 3)), np.random.default_rng(8).random((4, 3)),
     lambda p, y: np.mean((p - y) ** 2, axis=1)),
]


@pytest.mark.parametrize("op, outputs, labels, per_sample", WEIGHTED_CASES,
                         ids=[case[0].__name__ for case in WEIGHTED_CASES])
def test_sample_weights_scale_each_samples_loss_keras_sum_over_batch_size(op, outputs, labels, per_sample):
    """Keras 3: Σ w_i · l_i / N (not / Σ w), l_i the sample's loss (binary, mse: the mean over its units);
    the gradient is that of the weighted loss; the correct count is not weighted."""
    weights = np.array([0.5, 0.0, 3.0, 1.25], np.float32)
    loss, grad, correct = op(outputs, labels, sample_weight=weights)

    def weighted(v):
        return np.dot(weights, per_sample(v, labels)) / 4

    np.testing.assert_allclose(loss, weighted(outputs), rtol=1e-6)
    np.testing.assert_allclose(grad, numerical_gradient(weighted, outputs), rtol=1e-5, atol=1e-8)
    assert correct == op(outputs, labels)[2]
    unit = op(outputs, labels, sample_weight=np.ones(4, np.float32))
    np.testing.assert_array_equal(unit[0], op(outputs, labels)[0])
    np.testing.assert_array_equal(unit[1], op(outputs, labels)[1])
    with pytest.raises(ValueError, match=r"`sample_weight` must be float32 of shape \(4,\)"):
        op(outputs, labels, sample_weight=np.ones(3, np.float32))
