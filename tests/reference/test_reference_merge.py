"""merge reference: Add and Concatenate against plain NumPy, their gradients against finite
differences, the in-place accumulation, and the argument checks."""
import numpy as np
import pytest
from gradcheck import assert_gradient, projection

from gpucnn.reference import add_forward, add_inplace, concatenate_backward, concatenate_forward


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def test_add_sums_left_to_right_and_hands_each_input_the_gradient():
    a, b, c = _arrays((2, 3, 3, 4), (2, 3, 3, 4), (2, 3, 3, 4))
    np.testing.assert_array_equal(add_forward([a, b, c]), (a + b) + c)
    dy = projection(a.shape)
    # d(a + b + c)/da is the identity: Add's backward is dy itself for every input.
    assert_gradient(lambda v: add_forward([v, b, c]), a, dy, dy)
    assert_gradient(lambda v: add_forward([a, b, v]), c, dy, dy)


def test_add_inplace_accumulates_into_the_target():
    target, x = (v.astype(np.float32) for v in _arrays((3, 5), (3, 5)))
    expected = target + x
    assert add_inplace(target, x) is None
    np.testing.assert_array_equal(target, expected)


@pytest.mark.parametrize("sizes", [(3, 1), (2, 5, 1)])
def test_concatenate_joins_the_last_axis_and_splits_the_gradient(sizes):
    inputs = _arrays(*[(2, 3, 2, s) for s in sizes])
    y = concatenate_forward(inputs)
    assert y.shape == (2, 3, 2, sum(sizes))
    offset = 0
    for x, size in zip(inputs, sizes):
        np.testing.assert_array_equal(y[..., offset:offset + size], x)
        offset += size
    dy = projection(y.shape)
    grads = concatenate_backward(dy, sizes)
    for k, x in enumerate(inputs):
        assert grads[k].flags.c_contiguous
        assert_gradient(lambda v: concatenate_forward(inputs[:k] + [v] + inputs[k + 1:]), x, dy, grads[k])


def test_bad_arguments_name_the_argument():
    a, b = _arrays((2, 3), (2, 4))
    with pytest.raises(TypeError, match="`inputs`.*at least 2"):
        add_forward([a])
    with pytest.raises(ValueError, match=r"`inputs`.*same shape.*\(2, 3\), \(2, 4\)"):
        add_forward([a, b])
    with pytest.raises(TypeError, match=r"`inputs\[1\]` must be an array, got list"):
        concatenate_forward([a, [1.0, 2.0]])
    with pytest.raises(ValueError, match="same shape except the last axis"):
        concatenate_forward([a, np.zeros((3, 3))])
    with pytest.raises(ValueError, match="`target` and `x`"):
        add_inplace(a, b)
    with pytest.raises(ValueError, match="`sizes`.*adding up"):
        concatenate_backward(np.zeros((2, 7)), [3, 3])
