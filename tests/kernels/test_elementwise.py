"""Activation, softmax, bias and dropout kernels vs the NumPy reference (emulated in CI, and on a GPU)."""
import numpy as np
import pytest
from ops import assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference

# Emulated shapes: 105 elements wrap a 2 × 32-thread grid; (3,) is a single partial block; batch 1;
# 67 rows wrap the grid of the one-thread-per-row softmax kernels too.
EMULATED_SHAPES = [(1, 3, 5, 7), (3,), (67, 2)]
GPU_SHAPES = [(32, 64, 64, 64), (1000, 10)]

UNARY = [("relu_forward", ()), ("leaky_relu_forward", (0.2,)), ("leaky_relu_forward", (0.0,)),
         ("sigmoid_forward", ()), ("tanh_forward", ()), ("softmax_forward", ())]
GRADIENTS = [("relu_backward", "relu_forward", ()), ("leaky_relu_backward", "leaky_relu_forward", (0.3,)),
             ("leaky_relu_backward", "leaky_relu_forward", (0.0,)), ("sigmoid_backward", "sigmoid_forward", ()),
             ("tanh_backward", "tanh_forward", ()), ("softmax_backward", "softmax_forward", ())]


def _shapes(backend):
    return pick(backend, EMULATED_SHAPES, GPU_SHAPES)


@on_backends()
@pytest.mark.parametrize("op, args", UNARY)
def test_forward_matches_reference(backend, op, args):
    for shape in _shapes(backend):
        x = random(shape, seed=len(shape), low=-30, high=30)  # far into sigmoid's tails
        x.flat[0] = 0.0  # the boundary of relu and leaky_relu
        y = getattr(launchers, op)(on_device(backend, x), *args)
        assert_close(y, getattr(reference, op)(x, *args), exact=op in ("relu_forward",))


@on_backends()
@pytest.mark.parametrize("op, forward, args", GRADIENTS)
def test_backward_matches_reference(backend, op, forward, args):
    for shape in _shapes(backend):
        x = random(shape, seed=1)
        x.flat[0] = 0.0
        y = getattr(reference, forward)(x, *args)
        dy = random(shape, seed=2)
        dx = getattr(launchers, op)(*on_device(backend, dy, y), *args)
        # tanh: 1 - y·y may contract into an FMA on the device
        assert_close(dx, getattr(reference, op)(dy, y, *args),
                     exact=op not in ("softmax_backward", "tanh_backward"))


@on_backends()
def test_bias_add_and_bias_backward(backend):
    # 11 channels: two emulated channel tiles of 8, the second partial; the column sums take two passes.
    for shape in pick(backend, [(2, 3, 4, 11), (5, 1)], [(64, 32, 32, 96), (4096, 10)]):
        x, b = random(shape, seed=3), random(shape[-1:], seed=4)
        assert_close(launchers.bias_add(*on_device(backend, x, b)), reference.bias_add(x, b),
                     exact=True)
        db = launchers.bias_backward(on_device(backend, x))
        expected = x.reshape(-1, shape[-1]).astype(np.float64).sum(axis=0).astype(np.float32)
        assert_close(db, expected, rtol=1e-5, atol=1e-5)


@on_backends()
# Steps past 2**32 check that the kernel reduces the count mod 2**32 as the contract does.
@pytest.mark.parametrize("rate, seed, count", [(0.0, 7, 1), (0.1, 0, 0), (0.5, 2**32 - 1, 3),
                                               (0.3, 12345, 2**33 + 5)])
def test_dropout_is_bit_identical_to_reference(backend, rate, seed, count):
    shape = pick(backend, (2, 3, 3, 7), (64, 64, 64, 32))
    x = random(shape, seed=5)
    step = np.array([count], dtype=np.int64)
    y = launchers.dropout_forward(on_device(backend, x), rate, seed, on_device(backend, step))
    assert_close(y, reference.dropout_forward(x, rate, seed, step), exact=True)
    dy = random(shape, seed=6)
    dx = launchers.dropout_backward(on_device(backend, dy), rate, seed, on_device(backend, step))
    assert_close(dx, reference.dropout_backward(dy, rate, seed, step), exact=True)


def test_launchers_check_dtype_and_layout(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    x = random((2, 3), seed=0)
    with pytest.raises(TypeError, match="`x`.*float32"):
        launchers.relu_forward(x.astype(np.float64))
    with pytest.raises(ValueError, match="`x`.*C-contiguous"):
        launchers.sigmoid_forward(np.asfortranarray(random((3, 4))))
