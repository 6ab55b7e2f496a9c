"""Batch normalization (NumPy reference): per-channel statistics over every axis but the last.

The layer keeps the moving averages; these ops only compute with the statistics they are given.
"""
import numpy as np

from gpucnn.contract.batchnorm import check_batchnorm_backward, check_channels

from .activations import column_sums


def _rows(x):
    """x as a (M, C) matrix: one row per position, one column per channel."""
    return x.reshape(-1, x.shape[-1])


def _normalize(x, mean, inv_std, gamma, beta):
    """gamma · (x - mean) · inv_std + beta, written as x · scale + shift like Keras' batch_normalization."""
    scale = inv_std * gamma
    shift = beta - mean * scale
    y = x * scale
    y += shift  # in place: one full-size temporary fewer
    return y


def batchnorm_forward_training(x, gamma, beta, epsilon):
    """(y, mean, var, inv_std): normalize with the batch statistics; var is the biased variance."""
    check_channels(x, gamma=gamma, beta=beta)
    rows = _rows(x)
    count = rows.shape[0]
    mean = column_sums(rows) / count
    centered = rows - mean
    var = column_sums(np.square(centered, out=centered)) / count
    inv_std = 1 / np.sqrt(var + x.dtype.type(epsilon))
    return _normalize(x, mean, inv_std, gamma, beta), mean, var, inv_std


def batchnorm_forward_inference(x, gamma, beta, moving_mean, moving_var, epsilon):
    """y = gamma · (x - moving_mean) / sqrt(moving_var + epsilon) + beta."""
    check_channels(x, gamma=gamma, beta=beta, moving_mean=moving_mean, moving_var=moving_var)
    inv_std = 1 / np.sqrt(moving_var + x.dtype.type(epsilon))
    return _normalize(x, moving_mean, inv_std, gamma, beta)


def batchnorm_backward(dy, x, gamma, mean, inv_std):
    """(dx, dgamma, dbeta) of the training forward pass, with the batch statistics it returned.

    dx = gamma · inv_std · (dy - mean(dy) - x̂ · mean(dy · x̂)), x̂ = (x - mean) · inv_std.
    """
    check_batchnorm_backward(dy, x, gamma, mean, inv_std)
    dy_rows = _rows(dy)
    x_hat = _rows(x) - mean
    x_hat *= inv_std
    dbeta = column_sums(dy_rows)
    dgamma = column_sums(dy_rows * x_hat)
    count = dy_rows.shape[0]
    dx = x_hat
    dx *= dgamma / count
    np.subtract(dy_rows, dx, out=dx)
    dx -= dbeta / count
    dx *= gamma * inv_std
    return dx.reshape(x.shape), dgamma, dbeta
