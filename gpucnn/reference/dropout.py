"""Inverted dropout with a counter-based mask (NumPy reference, bit-exact with the GPU kernel).

A step's mask seed is ``s = (seed + step · 0x9E3779B9) mod 2³²``, with ``step`` read from the layer's
step counter (a 1-element int64 array, see ``gpucnn.contract.steps``) and the golden-ratio stride
keeping the seeds of consecutive steps far apart.  The element with flat C-order index ``i`` is kept
iff ``(hash32(s, i) >> 8) · 2⁻²⁴ >= rate``: no random state and nothing stored between forward and
backward, which regenerates the same mask from the seed and the counter.  The comparison is done in
float32 (``rate`` rounded to float32), as the kernels receive it.  Kept elements are multiplied by
``float32(1) / float32(1 - rate)``, the others are 0.
"""
import numpy as np

from gpucnn.contract.dropout import MAX_SEED, check_arguments, check_dropout

from .steps import step_value

#: Added to the seed once per step (2³² divided by the golden ratio).
STEP_STRIDE = 0x9E3779B9


def hash32(seed, index):
    """lowbias32 hash of the uint32 ``index`` array mixed with ``seed`` (all arithmetic mod 2³²)."""
    h = index.astype(np.uint32, copy=True)
    h *= np.uint32(0x9E3779B1)
    h ^= np.uint32(seed)
    h ^= h >> 16
    h *= np.uint32(0x7FEB352D)
    h ^= h >> 15
    h *= np.uint32(0x846CA68B)
    h ^= h >> 16
    return h


def mask_seed(seed, step):
    """The seed of the mask of step ``step`` (an int)."""
    return (seed + step * STEP_STRIDE) % MAX_SEED


def dropout_mask(shape, rate, seed):
    """Boolean keep-mask of ``shape`` for ``rate`` and ``seed``."""
    check_arguments(rate, seed)
    size = int(np.prod(shape, dtype=np.int64))
    # Indices wrap mod 2**32 like the kernel's uint32 arithmetic.
    index = np.arange(size, dtype=np.uint64 if size > MAX_SEED else np.uint32)
    bits = hash32(seed, index)
    bits >>= np.uint32(8)
    uniform = bits.astype(np.float32)
    uniform *= np.float32(2.0**-24)
    return (uniform >= np.float32(rate)).reshape(shape)


def _apply(x, rate, seed, step):
    check_dropout(rate, seed, step)
    mask = dropout_mask(x.shape, rate, mask_seed(seed, step_value(step, 0)))
    y = x * (x.dtype.type(1) / x.dtype.type(1 - rate))
    y *= mask  # multiplying by the bool mask is faster than np.where
    return y


def dropout_forward(x, rate, seed, step):
    """y = x · mask / (1 - rate), the mask of (``seed``, the count in ``step``)."""
    return _apply(x, rate, seed, step)


def dropout_backward(dy, rate, seed, step):
    """dx = dy · mask / (1 - rate), with the mask of the forward pass regenerated from ``seed`` and
    ``step`` (the counter must hold the count the forward pass read)."""
    return _apply(dy, rate, seed, step)
