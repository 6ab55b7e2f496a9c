"""Input, Dense, Flatten, Activation, ReLU, LeakyReLU and Dropout."""
import math

import numpy as np

from gpucnn import activations, utils
from gpucnn.contract.activations import check_alpha
from gpucnn.counters import StepCounter
from gpucnn.layers.base import (
    KernelLayer,
    Layer,
    _check_input_shape,
    _unique_name,
    check_data_format,
    format_shape,
    positive_int,
)
from gpucnn.layers.symbolic import SymbolicTensor


class Input(SymbolicTensor):
    """The model's input, as ``keras.Input(shape=...)``: a symbolic tensor of ``shape`` (one sample,
    without the batch axis) to call layers on and pass to ``gpucnn.Model(inputs, outputs)``, or the
    first entry of a Sequential model.  Its ``shape`` has the batch axis first, as None.  It holds no
    weights; summary() lists it as Keras does for a functional model only."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
        if shape is None and batch_shape is not None:
            shape, batch_size = tuple(batch_shape)[1:], tuple(batch_shape)[0]
        if shape is None:
            raise ValueError("Input: argument `shape` is required, the shape of one sample without the "
                             "batch axis, e.g. Input(shape=(100, 100, 1)).")
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"Input: argument `dtype` must be 'float32' (the only dtype gpucnn computes "
                             f"in), got {dtype!r}.")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size <= 0):
            raise ValueError(f"Argument `batch_size` must be a positive int or None, got {batch_size!r}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Argument `name` must be a non-empty string, got {name!r}.")
        super().__init__(_check_input_shape(shape))
        self.batch_size = batch_size
        self.name = name or _unique_name("input_layer")


InputLayer = Input


class Dense(KernelLayer):
    """Fully connected layer ``y = activation(x @ kernel + bias)``, kernel shape (in, units).

    Unlike Keras, which applies Dense to the last axis of any input, gpucnn requires a flat
    (batch, features) input: put a ``Flatten()`` layer between convolution/pooling layers and Dense.
    """

    default_name = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Layer '{self.name}' (Dense) expects a flat input of shape (batch, features), got "
                f"{format_shape(input_shape)}. Fix: add a Flatten() layer before this Dense layer, "
                f"e.g. model.add(Flatten()).")
        return (self.units,)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[0], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
        super().build(input_shape)

    def forward_op(self, x, kernel, bias, activation):
        return self.ops.dense_forward(x, kernel, bias, activation=activation, alpha=self.alpha)

    def kernel_gradient(self, x, dz):
        return self.ops.dense_backward_weights(x, dz)

    def input_gradient(self, dz, x_shape):
        return self.ops.dense_backward_data(dz, self.kernel.value)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer}


class Flatten(Layer):
    """Reshapes (batch, ...) to (batch, features); a view, no copy."""

    default_name = "flatten"

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        if not input_shape:
            raise ValueError(f"Layer '{self.name}' (Flatten) needs inputs with at least one axis besides "
                             f"the batch axis.")
        return (math.prod(input_shape),)

    def call(self, x, training=False):
        self._cache = tuple(x.shape) if training else None
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_input_grad=True):
        x_shape = self.cached()
        return dy.reshape(x_shape) if need_input_grad else None


class Activation(Layer):
    """Applies an activation function by name: linear, relu, leaky_relu, sigmoid, tanh or softmax."""

    default_name = "activation"

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=False):
        y = activations.forward(self.ops, self.effective_activation(), x, self.alpha)
        self._cache = y if training else None
        return y

    def backward(self, dy, need_input_grad=True):
        y = self.cached()
        return self.activation_backward(dy, y) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    """``max(x, 0)``, or ``negative_slope * x`` below zero when ``negative_slope > 0``."""

    default_name = "re_lu"

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        if max_value is not None or threshold != 0.0:
            raise ValueError(f"ReLU: only max_value=None and threshold=0.0 are implemented, got "
                             f"max_value={max_value!r}, threshold={threshold!r}.")
        negative_slope = check_alpha(negative_slope, "negative_slope")
        super().__init__("leaky_relu" if negative_slope > 0 else "relu", **kwargs)
        self.negative_slope = negative_slope
        self.alpha = self.negative_slope

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return {**config, "negative_slope": self.negative_slope}


class LeakyReLU(Activation):
    """``x`` above zero, ``negative_slope * x`` below (Keras 3 default slope 0.3; ``alpha`` is the
    Keras 2 name of the same argument)."""

    default_name = "leaky_re_lu"

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__("leaky_relu", **kwargs)
        self.negative_slope = self.alpha = check_alpha(negative_slope if alpha is None else alpha, "negative_slope")

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return {**config, "negative_slope": self.negative_slope}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by 1 / (1 - rate).

    The mask comes from a counter-based hash of (seed, step, element index), regenerated in backward
    instead of stored.  The step is counted on the device (:class:`gpucnn.counters.StepCounter`),
    advanced by every training call, so a training step replayed from a CUDA graph draws a new mask
    each time.
    """

    default_name = "dropout"

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Argument `rate` must be a float in [0, 1), got {rate!r}.")
        if noise_shape is not None:
            raise ValueError("Argument `noise_shape` is not implemented; leave it None.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"Argument `seed` must be a non-negative int or None, got {seed!r}.")
        self.rate = float(rate)
        self.seed = seed
        self._base_seed = None
        self._steps = StepCounter()

    def _mask_seed(self):
        if self._base_seed is None:
            self._base_seed = self.seed if self.seed is not None else int(utils.rng().integers(2**32))
        return self._base_seed % 2**32

    def get_seed_state(self):
        """The seed and step count the masks derive from (saved with checkpoints, for exact resume);
        reading the count waits for the device."""
        return {"base_seed": self._base_seed, "step": self._steps.value}

    def set_seed_state(self, state):
        self._base_seed = state["base_seed"]
        self._steps.value = state["step"]

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            self._cache = 0 if training else None  # backward of an identity needs no mask
            return x
        self._cache = self._steps.advance()
        return self.ops.dropout_forward(x, self.rate, self._mask_seed(), self._cache)

    def backward(self, dy, need_input_grad=True):
        step = self.cached()
        if not need_input_grad:
            return None
        return dy if self.rate == 0.0 else self.ops.dropout_backward(dy, self.rate, self._mask_seed(), step)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
