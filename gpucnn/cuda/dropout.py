"""Launchers of the dropout kernel (``kernels/elementwise.py``): the mask is a hash of (seed, step, index).

Same names and signatures as ``gpucnn.reference.dropout``; see docs/architecture.md for the hash.
"""
import math

import numpy as np

from gpucnn.contract.dropout import check_dropout
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import flat, launch_grid_stride
from gpucnn.kernels import elementwise


def _dropout(name, x, rate, seed, step):
    runtime.check_array(name, x)
    check_dropout(rate, seed, step)
    runtime.check_array("step", step, dtype=np.int64)
    # Kept iff (hash >> 8)·2⁻²⁴ >= float32(rate): both sides are exact in float64, so the integer
    # threshold ceil(float32(rate)·2²⁴) decides exactly as the contract's float comparison.
    threshold = math.ceil(float(np.float32(rate)) * 2.0**24)
    scale = np.float32(1) / np.float32(1 - rate)
    out = runtime.xp().empty_like(x)
    launch_grid_stride(elementwise.dropout, x.size, flat(x), flat(out), np.uint32(seed), step,
                       np.uint32(threshold), scale)
    return out


def dropout_forward(x, rate, seed, step):
    """y = x · mask / (1 - rate), the mask of (``seed``, the count in the ``step`` counter)."""
    return _dropout("x", x, rate, seed, step)


def dropout_backward(dy, rate, seed, step):
    """dx = dy · mask / (1 - rate): the forward mask, regenerated from ``seed`` and ``step``."""
    return _dropout("dy", dy, rate, seed, step)
