"""Merge kernels vs the NumPy reference: Add over 2 and 3 inputs (bit-identical: both sum left to
right), the in-place accumulation of gradients, Concatenate and its split along the last axis."""
import numpy as np
import pytest
from ops import assert_close, on_backends, on_device, pick, random

from gpucnn import cuda as launchers
from gpucnn import reference


@on_backends()
@pytest.mark.parametrize("count", [2, 3])
def test_add_matches_reference_bit_for_bit(backend, count):
    shape = pick(backend, (2, 3, 3, 5), (64, 32, 32, 64))
    inputs = [random(shape, seed=k) for k in range(count)]
    y = launchers.add_forward(list(on_device(backend, *inputs)))
    assert_close(y, reference.add_forward(inputs), exact=True)


@on_backends()
def test_add_inplace_accumulates_in_call_order(backend):
    shape = pick(backend, (3, 7, 5), (1024, 1027))
    first, second, third = (random(shape, seed=k) for k in range(3))
    target = on_device(backend, first)
    launchers.add_inplace(target, on_device(backend, second))
    launchers.add_inplace(target, on_device(backend, third))
    expected = first.copy()
    reference.add_inplace(expected, second)
    reference.add_inplace(expected, third)
    assert_close(target, expected, exact=True)


@on_backends()
@pytest.mark.parametrize("sizes", [(3, 1), (2, 5, 1)])
def test_concatenate_matches_reference(backend, sizes):
    rows = pick(backend, (2, 3, 2), (64, 16, 16))
    inputs = [random(rows + (s * pick(backend, 1, 32),), seed=k) for k, s in enumerate(sizes)]
    y = launchers.concatenate_forward(list(on_device(backend, *inputs)))
    assert_close(y, reference.concatenate_forward(inputs), exact=True)
    dy = random(y.shape, seed=9)
    widths = [x.shape[-1] for x in inputs]
    grads = launchers.concatenate_backward(on_device(backend, dy), widths)
    for got, want in zip(grads, reference.concatenate_backward(dy, widths)):
        assert_close(got, want, exact=True)


def test_merge_launchers_check_the_dtype(emulated):
    # The op's own argument checks are the contract's, tested on every backend in test_contract.py.
    with pytest.raises(TypeError, match=r"`inputs\[1\]`.*float32"):
        launchers.concatenate_forward([random((2, 3)), random((2, 4)).astype(np.float64)])
