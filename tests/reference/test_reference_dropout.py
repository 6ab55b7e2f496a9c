"""Dropout reference: the lowbias32 mask rule checked against plain Python integers, determinism, statistics."""
import numpy as np
import pytest

from gpucnn.reference import dropout_backward, dropout_forward
from gpucnn.reference.dropout import hash32

MASK32 = 0xFFFFFFFF
#: A step counter holding 0: the mask seed is then the seed itself.
STEP_0 = np.zeros(1, np.int64)


def _python_hash32(seed, index):
    """lowbias32 with Python ints, reducing mod 2**32 after every step (the contract, written out)."""
    h = ((index * 0x9E3779B1) & MASK32) ^ seed
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK32
    h ^= h >> 15
    h = (h * 0x846CA68B) & MASK32
    h ^= h >> 16
    return h


def _python_kept(seed, index, rate):
    """Keep rule with the threshold rounded to float32, as the kernels receive it (exact in double)."""
    return (_python_hash32(seed, index & MASK32) >> 8) * 2.0**-24 >= float(np.float32(rate))


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31, 2**32 - 1])
def test_hash32_matches_python_integers(seed):
    indices = [0, 1, 2, 3, 255, 256, 65535, 65536, 10**6, 2**31 - 1, 2**31, 2**32 - 1]
    got = hash32(seed, np.array(indices, dtype=np.uint64))
    assert got.dtype == np.uint32
    assert got.tolist() == [_python_hash32(seed, i) for i in indices]


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.7, 0.95])
@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1])
def test_forward_follows_the_mask_rule_elementwise(rate, seed):
    x = np.random.default_rng(0).uniform(0.5, 2.0, size=(2, 3, 4, 5)).astype(np.float32)
    y = dropout_forward(x, rate, seed, STEP_0)
    kept = np.array([_python_kept(seed, i, rate) for i in range(x.size)]).reshape(x.shape)
    scale = np.float32(1) / np.float32(1 - rate)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, np.where(kept, x * scale, np.float32(0)))


def test_threshold_is_inclusive():
    # A rate equal to element 0's 24-bit uniform value (exact in float32) keeps element 0.
    seed = 31
    rate = (_python_hash32(seed, 0) >> 8) * 2.0**-24
    assert dropout_forward(np.ones(1, np.float32), rate, seed, STEP_0)[0] != 0
    just_above = float(np.nextafter(np.float32(rate), np.float32(1)))
    assert dropout_forward(np.ones(1, np.float32), just_above, seed, STEP_0)[0] == 0


def test_deterministic_for_a_seed_and_different_for_another():
    x = np.ones((64, 64), np.float32)
    first, again, other = (dropout_forward(x, 0.5, 42, STEP_0), dropout_forward(x, 0.5, 42, STEP_0),
                           dropout_forward(x, 0.5, 43, STEP_0))
    np.testing.assert_array_equal(first, again)
    assert np.mean((first != 0) != (other != 0)) > 0.3


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_fraction_is_close_to_one_minus_rate(rate):
    size = 1 << 20
    y = dropout_forward(np.ones(size, np.float32), rate, 2024, STEP_0)
    kept = np.count_nonzero(y) / size
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / size)
    # The expected value is preserved: kept elements are scaled by 1 / (1 - rate).
    assert abs(y.mean() - 1) < 0.01


def test_backward_uses_the_same_mask_and_scale():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 2.0, size=(3, 5, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y = dropout_forward(x, 0.3, 99, STEP_0)
    scale = np.float32(1) / np.float32(0.7)
    np.testing.assert_array_equal(dropout_backward(dy, 0.3, 99, STEP_0), np.where(y != 0, dy * scale, np.float32(0)))


def test_rate_zero_is_the_identity_and_float64_is_kept():
    x = np.random.default_rng(2).standard_normal((4, 4))
    y = dropout_forward(x, 0.0, 5, STEP_0)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("rate, seed, match", [
    (1.0, 0, "rate"), (-0.1, 0, "rate"), ("0.5", 0, "rate"),
    (0.5, -1, "seed"), (0.5, 2**32, "seed"), (0.5, 1.5, "seed"),
])
def test_invalid_rate_or_seed_raises(rate, seed, match):
    with pytest.raises(ValueError, match=match):
        dropout_forward(np.ones(3, np.float32), rate, seed, STEP_0)


@pytest.mark.parametrize("seed, count", [(0, 1), (99, 2), (2**32 - 1, 7), (5, 2**32 + 3)])
def test_step_moves_the_mask_seed_by_the_golden_stride(seed, count):
    x = np.ones(300, np.float32)
    expected_seed = (seed + count * 0x9E3779B9) & MASK32
    got = dropout_forward(x, 0.5, seed, np.array([count], np.int64))
    np.testing.assert_array_equal(got, dropout_forward(x, 0.5, expected_seed, STEP_0))
    # backward regenerates the forward mask from the same seed and count
    np.testing.assert_array_equal(dropout_backward(x, 0.5, seed, np.array([count], np.int64)), got)


@pytest.mark.parametrize("step, error, match", [
    (1, TypeError, "`step` must be a 1-element int64 array.*got 1"),
    (np.zeros(1, np.int32), TypeError, "dtype int32"),
    (np.zeros((1, 1), np.int64), ValueError, "shape \\(1, 1\\)"),
    (np.array([-1], np.int64), ValueError, "count >= 0"),
])
def test_invalid_step_raises(step, error, match):
    with pytest.raises(error, match=match):
        dropout_forward(np.ones(3, np.float32), 0.5, 0, step)
