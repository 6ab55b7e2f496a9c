"""2-D convolution: the checks of ``conv2d_forward``, ``conv2d_backward_data`` and
``conv2d_backward_filter`` (NHWC activations, HWIO kernels), ``precision`` included.  Each returns the
window geometry."""
from .activations import check_activation
from .precision import check_op_precision
from .shapes import NHWC, check_nhwc_shape, check_rank, check_shape, normalize_tuple, window_layout

HWIO = "an HWIO conv kernel: kh, kw, in_channels, filters"


def check_kernel(w, channels):
    """ValueError unless ``w`` is an HWIO kernel over ``channels`` input channels."""
    check_rank("w", w, 4, HWIO)
    if w.shape[2] != channels:
        raise ValueError(f"Argument `w` has {w.shape[2]} input channels but the input has {channels}. "
                         f"Fix: use a kernel of shape (kh, kw, {channels}, filters).")


def check_output_grad(dy, batch, geometry, filters):
    check_rank("dy", dy, 4, NHWC)
    check_shape("dy", dy, (batch, geometry.out_h, geometry.out_w, filters), "(the output shape)")


def check_conv2d_forward(x, w, b, strides, padding, activation, precision):
    check_activation(activation)
    check_op_precision(precision)
    check_rank("x", x, 4, NHWC)
    check_kernel(w, x.shape[3])
    filters = w.shape[3]
    if b is not None:
        check_shape("b", b, (filters,), "(one bias per filter)")
    return window_layout(x.shape, w.shape[:2], strides, padding)


def check_conv2d_backward_data(dy, w, x_shape, strides, padding, precision):
    """(x_shape as ints, geometry)."""
    check_op_precision(precision)
    x_shape = check_nhwc_shape("x_shape", x_shape)
    check_kernel(w, x_shape[3])
    geometry = window_layout(x_shape, w.shape[:2], strides, padding)
    check_output_grad(dy, x_shape[0], geometry, w.shape[3])
    return x_shape, geometry


def check_conv2d_backward_filter(x, dy, kernel_size, strides, padding, precision):
    check_op_precision(precision)
    check_rank("x", x, 4, NHWC)
    check_rank("dy", dy, 4, NHWC)
    geometry = window_layout(x.shape, normalize_tuple(kernel_size, 2, "kernel_size"), strides, padding)
    check_output_grad(dy, x.shape[0], geometry, dy.shape[3])
    return geometry
