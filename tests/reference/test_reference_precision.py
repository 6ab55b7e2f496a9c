"""TF32 / BF16 operand rounding of the reference (gpucnn.reference.precision) against an independent
formula on float64 mantissas, and the reference GEMM ops at each precision."""
import math

import numpy as np
import pytest

from gpucnn import reference
from gpucnn.reference import precision as rounding


def _round_mantissa(value, kept_bits, ties):
    """``value`` rounded to ``kept_bits`` explicit mantissa bits with Python floats (exact here)."""
    if not math.isfinite(value) or value == 0:
        return value
    _, exponent = math.frexp(abs(value))  # value = mantissa · 2**exponent, 0.5 <= mantissa < 1
    # The spacing of representable values; subnormals (below 2**-126) share the smallest normal's spacing.
    quantum = 2.0 ** (max(exponent, -125) - kept_bits - 1)
    scaled = abs(value) / quantum
    low = math.floor(scaled)
    if scaled - low > 0.5 or (scaled - low == 0.5 and (ties == "away" or low % 2 == 1)):
        low += 1
    return math.copysign(low * quantum, value)


def _expected(values, kept_bits, ties):
    # Values past the format's largest finite number overflow to infinity, as the hardware conversions do.
    return np.array([_round_mantissa(float(v), kept_bits, ties) for v in values]).astype(np.float32)


def _samples():
    rng = np.random.default_rng(0)
    random = (rng.standard_normal(2000) * np.exp(rng.uniform(-30, 30, 2000))).astype(np.float32)
    special = np.array([0.0, -0.0, 1.0, np.finfo(np.float32).max, -np.finfo(np.float32).max,
                        np.finfo(np.float32).tiny, 1e-42, np.inf, -np.inf], dtype=np.float32)
    return np.concatenate([random, special])


def test_tf32_rounds_to_nearest_ties_away_from_zero():
    values = _samples()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(rounding.round_to_tf32(values), _expected(values, 10, "away"))
    ties = np.array([1 + 2**-11, -(1 + 2**-11), 1 + 3 * 2**-11], dtype=np.float32)
    np.testing.assert_array_equal(rounding.round_to_tf32(ties),
                                  np.array([1 + 2**-10, -(1 + 2**-10), 1 + 2**-9], dtype=np.float32))


def test_bf16_rounds_to_nearest_ties_to_even():
    values = _samples()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(rounding.round_to_bf16(values), _expected(values, 7, "even"))
    ties = np.array([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8)], dtype=np.float32)
    np.testing.assert_array_equal(rounding.round_to_bf16(ties),
                                  np.array([1.0, 1 + 2**-6, -1.0], dtype=np.float32))


def test_nan_stays_nan():
    nan = np.array([np.nan], dtype=np.float32)
    assert np.isnan(rounding.round_to_tf32(nan)).all() and np.isnan(rounding.round_to_bf16(nan)).all()


def _ops(rng, precision):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    a = rng.standard_normal((7, 9)).astype(np.float32)
    b = rng.standard_normal((9, 5)).astype(np.float32)
    d = rng.standard_normal((7, 5)).astype(np.float32)
    return {
        "conv2d_forward": (lambda x, w: reference.conv2d_forward(x, w, None, (2, 2), "same", precision=precision),
                           x, w),
        "conv2d_backward_data": (lambda dy, w: reference.conv2d_backward_data(dy, w, x.shape, (2, 2), "same",
                                                                              precision=precision), dy, w),
        "conv2d_backward_filter": (lambda x, dy: reference.conv2d_backward_filter(x, dy, (3, 3), (2, 2), "same",
                                                                                  precision=precision), x, dy),
        "dense_forward": (lambda a, b: reference.dense_forward(a, b, None, precision=precision), a, b),
        "dense_backward_data": (lambda d, b: reference.dense_backward_data(d, b, precision=precision), d, b),
        "dense_backward_weights": (lambda a, d: reference.dense_backward_weights(a, d, precision=precision), a, d),
    }


@pytest.mark.parametrize("precision, round_to, bound", [("high", rounding.round_to_tf32, 2**-10),
                                                         ("medium", rounding.round_to_bf16, 2**-7)])
def test_ops_round_both_operands_and_stay_within_the_format_error(precision, round_to, bound):
    exact, rounded = _ops(np.random.default_rng(1), None), _ops(np.random.default_rng(1), precision)
    for name, (op, p, q) in rounded.items():
        result = op(p, q)
        exact_op = exact[name][0]
        np.testing.assert_allclose(result, exact_op(round_to(p), round_to(q)), rtol=1e-6, atol=1e-6, err_msg=name)
        # Against float64 on the original operands: each product off by at most ~2·(half an ulp of the
        # format); the sum of |products| bounds the total.
        oracle = exact_op(p.astype(np.float64), q.astype(np.float64))
        magnitude = exact_op(np.abs(p).astype(np.float64), np.abs(q).astype(np.float64))
        assert (np.abs(result - oracle) <= bound * magnitude + 1e-6).all(), name
        assert not np.array_equal(result, exact_op(p, q)), name  # the rounding changed something


def test_default_and_highest_are_exact_float32():
    for precision in (None, "highest"):
        ops = _ops(np.random.default_rng(2), precision)
        for name, (op, p, q) in ops.items():
            np.testing.assert_array_equal(op(p, q), _ops(np.random.default_rng(2), None)[name][0](p, q))


def test_reference_ignores_the_global_setting(monkeypatch):
    from gpucnn import config
    monkeypatch.setattr(config, "_precision", "medium")
    a = np.float32([[1 + 2**-9]])
    assert reference.dense_forward(a, np.ones((1, 1), np.float32), None)[0, 0] == np.float32(1 + 2**-9)
