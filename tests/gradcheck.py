"""Finite-difference gradient checks, shared by the test suites.

Backward ops are checked through a scalar: the output projected on a fixed random array ``r``,
``L = sum(f(x) * r)``, whose gradient with respect to the output is exactly ``r``.  So
``backward(dy=r)`` must equal the central differences of ``L``.  Use float64 inputs.
"""
import numpy as np


def numerical_gradient(scalar_fn, x, eps=1e-6):
    """Central differences of ``scalar_fn`` at ``x``, one element at a time (keep ``x`` small)."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + eps
        plus = scalar_fn(x)
        flat_x[i] = saved - eps
        minus = scalar_fn(x)
        flat_x[i] = saved
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def projection(shape, seed=0):
    """A fixed random float64 array to project an output on (the ``dy`` of the check)."""
    return np.random.default_rng(seed).standard_normal(shape)


def assert_gradient(fn, x, dy, analytic, rtol=1e-5, atol=1e-7):
    """Assert that ``analytic`` is the gradient of ``sum(fn(x) * dy)`` with respect to ``x``."""
    expected = numerical_gradient(lambda value: float(np.sum(fn(value) * dy)), x)
    np.testing.assert_allclose(analytic, expected, rtol=rtol, atol=atol)
