"""Reduction kernels vs the NumPy reference: batch-norm statistics and gradients, the seven losses."""
import numpy as np
import pytest
from ops import assert_close, on_backends, on_device, pick, random, to_host

from gpucnn import cuda as launchers
from gpucnn import reference


@on_backends()
def test_batchnorm_matches_reference(backend):
    # 11 channels: two emulated channel tiles of 8, the second partial; column sums in several parts.
    shape = pick(backend, (1, 3, 2, 11), (64, 32, 32, 96))
    x = random(shape, seed=0, low=-1, high=3)
    gamma, beta = random(shape[-1:], seed=1), random(shape[-1:], seed=2)
    epsilon = 1e-3
    outputs = launchers.batchnorm_forward_training(*on_device(backend, x, gamma, beta), epsilon)
    expected = reference.batchnorm_forward_training(x, gamma, beta, epsilon)
    for actual, wanted in zip(outputs, expected):
        assert_close(actual, wanted, rtol=1e-5, atol=1e-5)

    _, mean, var, inv_std = expected
    moving_mean, moving_var = mean + 0.25, var * 1.5
    y = launchers.batchnorm_forward_inference(*on_device(backend, x, gamma, beta, moving_mean, moving_var),
                                              epsilon)
    assert_close(y, reference.batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var,
                                                                  epsilon), rtol=1e-5, atol=1e-5)

    dy = random(shape, seed=3)
    grads = launchers.batchnorm_backward(*on_device(backend, dy, x, gamma, mean, inv_std))
    expected_grads = reference.batchnorm_backward(dy, x, gamma, mean, inv_std)
    for actual, wanted in zip(grads, expected_grads):
        assert_close(actual, wanted, rtol=1e-4, atol=1e-5)


def _binary_labels(shape, seed):
    return (np.random.default_rng(seed).random(shape) > 0.5).astype(np.float32)


def _probabilities(shape, seed):
    """Probabilities with exact 0 and 1 entries, so the clipped branch (zero gradient) is taken."""
    p = np.random.default_rng(seed).uniform(0.01, 0.99, shape).astype(np.float32)
    p.flat[0], p.flat[-1] = 0.0, 1.0
    return p


def _check_loss(backend, op, outputs, labels, **options):
    """The launcher against the reference, without and with per-sample weights (zeros and weights
    above 1 included)."""
    weights = np.random.default_rng(5).uniform(0, 3, len(outputs)).astype(np.float32)
    weights[0] = 0
    for weight_options in ({}, {"sample_weight": weights}):
        device_options = {name: on_device(backend, value) for name, value in weight_options.items()}
        loss, grad, correct = getattr(launchers, op)(*on_device(backend, outputs, labels), **options,
                                                     **device_options)
        expected_loss, expected_grad, expected_correct = getattr(reference, op)(outputs, labels, **options,
                                                                                **weight_options)
        assert loss.shape == () and correct.shape == ()
        assert_close(loss, expected_loss, rtol=1e-5)
        assert_close(grad, expected_grad, rtol=1e-5, atol=1e-7)
        assert_close(correct, expected_correct, exact=True)


@on_backends()
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("op", ["binary_crossentropy", "sigmoid_binary_crossentropy"])
def test_binary_losses_match_reference(backend, op, smoothing):
    # (N, 1) outputs with (N,) and (N, 1) labels, and a multi-label (N, K) case; 70 elements wrap the
    # emulated grid, so the last-block combine adds several block partials.
    for shape, label_shape in pick(backend, [((7, 1), (7,)), ((7, 1), (7, 1)), ((10, 7), (10, 7))],
                                   [((4096, 1), (4096,)), ((1024, 40), (1024, 40))]):
        outputs = _probabilities(shape, 0) if op == "binary_crossentropy" else random(shape, 0, -6, 6)
        _check_loss(backend, op, outputs, _binary_labels(label_shape, 1), label_smoothing=smoothing)


@on_backends()
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("op", ["categorical_crossentropy", "softmax_categorical_crossentropy"])
def test_categorical_losses_match_reference(backend, op, smoothing):
    for rows, classes in pick(backend, [(1, 3), (70, 4)], [(512, 10), (256, 1000)]):
        rng = np.random.default_rng(rows)
        if op == "categorical_crossentropy":
            # Rows not normalized (the loss divides by the row sum); the last row normalizes to a one-hot,
            # so both clips (below 1e-7 and above 1 - 1e-7) zero parts of its gradient.
            outputs = np.random.default_rng(2).uniform(0.01, 3, (rows, classes)).astype(np.float32)
            outputs[-1, :] = 0
            outputs[-1, -1] = 2
        else:
            outputs = random((rows, classes), 2, -5, 5)
        outputs[0, :] = 0.5  # a row of ties: the first index is the argmax
        labels = rng.uniform(0, 1, (rows, classes)).astype(np.float32)  # soft labels
        _check_loss(backend, op, outputs, labels, label_smoothing=smoothing)


@on_backends()
@pytest.mark.parametrize("op, dense_op", [("sparse_categorical_crossentropy", "categorical_crossentropy"),
                                          ("sparse_softmax_categorical_crossentropy",
                                           "softmax_categorical_crossentropy")])
def test_sparse_losses_match_reference(backend, op, dense_op):
    rows, classes = pick(backend, (9, 5), (1024, 100))
    outputs = random((rows, classes), 3, 0.01, 4) if op.startswith("sparse_cat") else random((rows, classes), 3)
    classes_of_rows = np.random.default_rng(4).integers(0, classes, rows).astype(np.int32)
    for labels in (classes_of_rows, classes_of_rows.reshape(rows, 1)):
        _check_loss(backend, op, outputs, labels)
    # Independent of the sparse reference: the same numbers as the dense loss on one-hot labels.
    one_hot = np.eye(classes, dtype=np.float32)[classes_of_rows]
    sparse = [to_host(a) for a in getattr(launchers, op)(*on_device(backend, outputs, classes_of_rows))]
    dense = getattr(reference, dense_op)(outputs, one_hot)
    for actual, wanted in zip(sparse, dense):
        np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-7)


def test_sparse_labels_and_sample_weights_must_be_int32_and_float32(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    with pytest.raises(TypeError, match="`labels`.*int32"):
        launchers.sparse_softmax_categorical_crossentropy(random((4, 3)), np.zeros(4, dtype=np.int64))
    with pytest.raises(TypeError, match="`sample_weight`.*float32"):
        launchers.softmax_categorical_crossentropy(random((4, 3)), random((4, 3)), sample_weight=np.ones(4))


@on_backends()
def test_mean_squared_error_matches_reference(backend):
    # One unit (binary accuracy, (N,) labels too) and several (argmax accuracy, a row of ties); 70 rows
    # wrap the emulated grid.
    for shape, label_shape in pick(backend, [((70, 1), (70,)), ((9, 4), (9, 4)), ((2, 3, 3, 2), (2, 3, 3, 2))],
                                   [((4096, 1), (4096,)), ((1024, 40), (1024, 40))]):
        outputs = random(shape, 0, -1, 2)
        outputs.reshape(-1, shape[-1])[0, :] = 0.5
        labels = _binary_labels(label_shape, 1) if shape[-1] == 1 else random(label_shape, 1, 0, 1)
        _check_loss(backend, "mean_squared_error", outputs, labels)
