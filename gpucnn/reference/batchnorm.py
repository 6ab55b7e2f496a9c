"""Batch normalization (NumPy reference): per-channel statistics over every axis but the last.

The layer keeps the moving averages; these ops only compute with the statistics they are given.
"""
import numpy as np

from gpucnn.contract.batchnorm import check_batchnorm_backward, check_channels

from .activations import column_sums

# A broadcast over an (M, C) matrix runs NumPy's inner loop C elements at a time: with the few channels
# of a small CNN (8, 16) that loop overhead, not memory, sets the time. Rows of about this many elements
# hold several positions each, and every per-channel vector is tiled to match.
_WIDE_ROW = 512


class _ChannelRows:
    """Views of an (..., C) array as a matrix of whole positions per row, (M / r, r·C): channel c lies in
    columns c, C + c, ..., so per-channel vectors are tiled r times to broadcast over a row."""

    def __init__(self, x):
        self.channels = x.shape[-1]
        self.count = x.size // self.channels  # M, the positions each channel's statistics run over
        widest = max(_WIDE_ROW // self.channels, 1)
        self.repeats = next(r for r in range(widest, 0, -1) if self.count % r == 0)

    def view(self, array):
        return array.reshape(-1, self.repeats * self.channels)

    def tile(self, per_channel):
        return np.tile(per_channel, self.repeats)

    def column_sums(self, matrix):
        """The per-channel sums of a matrix made by :meth:`view`."""
        return column_sums(matrix).reshape(self.repeats, self.channels).sum(axis=0)


def _normalize(x, mean, inv_std, gamma, beta):
    """gamma · (x - mean) · inv_std + beta, written as x · scale + shift like Keras' batch_normalization."""
    rows = _ChannelRows(x)
    scale = inv_std * gamma
    shift = beta - mean * scale
    y = rows.view(x) * rows.tile(scale)
    y += rows.tile(shift)  # in place: one full-size temporary fewer
    return y.reshape(x.shape)


def batchnorm_forward_training(x, gamma, beta, epsilon):
    """(y, mean, var, inv_std): normalize with the batch statistics; var is the biased variance."""
    check_channels(x, gamma=gamma, beta=beta)
    rows = _ChannelRows(x)
    count = rows.count
    mean = rows.column_sums(rows.view(x)) / count
    centered = rows.view(x) - rows.tile(mean)
    var = rows.column_sums(np.square(centered, out=centered)) / count
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
    rows = _ChannelRows(x)
    dy_rows = rows.view(dy)
    x_hat = rows.view(x) - rows.tile(mean)
    x_hat *= rows.tile(inv_std)
    dbeta = rows.column_sums(dy_rows)
    dgamma = rows.column_sums(dy_rows * x_hat)
    count = rows.count
    dx = x_hat
    dx *= rows.tile(dgamma / count)
    np.subtract(dy_rows, dx, out=dx)
    dx -= rows.tile(dbeta / count)
    dx *= rows.tile(gamma * inv_std)
    return dx.reshape(x.shape), dgamma, dbeta
