"""zero-padding reference: vs numpy.pad written out by hand, backward vs finite differences, Keras'
three forms of the `padding` argument."""
import numpy as np
import pytest
from gradcheck import assert_gradient, projection

from gpucnn.contract.padding import normalize_zero_padding
from gpucnn.reference import zero_padding2d_backward, zero_padding2d_forward


@pytest.mark.parametrize("padding", [((1, 2), (0, 3)), ((0, 0), (2, 1)), ((2, 2), (2, 2))])
def test_forward_places_the_input_inside_zeros(padding):
    x = np.random.default_rng(0).uniform(1, 2, (2, 3, 4, 3)).astype(np.float32)
    y = zero_padding2d_forward(x, padding)
    (top, bottom), (left, right) = padding
    assert y.shape == (2, 3 + top + bottom, 4 + left + right, 3)
    inside = np.zeros(y.shape, bool)
    inside[:, top:top + 3, left:left + 4] = True
    np.testing.assert_array_equal(y[inside].reshape(x.shape), x)
    assert not y[~inside].any()

    x64 = x.astype(np.float64)
    dy = projection(y.shape)
    dx = zero_padding2d_backward(dy, padding)
    assert dx.flags.c_contiguous
    assert_gradient(lambda v: zero_padding2d_forward(v, padding), x64, dy, dx)


def test_keras_forms_of_the_padding_argument():
    assert normalize_zero_padding(1) == ((1, 1), (1, 1))
    assert normalize_zero_padding((2, 3)) == ((2, 2), (3, 3))
    assert normalize_zero_padding(((0, 1), [2, 3])) == ((0, 1), (2, 3))
    for bad in ("same", (1, 2, 3), ((1, 2), 3), 1.5, True):
        with pytest.raises(TypeError, match="`padding`"):
            normalize_zero_padding(bad)
    with pytest.raises(ValueError, match="`padding` must not be negative"):
        normalize_zero_padding((1, -1))


def test_bad_shapes_name_the_argument():
    with pytest.raises(ValueError, match="`x`.*rank 4"):
        zero_padding2d_forward(np.zeros((3, 3, 1), np.float32), 1)
    with pytest.raises(ValueError, match="`dy`.*larger than the padding"):
        zero_padding2d_backward(np.zeros((1, 2, 5, 1), np.float32), 1)
