"""Optimizer updates (NumPy reference, Keras 3 formulas), in place on flat parameter buffers.

A model keeps all its trainable parameters in one flat buffer (and the gradients in another), so one
call updates the whole model.
"""
import itertools
import math

import numpy as np

from gpucnn.contract.optimizers import check_adam_update, check_offset_values, check_offsets, check_sgd_update

from .steps import step_value


def adam_step_size(step, learning_rate, beta_1, beta_2):
    """alpha = lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ) in float64, for the int ``step`` t (the kernel computes the same
    expression in the same order from its step counter)."""
    return learning_rate * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)


def adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon):
    """One Adam update, the t-th, with t held by the step counter ``step`` (1 for the first update: the
    optimizer advances its counter before calling); updates param, m and v in place.

    alpha = lr·sqrt(1-β₂ᵗ)/(1-β₁ᵗ);  m += (g - m)(1 - β₁);  v += (g² - v)(1 - β₂);
    param -= (m·alpha) / (sqrt(v) + ε).
    """
    check_adam_update(param, grad, m, v, step)
    alpha = adam_step_size(step_value(step, 1), learning_rate, beta_1, beta_2)
    dtype = param.dtype.type
    # One scratch buffer and in-place ufuncs: a model's flat buffer is large and this runs every step.
    scratch = np.subtract(grad, m, dtype=param.dtype)
    scratch *= dtype(1 - beta_1)
    m += scratch
    np.square(grad, out=scratch)
    scratch -= v
    scratch *= dtype(1 - beta_2)
    v += scratch
    np.sqrt(v, out=scratch)
    scratch += dtype(epsilon)
    # (m·alpha) / (sqrt(v) + ε) in this order, as Keras 3 and the kernel round it.
    np.divide(m * dtype(alpha), scratch, out=scratch)
    param -= scratch


def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov):
    """One SGD step in place.

    With ``velocity``: v = momentum·v - lr·g, then param += momentum·v - lr·g (nesterov) or param += v.
    Without (``velocity=None``, momentum 0): param -= lr·g.
    """
    check_sgd_update(param, grad, velocity, momentum)
    dtype = param.dtype.type
    lr_grad = dtype(learning_rate) * grad
    if velocity is None:
        param -= lr_grad
        return
    velocity *= dtype(momentum)
    velocity -= lr_grad
    if nesterov:
        param += dtype(momentum) * velocity - lr_grad
    else:
        param += velocity


# ---- gradient clipping and weight decay (Keras 3 order: clip the gradients, decay, then update) -------

def _segment_square_sums(grad, offsets):
    return np.array([np.dot(grad[start:end], grad[start:end])
                     for start, end in itertools.pairwise(offsets)], dtype=grad.dtype)


def clip_by_norm(grad, offsets, clipnorm):
    """Keras 3 ``clipnorm``: each variable's gradient (the slice between consecutive ``offsets``) times
    clipnorm / max(‖g‖₂, clipnorm).  Returns a new array."""
    check_offsets(offsets, grad.size)
    offsets = check_offset_values(offsets, grad.size)
    dtype = grad.dtype.type
    norms = np.sqrt(_segment_square_sums(grad, offsets))
    factors = dtype(clipnorm) / np.maximum(norms, dtype(clipnorm))
    return grad * np.repeat(factors, np.diff(offsets))


def clip_by_global_norm(grad, offsets, clipnorm):
    """Keras 3 ``global_clipnorm``: every gradient times clipnorm·min(1/‖g‖₂, 1/clipnorm), ‖g‖₂ over all
    variables; a non-finite norm makes every gradient NaN, as Keras does.  Returns a new array."""
    check_offsets(offsets, grad.size)
    offsets = check_offset_values(offsets, grad.size)
    dtype = grad.dtype.type
    norm = np.sqrt(np.sum(_segment_square_sums(grad, offsets)))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = dtype(clipnorm) * np.minimum(dtype(1) / norm, dtype(1) / dtype(clipnorm)) + (norm - norm)
    return grad * dtype(factor)


def clip_by_value(grad, clipvalue):
    """Keras 3 ``clipvalue``: every gradient element clipped to [-clipvalue, clipvalue].  A new array."""
    return np.clip(grad, -grad.dtype.type(clipvalue), grad.dtype.type(clipvalue))


def decay_weights(param, weight_decay, learning_rate):
    """Keras 3 weight decay, in place: param -= param·weight_decay·learning_rate (before the update)."""
    dtype = param.dtype.type
    param -= param * dtype(weight_decay) * dtype(learning_rate)
