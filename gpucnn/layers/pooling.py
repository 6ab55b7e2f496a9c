"""AveragePooling2D and GlobalAveragePooling2D (NHWC, Keras arguments and defaults)."""
from gpucnn.layers.base import Layer, check_data_format, check_rank
from gpucnn.layers.convolutional import Pooling2D


class AveragePooling2D(Pooling2D):
    """Average pooling; ``strides=None`` means ``pool_size``.  With ``padding='same'`` a window's average
    is over its cells inside the input only (Keras and TensorFlow do not count the padding)."""

    default_name = "average_pooling2d"

    def call(self, x, training=False):
        self._cache = tuple(x.shape) if training else None
        return self.ops.average_pool_forward(x, self.pool_size, self.strides, self.padding)

    def backward(self, dy, need_input_grad=True):
        x_shape = self.cached()
        if not need_input_grad:
            return None
        return self.ops.average_pool_backward(dy, x_shape, self.pool_size, self.strides, self.padding)


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over height and width: (batch, channels), or (batch, 1, 1, channels)
    with ``keepdims=True``."""

    default_name = "global_average_pooling2d"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format)
        if not isinstance(keepdims, bool):
            raise TypeError(f"Argument `keepdims` must be True or False, got {keepdims!r}.")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, height, width, channels)")
        return (1, 1, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def call(self, x, training=False):
        self._cache = tuple(x.shape) if training else None
        y = self.ops.global_average_pool_forward(x)
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def backward(self, dy, need_input_grad=True):
        x_shape = self.cached()
        if not need_input_grad:
            return None
        return self.ops.global_average_pool_backward(dy.reshape(x_shape[0], x_shape[3]), x_shape)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}
