"""Average-pool kernels vs the NumPy reference: overlapping windows, 'same' padding with Keras' count of
valid cells, strides past the window, and global average pooling as one window per image."""
import pytest
import test_pool as max_pool_cases
from ops import WINDOW_CASES, assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference

# Emulated: the shared sliding-window cases (windows larger than the whole image included: every
# 'same' window there averages fewer cells than it holds); on a GPU, max-pooling's layers.
GPU_CASES = max_pool_cases.GPU_CASES


@on_backends()
def test_average_pool_matches_reference(backend):
    for case, (shape, pool_size, strides, padding, _) in enumerate(pick(backend, WINDOW_CASES, GPU_CASES)):
        x = random(shape, seed=case)
        y = launchers.average_pool_forward(on_device(backend, x), pool_size, strides, padding)
        expected_y = reference.average_pool_forward(x, pool_size, strides, padding)
        assert_close(y, expected_y, rtol=1e-5, atol=1e-6)

        dy = random(expected_y.shape, seed=case + 10)
        dx = launchers.average_pool_backward(on_device(backend, dy), shape, pool_size, strides, padding)
        expected_dx = reference.average_pool_backward(dy, shape, pool_size, strides, padding)
        assert_close(dx, expected_dx, rtol=1e-5, atol=1e-6)


@on_backends()
def test_global_average_pool_matches_reference(backend):
    shape = pick(backend, (3, 3, 5, 7), (64, 14, 14, 512))
    x = random(shape, seed=1)
    y = launchers.global_average_pool_forward(on_device(backend, x))
    assert_close(y, reference.global_average_pool_forward(x), rtol=1e-5, atol=1e-6)
    dy = random((shape[0], shape[3]), seed=2)
    dx = launchers.global_average_pool_backward(on_device(backend, dy), shape)
    assert_close(dx, reference.global_average_pool_backward(dy, shape), rtol=1e-6)


def test_average_pool_launchers_check_the_dtype(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    with pytest.raises(TypeError, match="`x`.*float32"):
        launchers.global_average_pool_forward(random((1, 4, 4, 2)).astype("float64"))
