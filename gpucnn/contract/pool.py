"""2-D max-pooling: the checks of ``max_pool_forward`` and ``max_pool_backward``.  Each returns the
window geometry."""
from .shapes import NHWC, check_nhwc_shape, check_rank, check_shape, window_layout


def check_max_pool_forward(x, pool_size, strides, padding):
    check_rank("x", x, 4, NHWC)
    return window_layout(x.shape, pool_size, strides, padding, window_name="pool_size")


def check_max_pool_backward(dy, argmax, x_shape, pool_size, strides, padding):
    """(x_shape as ints, geometry)."""
    x_shape = check_nhwc_shape("x_shape", x_shape)
    geometry = window_layout(x_shape, pool_size, strides, padding, window_name="pool_size")
    pooled = (x_shape[0], geometry.out_h, geometry.out_w, x_shape[3])
    check_shape("dy", dy, pooled, f"(the pooled shape of x_shape {x_shape})")
    check_shape("argmax", argmax, pooled, f"(the pooled shape of x_shape {x_shape})")
    return x_shape, geometry
