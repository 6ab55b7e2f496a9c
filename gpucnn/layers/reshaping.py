"""ZeroPadding2D (NHWC, Keras arguments)."""
from gpucnn.contract.padding import normalize_zero_padding
from gpucnn.layers.base import Layer, check_data_format, check_rank


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around each image.  ``padding``: an int (all four sides), a tuple
    ``(rows, cols)`` (top and bottom, left and right) or ``((top, bottom), (left, right))``."""

    default_name = "zero_padding2d"

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = normalize_zero_padding(padding)
        check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        check_rank(self, input_shape, 3, "(batch, height, width, channels)")
        (top, bottom), (left, right) = self.padding
        height, width, channels = input_shape
        return top + height + bottom, left + width + right, channels

    def call(self, x, training=False):
        return self.ops.zero_padding2d_forward(x, self.padding)

    def backward(self, dy, need_input_grad=True):
        return self.ops.zero_padding2d_backward(dy, self.padding) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "padding": [list(pair) for pair in self.padding]}
