"""Seeding and small helpers shared by the host code."""
import random

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Seed every random choice gpucnn makes (weight initialization, shuffling, dropout masks), as well
    as Python's ``random`` and NumPy's global RNG, like ``keras.utils.set_random_seed``.  With the same
    seed, training on the cpu backend is bit-reproducible."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Argument `seed` must be a non-negative int, got {seed!r}. Fix: pass e.g. "
                         f"set_random_seed(1337).")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _generator = np.random.default_rng(seed)


def rng():
    """The generator behind every random choice of gpucnn (reseeded by ``set_random_seed``)."""
    return _generator


def get_rng_state():
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state
