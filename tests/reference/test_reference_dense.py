"""Dense reference: forward vs an independent einsum, fused activations, backward vs finite differences."""
import numpy as np
import pytest
from gradcheck import assert_gradient, projection
from scipy import special

from gpucnn.reference import dense_backward_data, dense_backward_weights, dense_forward

SHAPES = [(1, 3, 2), (4, 5, 3), (7, 1, 1)]   # (batch, in features, units)


def _operands(n, k, m, dtype=np.float64):
    rng = np.random.default_rng(5)
    return (rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((k, m)).astype(dtype),
            rng.standard_normal(m).astype(dtype))


@pytest.mark.parametrize("activation, closed_form", [
    ("linear", lambda z: z),
    ("relu", lambda z: np.maximum(z, 0)),
    ("leaky_relu", lambda z: np.where(z > 0, z, 0.1 * z)),
    ("sigmoid", special.expit),
])
@pytest.mark.parametrize("n, k, m", SHAPES)
def test_forward_matches_einsum(n, k, m, activation, closed_form):
    x, w, b = _operands(n, k, m)
    z = np.einsum("nk,km->nm", x, w) + b
    np.testing.assert_allclose(dense_forward(x, w, b, activation, alpha=0.1), closed_form(z), rtol=1e-12)
    np.testing.assert_allclose(dense_forward(x, w, None, activation, alpha=0.1), closed_form(z - b), rtol=1e-12)


def test_float32_stays_float32():
    x, w, b = _operands(4, 5, 3, np.float32)
    assert dense_forward(x, w, b, "sigmoid").dtype == np.float32
    assert dense_backward_data(np.ones((4, 3), np.float32), w).dtype == np.float32
    assert dense_backward_weights(x, np.ones((4, 3), np.float32)).dtype == np.float32


@pytest.mark.parametrize("n, k, m", SHAPES)
def test_backward_matches_finite_differences(n, k, m):
    x, w, _ = _operands(n, k, m)
    dy = projection((n, m))
    assert_gradient(lambda v: dense_forward(v, w, None), x, dy, dense_backward_data(dy, w))
    assert_gradient(lambda v: dense_forward(x, v, None), w, dy, dense_backward_weights(x, dy))
