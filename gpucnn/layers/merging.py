"""Merge layers: Add and Concatenate, which take a list of tensors (Keras ``keras.layers.Add`` /
``Concatenate``).

A merge layer joins branches of a graph of layers, so it cannot sit in a ``Sequential`` stack, which
hands one tensor from layer to layer: building one for a single input shape is an error that says so.
``backward(dy)`` returns one gradient per input, in input order.
"""
from gpucnn import backend
from gpucnn.layers.base import Layer, format_shape


class Merge(Layer):
    """Base of the merge layers: input shapes are a list of batch-less shapes, one per input."""

    merges_inputs = True

    def _check_shapes(self, input_shapes):
        """``input_shapes`` as a list of tuples, or an error naming the layer and the shapes."""
        if not isinstance(input_shapes, (list, tuple)) or not input_shapes or \
                not all(isinstance(s, (list, tuple)) for s in input_shapes):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) merges a list of at least 2 tensors, got one "
                f"input of shape {format_shape(input_shapes)}. A Sequential model passes a single tensor "
                f"from layer to layer: merge layers join branches of a graph of layers, so call this one on "
                f"a list of tensors instead of adding it to a Sequential model.")
        shapes = [tuple(s) for s in input_shapes]
        if len(shapes) < 2:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) needs at least 2 inputs, got "
                             f"{len(shapes)}: {[format_shape(s) for s in shapes]}.")
        return shapes

    def build(self, input_shape):
        self.input_shape = self._check_shapes(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def eager_call(self, inputs, training):
        """Run the layer on a list of batches, building it from their shapes on first use."""
        if not isinstance(inputs, (list, tuple)):
            self._check_shapes(tuple(getattr(inputs, "shape", ()))[1:])
        current = backend.current()
        inputs = [current.asarray(x) for x in inputs]
        if not self.built:
            self.build([tuple(x.shape[1:]) for x in inputs])
        return self.call(inputs, training=training)


class Add(Merge):
    """The elementwise sum of its inputs (all of one shape); each input's gradient is the output's."""

    default_name = "add"

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(f"Layer '{self.name}' (Add) needs inputs of one shape, got "
                             f"{', '.join(format_shape(s) for s in shapes)}. Fix: make the branches end in "
                             f"the same shape (e.g. a 1x1 Conv2D projection on the shortcut).")
        return shapes[0]

    def call(self, inputs, training=False):
        self._cache = len(inputs) if training else None
        return self.ops.add_forward(list(inputs))

    def backward(self, dy, need_input_grad=True):
        """The same array ``dy`` for every input (no copy): treat it as read-only and accumulate the
        gradients of a tensor used twice into a buffer of your own (``ops.add_inplace``)."""
        count = self.cached()
        return [dy] * count if need_input_grad else None


class Concatenate(Merge):
    """Its inputs joined along the channels axis (``axis=-1``, the last; the other axes must match)."""

    default_name = "concatenate"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Argument `axis` must be an int, got {axis!r}.")
        self.axis = axis

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        rank = len(shapes[0])
        if self.axis not in (-1, rank):
            raise ValueError(f"Layer '{self.name}' (Concatenate): argument `axis={self.axis}` is not "
                             f"supported; gpucnn joins along the channels axis only. Fix: use axis=-1 "
                             f"(or {rank}, the same axis for these rank-{rank + 1} inputs).")
        if any(len(s) != rank or s[:-1] != shapes[0][:-1] for s in shapes[1:]):
            raise ValueError(f"Layer '{self.name}' (Concatenate) needs inputs that match in every axis but "
                             f"the last, got {', '.join(format_shape(s) for s in shapes)}.")
        return shapes[0][:-1] + (sum(s[-1] for s in shapes),)

    def call(self, inputs, training=False):
        self._cache = [x.shape[-1] for x in inputs] if training else None
        return self.ops.concatenate_forward(list(inputs))

    def backward(self, dy, need_input_grad=True):
        sizes = self.cached()
        return self.ops.concatenate_backward(dy, sizes) if need_input_grad else None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
