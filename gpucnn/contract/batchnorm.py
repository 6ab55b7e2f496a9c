"""Batch normalization: the checks of ``batchnorm_forward_training``, ``batchnorm_forward_inference``
and ``batchnorm_backward`` (per-channel arrays over the last axis of x)."""
from .shapes import check_shape


def check_channels(x, **per_channel):
    """The channel count of ``x``, after checking that each ``per_channel`` array has one value per channel."""
    if x.ndim < 2:
        raise ValueError(f"Argument `x` must have a batch axis and a channel axis, got shape {tuple(x.shape)}.")
    for name, array in per_channel.items():
        check_shape(name, array, (x.shape[-1],), f"(the channels of x {tuple(x.shape)})")
    return x.shape[-1]


def check_batchnorm_backward(dy, x, gamma, mean, inv_std):
    channels = check_channels(x, gamma=gamma, mean=mean, inv_std=inv_std)
    check_shape("dy", dy, x.shape, "(the shape of x)")
    return channels
