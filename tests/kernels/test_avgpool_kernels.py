"""Average-pool kernels vs the NumPy reference: overlapping windows, 'same' padding with Keras' count of
valid cells, strides past the window, and global average pooling as one window per image."""
import pytest
from numba_helpers import assert_close, device, on_device, pick, random, with_devices  # noqa: F401 (fixture)

from gpucnn import cuda as launchers
from gpucnn import reference

# (x shape, pool_size, strides, padding): tiling, overlapping 'same' with stride 2, non-square overlapping
# windows, 'same' with odd total padding, strides past the window (inputs in no window get 0), windows
# larger than the image; 100 outputs wrap the emulated 2 × 32-thread grid.
EMULATED_CASES = [
    ((1, 4, 4, 3), (2, 2), (2, 2), "valid"),
    ((2, 5, 5, 3), (3, 3), (2, 2), "same"),
    ((1, 5, 4, 2), (3, 2), (1, 2), "valid"),
    ((1, 3, 4, 1), (2, 2), (1, 1), "same"),
    ((1, 8, 7, 2), (2, 2), (3, 3), "valid"),
    ((1, 2, 3, 2), (4, 4), (1, 1), "same"),
    ((2, 5, 5, 2), (2, 2), (1, 1), "same"),
]
GPU_CASES = [
    ((32, 64, 64, 64), (2, 2), (2, 2), "valid"),
    ((16, 57, 57, 48), (3, 3), (2, 2), "same"),
]


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
