"""The Layer base class and the Weight it owns.

A layer follows Keras' life cycle: ``__init__`` validates arguments, ``build(input_shape)`` creates the
weights once the input shape is known, ``call(x, training)`` runs the forward pass and, when training,
keeps what ``backward`` needs; ``backward(dy)`` returns the gradient with respect to the input and stores
each weight's gradient in ``weight.grad``.  Shapes given to and returned by ``build`` and
``compute_output_shape`` leave out the batch axis.  Layers never call kernels directly: they call the
active backend's ops (``gpucnn.reference`` or ``gpucnn.cuda``).
"""
import collections

import numpy as np

from gpucnn import activations, backend, initializers
from gpucnn.layers import symbolic

_name_counts = collections.Counter()


def _unique_name(base):
    """Keras-style automatic names: conv2d, conv2d_1, conv2d_2, ..."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def format_shape(shape):
    """A batch-less shape as Keras prints it, with the batch axis as None: (None, 98, 98, 512)."""
    return str((None,) + tuple(shape))


class Weight:
    """A variable of a layer: ``value`` (an array of the backend, possibly a view into the model's flat
    parameter buffer), ``grad`` (its gradient after ``backward``) and whether it is a trainable kind of
    variable (BatchNormalization's moving statistics are not); the optimizer trains it when that and
    its layer's ``trainable`` are both true."""

    def __init__(self, name, value, trainable):
        self.name = name
        self.value = value
        self.trainable = trainable
        self.grad = None

    @property
    def shape(self):
        return tuple(self.value.shape)

    def assign(self, array):
        """Copy ``array`` into this weight in place (so views into flat buffers stay valid)."""
        self.value[...] = backend.current().asarray(array)

    def set_grad(self, gradient):
        if self.grad is None:
            self.grad = gradient
        else:
            self.grad[...] = gradient

    def numpy(self):
        return np.array(backend.current().to_numpy(self.value), dtype=np.float32)

    def __repr__(self):
        return f"<Weight {self.name} shape={self.shape} trainable={self.trainable}>"


def assign_weights(weights, arrays, owner):
    """Copy ``arrays`` into ``weights`` (same order), all or nothing: the count, every array's
    conversion (real numbers only: a complex value would lose its imaginary part) and shape are
    checked, and every array is on the backend, before the first weight changes.  ``owner`` names the
    model or layer in error messages."""
    arrays = list(arrays)
    if len(arrays) != len(weights):
        raise ValueError(f"{owner}: set_weights expects {len(weights)} arrays (one per weight, in "
                         f"get_weights() order: {[w.shape for w in weights]}), got {len(arrays)}.")
    converted = []
    for weight, array in zip(weights, arrays):
        try:
            host = np.asarray(backend.current().to_numpy(array))
        except (TypeError, ValueError) as error:
            raise TypeError(f"{owner}: set_weights got an array for weight '{weight.name}' that is not "
                            f"a numeric array ({error}). Fix: pass NumPy arrays in get_weights() "
                            f"order.") from None
        if not (np.issubdtype(host.dtype, np.floating) or np.issubdtype(host.dtype, np.integer)):
            raise TypeError(f"{owner}: set_weights got dtype {host.dtype} for weight '{weight.name}'; "
                            f"weights hold real numbers. Fix: pass float32 arrays"
                            f"{' (the real part: np.real(w))' if host.dtype.kind == 'c' else ''}.")
        if host.shape != weight.shape:
            raise ValueError(f"Weight '{weight.name}' has shape {weight.shape}, but set_weights got "
                             f"an array of shape {host.shape}. Fix: pass arrays in get_weights() "
                             f"order and shapes.")
        converted.append(backend.current().asarray(host))
    for weight, array in zip(weights, converted):
        weight.assign(array)


class Layer:
    """Base class of every layer.  Subclasses set ``default_name`` and implement ``compute_output_shape``,
    ``call``, ``backward`` and ``get_config``; layers with weights also override ``build``."""

    default_name = "layer"
    merges_inputs = False  # True for layers called on a list of tensors (Add, Concatenate)
    # Layers with an `activation` argument set these.  While an execution unit (gpucnn.execution)
    # runs the layer with ``output_logits = True`` it skips its activation: the model's output layer
    # handing logits to a fused loss, or a Conv2D whose ReLU is applied after pooling.
    activation = "linear"
    alpha = activations.DEFAULT_LEAKY_ALPHA

    def __init__(self, name=None, trainable=True, input_shape=None, dtype=None, input_dim=None,
                 batch_input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}: gpucnn does not implement them. Fix: remove them.")
        # Keras' other ways of giving the first layer its input shape.
        if input_dim is not None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if dtype not in (None, "float32", np.float32):
            raise ValueError(f"Argument `dtype` must be 'float32' (the only dtype gpucnn computes in), "
                             f"got {dtype!r}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Argument `name` must be a non-empty string, got {name!r}.")
        self.name = name or _unique_name(self.default_name)
        self.trainable = bool(trainable)
        self.input_shape_argument = _check_input_shape(input_shape) if input_shape is not None else None
        self.built = False
        self.weights = []
        self.input_shape = None
        self.output_shape = None
        self.output_logits = False
        self._cache = None

    # -- construction -------------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer, trainable=True):
        value = backend.current().asarray(initializers.get(initializer)(tuple(shape)))
        weight = Weight(f"{self.name}/{name}", value, trainable)
        self.weights.append(weight)
        return weight

    def build(self, input_shape):
        """Create weights for ``input_shape`` (batch-less).  Subclasses add weights, then call this."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # -- computation --------------------------------------------------------------------------------
    def __call__(self, x, training=False):
        """Run the layer on a batch, building it from the batch's shape on first use; called on a
        symbolic tensor (``gpucnn.Input(...)`` or a layer's symbolic output), record the call in the
        graph of a model being built and return the symbolic output (:mod:`gpucnn.layers.symbolic`)."""
        if symbolic.is_symbolic_call(x):
            return symbolic.call_layer(self, x)
        return self.eager_call(x, training)

    def eager_call(self, x, training):
        """``__call__`` on a batch of data."""
        x = backend.current().asarray(x)
        if not self.built:
            self.build(tuple(x.shape[1:]))
        return self.call(x, training=training)

    def call(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, need_input_grad=True):
        raise NotImplementedError

    def cached(self):
        if self._cache is None:
            raise RuntimeError(f"Layer '{self.name}': backward() needs a preceding call(x, training=True).")
        return self._cache

    @property
    def ops(self):
        return backend.current().ops

    # -- activation handling shared by Conv2D, Dense and Activation -----------------------------------
    def effective_activation(self):
        return "linear" if self.output_logits else self.activation

    def split_activation(self):
        """(name fused into the op's epilogue, name applied as a separate op or None)."""
        act = self.effective_activation()
        return (act, None) if act in activations.FUSABLE else ("linear", act)

    def activation_backward(self, dy, y):
        return activations.backward(self.ops, self.effective_activation(), dy, y, self.alpha)

    # -- weights and config -------------------------------------------------------------------------
    # As in Keras, ``layer.trainable = False`` freezes a layer at any time (also after it is built): its
    # weights move to non_trainable_weights and the optimizer leaves them alone.
    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        trainable = self.trainable_weights
        return [w for w in self.weights if not any(w is t for t in trainable)]

    def count_params(self):
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, arrays):
        """Set every weight from arrays in ``get_weights()`` order, all or nothing."""
        assign_weights(self.weights, arrays, f"Layer '{self.name}'")

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self.input_shape_argument is not None:
            config["input_shape"] = list(self.input_shape_argument)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "input_shape" in config:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class KernelLayer(Layer):
    """A layer ``y = activation(op(x, kernel) + bias)`` (Conv2D, Dense): the shared forward with the
    activation fused into the op when possible, and the shared backward.  Subclasses provide the three
    ops through ``forward_op``, ``kernel_gradient`` and ``input_gradient``."""

    use_bias = True
    kernel = bias = None

    def forward_op(self, x, kernel, bias, activation):
        raise NotImplementedError

    def kernel_gradient(self, x, dz):
        raise NotImplementedError

    def input_gradient(self, dz, x_shape):
        raise NotImplementedError

    def call(self, x, training=False):
        fused, separate = self.split_activation()
        y = self.forward_op(x, self.kernel.value, self.bias.value if self.use_bias else None, fused)
        if separate:
            y = activations.forward(self.ops, separate, y)
        self._cache = (x, y) if training else None
        return y

    def backward(self, dy, need_input_grad=True):
        x, y = self.cached()
        dz = self.activation_backward(dy, y)
        self.kernel.set_grad(self.kernel_gradient(x, dz))
        if self.use_bias:
            self.bias.set_grad(self.ops.bias_backward(dz))
        return self.input_gradient(dz, tuple(x.shape)) if need_input_grad else None


def _check_input_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"Argument `input_shape` must be a tuple of ints without the batch axis, e.g. "
                        f"(100, 100, 1), got {shape!r}.") from None
    if not shape or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                            for s in shape):
        raise ValueError(f"Argument `input_shape` must be a non-empty tuple of positive ints without the "
                         f"batch axis, e.g. (100, 100, 1), got {shape!r}.")
    return tuple(int(s) for s in shape)


def positive_int(value, name):
    """``value`` as an int (NumPy integers accepted, as Keras does), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Argument `{name}` must be a positive int, got {value!r}.")
    return int(value)


def check_data_format(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"Argument `data_format` must be 'channels_last' (NHWC, the only layout gpucnn "
                         f"implements), got {data_format!r}. Fix: transpose your images to NHWC.")


def check_rank(layer, input_shape, rank, hint):
    """Raise a ValueError when a batch-less ``input_shape`` does not have ``rank`` axes."""
    if len(input_shape) != rank:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) expects inputs of shape {hint}, "
                         f"got {format_shape(input_shape)}. Fix: give input_shape= (or the data) that "
                         f"shape without the batch axis, e.g. add a channel axis with x[..., None].")


def check_positive_output(layer, output_shape, why):
    if any(s <= 0 for s in output_shape):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) would produce an empty output "
                         f"{format_shape(output_shape)}: {why}")
    return output_shape
