"""Launchers of the batch-norm kernels (``kernels/reduce.py`` column sums, ``kernels/elementwise.py``).

Same names and signatures as ``gpucnn.reference.batchnorm``: statistics per channel (last axis) over
every other axis, biased variance, two passes (mean, then squared deviations) for accuracy.
"""
import numpy as np

from gpucnn.contract.batchnorm import check_batchnorm_backward, check_channels
from gpucnn.cuda import runtime
from gpucnn.cuda._numba_launch import column_sums, flat, launch_grid_stride
from gpucnn.kernels import elementwise


def _check(x, **per_channel):
    """The channel count of ``x``, after the device checks of every array and the contract's."""
    runtime.check_array("x", x)
    for name, array in per_channel.items():
        runtime.check_array(name, array)
    return check_channels(x, **per_channel)


def _normalize(x, mean, var, gamma, beta, epsilon):
    """(y, inv_std): y = x·scale + shift with scale = gamma·inv_std, shift = beta - mean·scale."""
    xp = runtime.xp()
    channels = mean.size
    inv_std, scale, shift = (xp.empty(channels, dtype=np.float32) for _ in range(3))
    launch_grid_stride(elementwise.batchnorm_channel_params, channels, mean, var, gamma, beta,
                       np.float32(epsilon), inv_std, scale, shift)
    y = xp.empty_like(x)
    launch_grid_stride(elementwise.batchnorm_scale_shift, x.size, flat(x), scale, shift, flat(y))
    return y, inv_std


def batchnorm_forward_training(x, gamma, beta, epsilon):
    """(y, mean, var, inv_std) with the batch statistics; var is the biased variance."""
    channels = _check(x, gamma=gamma, beta=beta)
    rows = x.size // channels
    values = flat(x)
    mean = column_sums(values, channels, scale=1.0 / rows)
    var = column_sums(values, channels, a_shift=mean, b=values, b_shift=mean, scale=1.0 / rows)
    y, inv_std = _normalize(x, mean, var, gamma, beta, epsilon)
    return y, mean, var, inv_std


def batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon):
    """y = gamma · (x - moving_mean) / sqrt(moving_var + epsilon) + beta."""
    _check(x, gamma=gamma, beta=beta, moving_mean=moving_mean, moving_var=moving_var)
    return _normalize(x, moving_mean, moving_var, gamma, beta, epsilon)[0]


def batchnorm_backward(dy, x, gamma, mean, inv_std):
    """(dx, dgamma, dbeta) of the training forward pass, with the statistics it returned."""
    for name, array in (("dy", dy), ("x", x), ("gamma", gamma), ("mean", mean), ("inv_std", inv_std)):
        runtime.check_array(name, array)
    channels = check_batchnorm_backward(dy, x, gamma, mean, inv_std)
    xp = runtime.xp()
    dy_flat, x_flat = flat(dy), flat(x)
    dbeta = column_sums(dy_flat, channels)
    # dgamma = Σ dy·x̂ = inv_std · Σ dy·(x - mean): one column sum, then a per-channel product.
    dy_x_centered = column_sums(dy_flat, channels, b=x_flat, b_shift=mean)
    dgamma = xp.empty(channels, dtype=np.float32)
    launch_grid_stride(elementwise.multiply_map, channels, dy_x_centered, inv_std, dgamma, np.float32(0))
    dx = xp.empty_like(x)
    launch_grid_stride(elementwise.batchnorm_backward_data, x.size, dy_flat, x_flat, mean, inv_std,
                       gamma, dgamma, dbeta, np.float32(x.size // channels), flat(dx))
    return dx, dgamma, dbeta
