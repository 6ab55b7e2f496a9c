"""Average-pool kernels vs the NumPy reference: overlapping windows, 'same' padding with Keras' count of
valid cells, strides past the window, and global average pooling as one window per image."""
import pytest
import test_pool as max_pool_cases
from numba_helpers import assert_close, device, on_device, pick, random, with_devices  # noqa: F401 (fixture)

from gpucnn import cuda as launchers
from gpucnn import reference

# Max-pooling's cases (overlapping, 'same' with odd padding, strides past the window, grid wrap-around)
# and windows larger than the whole image ('same': every window averages fewer cells than it holds).
EMULATED_CASES = max_pool_cases.EMULATED_CASES + [((1, 2, 3, 2), (4, 4), (1, 1), "same")]
GPU_CASES = max_pool_cases.GPU_CASES


@with_devices
def test_average_pool_matches_reference(device):
    for case, (shape, pool_size, strides, padding) in enumerate(pick(device, EMULATED_CASES, GPU_CASES)):
        x = random(shape, seed=case)
        y = launchers.average_pool_forward(on_device(device, x), pool_size, strides, padding)
        expected_y = reference.average_pool_forward(x, pool_size, strides, padding)
        assert_close(device, y, expected_y, rtol=1e-5, atol=1e-6)

        dy = random(expected_y.shape, seed=case + 10)
        dx = launchers.average_pool_backward(on_device(device, dy), shape, pool_size, strides, padding)
        expected_dx = reference.average_pool_backward(dy, shape, pool_size, strides, padding)
        assert_close(device, dx, expected_dx, rtol=1e-5, atol=1e-6)


@with_devices
def test_global_average_pool_matches_reference(device):
    shape = pick(device, (3, 3, 5, 7), (64, 14, 14, 512))
    x = random(shape, seed=1)
    y = launchers.global_average_pool_forward(on_device(device, x))
    assert_close(device, y, reference.global_average_pool_forward(x), rtol=1e-5, atol=1e-6)
    dy = random((shape[0], shape[3]), seed=2)
    dx = launchers.global_average_pool_backward(on_device(device, dy), shape)
    assert_close(device, dx, reference.global_average_pool_backward(dy, shape), rtol=1e-6)


def test_average_pool_arguments_are_checked(emulated):
    x = random((1, 4, 4, 2))
    with pytest.raises(ValueError, match="rank 4"):
        launchers.average_pool_forward(random((4, 4, 2)), (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="padding"):
        launchers.average_pool_forward(x, (2, 2), (2, 2), "full")
    with pytest.raises(ValueError, match="`dy`.*pooled shape"):
        launchers.average_pool_backward(random((1, 3, 3, 2)), x.shape, (2, 2), (2, 2), "valid")
    with pytest.raises(TypeError, match="`x`.*float32"):
        launchers.global_average_pool_forward(x.astype("float64"))
    with pytest.raises(ValueError, match=r"`dy`.*\(1, 2\)"):
        launchers.global_average_pool_backward(random((1, 3)), x.shape)
