"""Zero-padding kernel vs the NumPy reference: asymmetric padding, no padding on one axis, and the crop
of the backward pass (both are the kernel's shifted copy)."""
from ops import assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference
from gpucnn.contract.padding import normalize_zero_padding

EMULATED_CASES = [((2, 3, 4, 3), ((1, 2), (0, 3))), ((1, 2, 2, 5), ((2, 2), (2, 2))), ((1, 4, 3, 2), 0)]
GPU_CASES = [((32, 56, 56, 64), ((1, 1), (1, 1))), ((8, 31, 33, 3), ((3, 2), (0, 4)))]


@on_backends()
def test_zero_padding_matches_reference(backend):
    for case, (shape, padding) in enumerate(pick(backend, EMULATED_CASES, GPU_CASES)):
        x = random(shape, seed=case)
        y = launchers.zero_padding2d_forward(on_device(backend, x), padding)
        expected_y = reference.zero_padding2d_forward(x, normalize_zero_padding(padding))
        assert_close(y, expected_y, exact=True)
        dy = random(expected_y.shape, seed=case + 10)
        dx = launchers.zero_padding2d_backward(on_device(backend, dy), padding)
        assert_close(dx, reference.zero_padding2d_backward(dy, padding), exact=True)
