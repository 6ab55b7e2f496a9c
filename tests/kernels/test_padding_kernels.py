"""Zero-padding kernel vs the NumPy reference: asymmetric padding, no padding on one axis, and the crop
of the backward pass (both are the kernel's shifted copy)."""
import pytest
from numba_helpers import assert_close, device, on_device, pick, random, with_devices  # noqa: F401 (fixture)

from gpucnn import cuda as launchers
from gpucnn import reference

EMULATED_CASES = [((2, 3, 4, 3), ((1, 2), (0, 3))), ((1, 2, 2, 5), ((2, 2), (2, 2))), ((1, 4, 3, 2), 0)]
GPU_CASES = [((32, 56, 56, 64), ((1, 1), (1, 1))), ((8, 31, 33, 3), ((3, 2), (0, 4)))]


@with_devices
def test_zero_padding_matches_reference(device):
    for case, (shape, padding) in enumerate(pick(device, EMULATED_CASES, GPU_CASES)):
        x = random(shape, seed=case)
        y = launchers.zero_padding2d_forward(on_device(device, x), padding)
        expected_y = reference.zero_padding2d_forward(x, reference.padding.normalize_zero_padding(padding))
        assert_close(device, y, expected_y, exact=True)
        dy = random(expected_y.shape, seed=case + 10)
        dx = launchers.zero_padding2d_backward(on_device(device, dy), padding)
        assert_close(device, dx, reference.zero_padding2d_backward(dy, padding), exact=True)


def test_zero_padding_arguments_are_checked(emulated):
    with pytest.raises(ValueError, match="`x`.*rank 4"):
        launchers.zero_padding2d_forward(random((3, 3, 1)), 1)
    with pytest.raises(TypeError, match="`padding`"):
        launchers.zero_padding2d_forward(random((1, 3, 3, 1)), "same")
    with pytest.raises(ValueError, match="`dy`.*larger than the padding"):
        launchers.zero_padding2d_backward(random((1, 2, 5, 1)), 1)
