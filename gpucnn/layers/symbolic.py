"""Symbolic tensors: what calling a layer on ``gpucnn.Input(...)`` returns, as Keras 3's KerasTensor.

A :class:`SymbolicTensor` has a shape (with the batch axis as None) and remembers the :class:`Node` that
produced it: the layer, the tensors it was called on, and the index of that call among the layer's
calls (Keras' node index, shown in ``summary()``'s "Connected to" column).  Calling a layer on symbolic
tensors builds the layer for their shapes and returns a new symbolic tensor: no array is computed.
``gpucnn.Model(inputs, outputs)`` (:mod:`gpucnn.functional`) walks these records back from the output.
A layer called twice has two nodes and one set of weights, so the two calls share them.
"""
import weakref


class SymbolicTensor:
    """A placeholder for a batch of activations while a model is being built: ``shape`` (batch axis
    None, as Keras prints it), ``node`` (the layer call that produced it, None for an Input)."""

    def __init__(self, shape, node=None):
        self.shape = (None,) + tuple(shape)
        self.node = node

    def describe(self):
        """Where the tensor comes from, for error messages: "output of layer 'conv2d' (None, 8, 8, 4)"."""
        if self.node is None:
            return f"input '{self.name}' {self.shape}"
        return f"output of layer '{self.node.layer.name}' {self.shape}"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"A symbolic tensor ({self.describe()}) has no values: it stands for a batch while "
                        f"a model is built. Fix: build a model with gpucnn.Model(inputs, outputs) and call "
                        f"model.predict(x) (or model(x)) on data.")

    def __repr__(self):
        return f"<SymbolicTensor {self.describe()}>"


class Node:
    """One call of ``layer`` on ``inputs`` (a list of symbolic tensors); ``merge`` says whether it was
    called on a list (merge layers) rather than on one tensor; ``index`` counts the layer's calls."""

    def __init__(self, layer, inputs, merge, index):
        self.layer = layer
        self.inputs = list(inputs)
        self.merge = merge
        self.index = index
        self.output = SymbolicTensor(layer.output_shape, node=self)


# How often each layer has been called symbolically (Keras keeps this list on the layer as
# ``_inbound_nodes``); weak keys so that counting keeps no layer alive.
_call_counts = weakref.WeakKeyDictionary()


def is_symbolic_call(x):
    """Whether a layer is called on symbolic tensors (one, or a list holding at least one)."""
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and any(isinstance(item, SymbolicTensor) for item in x)


def call_layer(layer, x):
    """Record ``layer`` called on the symbolic tensor(s) ``x`` and return its symbolic output; builds
    the layer on first use.  A layer already built (an earlier call, or ``build``) must get the same
    input shapes again: its weights are shared between its calls."""
    merge = isinstance(x, (list, tuple))
    inputs = list(x) if merge else [x]
    if merge and not layer.merges_inputs:
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}) takes one tensor, got a list of "
                        f"{len(inputs)}. Fix: call it on one tensor, or join the tensors first with Add() or "
                        f"Concatenate().")
    for index, item in enumerate(inputs):
        if not isinstance(item, SymbolicTensor):
            raise TypeError(
                f"Layer '{layer.name}' ({type(layer).__name__}) was called on a mix of symbolic tensors and "
                f"arrays: input {index} is a {type(item).__name__}"
                f"{' of shape ' + str(tuple(item.shape)) if hasattr(item, 'shape') else ''}. While "
                f"building a model, call layers only on gpucnn.Input(...) and on the outputs of other "
                f"layer calls.")
    shapes = [tensor.shape[1:] for tensor in inputs]
    shape = shapes if merge else shapes[0]
    if not layer.built:
        layer.build(shape)
    elif _as_shapes(layer.input_shape) != _as_shapes(shape):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) was built for inputs "
                         f"{_format(layer.input_shape)} and is now called on "
                         f"{', '.join(t.describe() for t in inputs)}. A layer called twice shares its "
                         f"weights, so it needs the same input shapes. Fix: use a new layer for these "
                         f"inputs.")
    count = _call_counts.get(layer, 0)
    _call_counts[layer] = count + 1
    return Node(layer, inputs, merge, count).output


def _as_shapes(shape):
    """A layer's input shape as a comparable value: a tuple, or a list of tuples for merge layers."""
    if isinstance(shape, list):
        return [tuple(s) for s in shape]
    return tuple(shape)


def _format(shape):
    if isinstance(shape, list):
        return ", ".join(str((None,) + tuple(s)) for s in shape)
    return str((None,) + tuple(shape))
