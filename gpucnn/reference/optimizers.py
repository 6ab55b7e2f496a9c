"""Optimizer updates (NumPy reference, Keras 3 formulas), in place on flat parameter buffers.

A model keeps all its trainable parameters in one flat buffer (and the gradients in another), so one
call updates the whole model.
"""
import math

import numpy as np

from gpucnn.contract.optimizers import check_adam_update, check_sgd_update

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
