"""Conv2D, MaxPooling2D and the base of the pooling layers (NHWC, HWIO kernels, Keras arguments
and defaults)."""
from gpucnn import activations
from gpucnn.contract.shapes import conv_output_length, normalize_padding, normalize_tuple, window_misfit
from gpucnn.layers.base import KernelLayer, Layer, check_data_format, check_positive_output, check_rank, positive_int

_NHWC = "(batch, height, width, channels)"


def _window_output_shape(layer, input_shape, window, strides, padding, channels, what):
    check_rank(layer, input_shape, 3, _NHWC)
    height, width = input_shape[:2]
    out = (conv_output_length(height, window[0], strides[0], padding),
           conv_output_length(width, window[1], strides[1], padding), channels)
    return check_positive_output(layer, out, window_misfit(height, width, window, what))


class Conv2D(KernelLayer):
    """2-D convolution: ``y = activation(conv(x, kernel) + bias)``, kernel shape (kh, kw, in, filters)."""

    default_name = "conv2d"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = normalize_tuple(strides, 2, "strides")
        self.padding = normalize_padding(padding)
        check_data_format(data_format)
        if normalize_tuple(dilation_rate, 2, "dilation_rate") != (1, 1):
            raise ValueError(f"Argument `dilation_rate` must be (1, 1): dilated convolution is not "
                             f"implemented, got {dilation_rate!r}.")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def compute_output_shape(self, input_shape):
        return _window_output_shape(self, input_shape, self.kernel_size, self.strides, self.padding,
                                    self.filters, "kernel_size")

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight("kernel", self.kernel_size + (input_shape[-1], self.filters),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        super().build(input_shape)

    def forward_op(self, x, kernel, bias, activation):
        return self.ops.conv2d_forward(x, kernel, bias, self.strides, self.padding,
                                       activation=activation, alpha=self.alpha)

    def kernel_gradient(self, x, dz):
        return self.ops.conv2d_backward_filter(x, dz, self.kernel_size, self.strides, self.padding)

    def input_gradient(self, dz, x_shape):
        return self.ops.conv2d_backward_data(dz, self.kernel.value, x_shape, self.strides, self.padding)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}


class Pooling2D(Layer):
    """The arguments shared by the 2-D pooling layers (Keras): ``strides=None`` means ``pool_size``."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides")
        self.padding = normalize_padding(padding)
        check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return _window_output_shape(self, input_shape, self.pool_size, self.strides, self.padding,
                                    input_shape[-1] if input_shape else 0, "pool_size")

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


class MaxPooling2D(Pooling2D):
    """Max pooling; ``strides=None`` means ``pool_size`` (Keras).  Ties go to the first maximum in
    row-major window order."""

    default_name = "max_pooling2d"

    def call(self, x, training=False):
        y, argmax = self.ops.max_pool_forward(x, self.pool_size, self.strides, self.padding)
        self._cache = (tuple(x.shape), argmax) if training else None
        return y

    def backward(self, dy, need_input_grad=True):
        x_shape, argmax = self.cached()
        if not need_input_grad:
            return None
        return self.ops.max_pool_backward(dy, argmax, x_shape, self.pool_size, self.strides, self.padding)
