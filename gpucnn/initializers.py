"""Weight initializers with Keras names and formulas.  Values are drawn on the host with
``gpucnn.utils.rng()`` (so ``set_random_seed`` makes them reproducible) and then moved to the backend."""
import math
import re

import numpy as np

from gpucnn import utils


def _fans(shape):
    """Keras fan computation: Dense (in, out); Conv (kh, kw, in, out) with the receptive field folded in."""
    if len(shape) < 2:
        return shape[0] if shape else 1, shape[0] if shape else 1
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(shape):
    return np.zeros(shape, np.float32)


def ones(shape):
    return np.ones(shape, np.float32)


def _uniform(shape, limit):
    return utils.rng().uniform(-limit, limit, size=shape).astype(np.float32)


def _truncated_normal(shape, stddev):
    """Normal samples redrawn until within two standard deviations, as Keras' TruncatedNormal; the
    stddev is corrected (/0.8796...) so the truncated distribution keeps the requested variance."""
    stddev = stddev / 0.87962566103423978
    values = utils.rng().normal(0.0, stddev, size=shape)
    outside = np.abs(values) > 2 * stddev
    while outside.any():
        values[outside] = utils.rng().normal(0.0, stddev, size=int(outside.sum()))
        outside = np.abs(values) > 2 * stddev
    return values.astype(np.float32)


def glorot_uniform(shape):
    fan_in, fan_out = _fans(shape)
    return _uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)))


def glorot_normal(shape):
    fan_in, fan_out = _fans(shape)
    return _truncated_normal(shape, math.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(shape):
    return _uniform(shape, math.sqrt(6.0 / _fans(shape)[0]))


def he_normal(shape):
    return _truncated_normal(shape, math.sqrt(2.0 / _fans(shape)[0]))


_BY_NAME = {f.__name__: f for f in (zeros, ones, glorot_uniform, glorot_normal, he_uniform, he_normal)}
NAMES = tuple(sorted(_BY_NAME))


def get(identifier, argument="initializer"):
    """An initializer function from its Keras name (or a callable ``f(shape) -> ndarray``)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        # Keras takes class names too: 'GlorotUniform' is 'glorot_uniform'.
        name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", identifier).lower()
        if name in _BY_NAME:
            return _BY_NAME[name]
    raise ValueError(f"Unknown `{argument}` {identifier!r}: expected one of {sorted(_BY_NAME)} "
                     f"or a callable taking a shape.")


def serialize(initializer):
    name = getattr(initializer, "__name__", None)
    if _BY_NAME.get(name) is not initializer:
        raise ValueError(f"Initializer {initializer!r} is not a built-in one and cannot be saved in a "
                         f"model config. Fix: use one of {sorted(_BY_NAME)}.")
    return name
