"""Merge kernels vs the NumPy reference: Add over 2 and 3 inputs (bit-identical: both sum left to
right), the in-place accumulation of gradients, Concatenate and its split along the last axis."""
import numpy as np
import pytest
from numba_helpers import assert_close, device, on_device, pick, random, with_devices  # noqa: F401 (fixture)

from gpucnn import cuda as launchers
from gpucnn import reference


@with_devices
@pytest.mark.parametrize("count", [2, 3])
def test_add_matches_reference_bit_for_bit(device, count):
    shape = pick(device, (2, 3, 3, 5), (64, 32, 32, 64))
    inputs = [random(shape, seed=k) for k in range(count)]
    y = launchers.add_forward(list(on_device(device, *inputs)))
    assert_close(device, y, reference.add_forward(inputs), exact=True)


@with_devices
def test_add_inplace_accumulates_in_call_order(device):
    shape = pick(device, (3, 7, 5), (1024, 1027))
    first, second, third = (random(shape, seed=k) for k in range(3))
    target = on_device(device, first)
    launchers.add_inplace(target, on_device(device, second))
    launchers.add_inplace(target, on_device(device, third))
    expected = first.copy()
    reference.add_inplace(expected, second)
    reference.add_inplace(expected, third)
    assert_close(device, target, expected, exact=True)


@with_devices
@pytest.mark.parametrize("sizes", [(3, 1), (2, 5, 1)])
def test_concatenate_matches_reference(device, sizes):
    rows = pick(device, (2, 3, 2), (64, 16, 16))
    inputs = [random(rows + (s * pick(device, 1, 32),), seed=k) for k, s in enumerate(sizes)]
    y = launchers.concatenate_forward(list(on_device(device, *inputs)))
    assert_close(device, y, reference.concatenate_forward(inputs), exact=True)
    dy = random(y.shape, seed=9)
    widths = [x.shape[-1] for x in inputs]
    grads = launchers.concatenate_backward(on_device(device, dy), widths)
    for got, want in zip(grads, reference.concatenate_backward(dy, widths)):
        assert_close(device, got, want, exact=True)


def test_merge_arguments_are_checked(emulated):
    a, b = random((2, 3)), random((2, 4))
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\), \(2, 4\)"):
        launchers.add_forward([a, b])
    with pytest.raises(TypeError, match="`inputs`.*at least 2"):
        launchers.concatenate_forward(a)
    with pytest.raises(TypeError, match=r"`inputs\[1\]`.*float32"):
        launchers.concatenate_forward([a, b.astype(np.float64)])
    with pytest.raises(ValueError, match="`target` and `x`"):
        launchers.add_inplace(a, b)
    with pytest.raises(ValueError, match="`sizes`"):
        launchers.concatenate_backward(random((2, 7)), [3, 3])
