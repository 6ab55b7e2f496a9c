"""2-D average pooling and its global form: the checks of ``average_pool_forward``,
``average_pool_backward``, ``global_average_pool_forward`` and ``global_average_pool_backward``."""
from .shapes import NHWC, check_nhwc_shape, check_rank, check_shape, window_layout


def check_average_pool_forward(x, pool_size, strides, padding):
    check_rank("x", x, 4, NHWC)
    return window_layout(x.shape, pool_size, strides, padding, window_name="pool_size")


def check_average_pool_backward(dy, x_shape, pool_size, strides, padding):
    """(x_shape as ints, geometry)."""
    x_shape = check_nhwc_shape("x_shape", x_shape)
    geometry = window_layout(x_shape, pool_size, strides, padding, window_name="pool_size")
    check_shape("dy", dy, (x_shape[0], geometry.out_h, geometry.out_w, x_shape[3]),
                f"(the pooled shape of x_shape {x_shape})")
    return x_shape, geometry


def check_global_average_pool_forward(x):
    check_rank("x", x, 4, NHWC)
    if 0 in x.shape[1:3]:
        raise ValueError(f"Argument `x` must have images of at least 1x1 pixels, got shape {tuple(x.shape)}.")


def check_global_average_pool_backward(dy, x_shape):
    """x_shape as ints."""
    x_shape = check_nhwc_shape("x_shape", x_shape)
    n, _, _, c = x_shape
    check_shape("dy", dy, (n, c), f"(batch, channels of x_shape {x_shape})")
    return x_shape
