"""The order of layer work in a forward/backward pass: execution units, with the fused Conv2D-ReLU +
MaxPooling2D path.

A model's ``execution_plan()`` is a list of units that ``forward`` runs in order and ``backward`` in
reverse.  Usually one unit is one layer.  A ``Conv2D(activation='relu')`` directly followed by a
``MaxPooling2D`` becomes one :class:`ConvReluPool` unit that uses ``ReLU(MaxPool(z)) = MaxPool(ReLU(z))``
(ReLU is monotone, so it commutes with a max): the convolution runs without its activation, the pooling
picks the maxima of the pre-activations, and the ReLU runs on the pooled tensor, which is pool_h·pool_w
times smaller (9x for the article's 3x3 pools).  Backward mirrors it.  The op contract is unchanged: the
unit only calls the layers and the ``relu_*`` ops in another order.
"""
import contextlib

from gpucnn.layers.convolutional import Conv2D, MaxPooling2D


class _Unit:
    """What every unit does with its layers' saved tensors (``layer._cache``): keep them after forward,
    put them back before backward, drop them on ``release``."""

    def __init__(self, layers, name):
        self.layers = tuple(layers)
        self.name = name
        self._caches = (None,) * len(self.layers)

    def _keep_caches(self):
        self._caches = tuple(layer._cache for layer in self.layers)

    def _restore_caches(self):
        for layer, cache in zip(self.layers, self._caches):
            layer._cache = cache

    def release(self):
        """Drop what the unit and its layers saved for backward."""
        for layer in self.layers:
            layer._cache = None
        self._caches = (None,) * len(self.layers)


class LayerUnit(_Unit):
    """One layer, run on its own; with ``output_logits`` it computes and differentiates the layer's
    output without its activation (the model's output layer handing logits to a fused loss)."""

    def __init__(self, layer, output_logits=False):
        super().__init__((layer,), layer.name)
        self._activation = _pre_activation if output_logits else contextlib.nullcontext

    def forward(self, x, training):
        with self._activation(self.layers[0]) as layer:
            y = layer.call(x, training=training)
        self._keep_caches()
        return y

    def backward(self, dy, need_input_grad):
        self._restore_caches()
        with self._activation(self.layers[0]) as layer:
            return layer.backward(dy, need_input_grad=need_input_grad)


@contextlib.contextmanager
def _pre_activation(layer):
    """Make ``layer`` compute and differentiate its output without its activation, restoring the flag
    afterwards: the flag is set only while a unit runs the layer, so a layer never carries it into
    another use (inference, another call of the layer, another model)."""
    saved = layer.output_logits
    layer.output_logits = True
    try:
        yield layer
    finally:
        layer.output_logits = saved


class ConvReluPool(_Unit):
    """``Conv2D(activation='relu')`` + ``MaxPooling2D`` as conv (no activation) → max-pool → ReLU.

    Forward and backward give the same values as running the two layers one after the other: the
    window maximum of ReLU(z) is ReLU of the window maximum of z, and the first maximum in window order
    is the same position for both whenever it is positive (elsewhere the gradient is zero either way).
    """

    def __init__(self, conv, pool):
        super().__init__((conv, pool), f"{conv.name}+{pool.name}")
        self._output = None

    def forward(self, x, training):
        conv, pool = self.layers
        with _pre_activation(conv):
            z = conv.call(x, training=training)
        y = conv.ops.relu_forward(pool.call(z, training=training))
        self._output = y if training else None
        self._keep_caches()
        return y

    def backward(self, dy, need_input_grad):
        conv, pool = self.layers
        if self._output is None:
            raise RuntimeError(f"Fused unit '{self.name}': backward() needs a preceding forward with "
                               f"training=True.")
        self._restore_caches()
        dz = pool.backward(conv.ops.relu_backward(dy, self._output), need_input_grad=True)
        with _pre_activation(conv):
            return conv.backward(dz, need_input_grad=need_input_grad)

    def release(self):
        super().release()
        self._output = None


def _fusable(layer, following):
    return type(layer) is Conv2D and type(following) is MaxPooling2D and layer.activation == "relu"


def plan_units(layers, fuse=True, output_logits=False):
    """The execution units for ``layers`` (in execution order): fused conv-ReLU-pool pairs (when
    ``fuse``) and single layers, in order; with ``output_logits`` the last layer, in a unit of its
    own, outputs its pre-activation logits."""
    if output_logits:
        return plan_units(layers[:-1], fuse) + [LayerUnit(layers[-1], output_logits=True)]
    units, index = [], 0
    while index < len(layers):
        if fuse and index + 1 < len(layers) and _fusable(layers[index], layers[index + 1]):
            units.append(ConvReluPool(layers[index], layers[index + 1]))
            index += 2
        else:
            units.append(LayerUnit(layers[index]))
            index += 1
    return units


class WiredUnit:
    """A unit of a graph's plan with its wiring: the symbolic tensors it reads (``inputs``; a list
    handed over as one argument when ``merge``) and the one it writes (``output``)."""

    def __init__(self, unit, inputs, merge, output):
        self.unit = unit
        self.inputs = list(inputs)
        self.merge = merge
        self.output = output


def plan_graph(nodes, output, fuse=True, output_logits=False):
    """The plan for layer calls ``nodes`` (:class:`gpucnn.layers.symbolic.Node`, in a topological
    order) whose result is the tensor ``output``: a list of :class:`WiredUnit`.  A Conv2D-ReLU call
    whose output only feeds one MaxPooling2D call (and is not the model's output) fuses with it; the
    pair runs where the convolution was, which is safe because the pooling reads nothing else.  With
    ``output_logits`` the call that makes ``output`` outputs its pre-activation logits (other calls
    of the same layer keep their activation)."""
    consumers = {}
    for node in nodes:
        for tensor in node.inputs:
            consumers.setdefault(tensor, []).append(node)
    steps, fused = [], set()
    for node in nodes:
        if node in fused:
            continue
        users = consumers.get(node.output, [])
        if fuse and node.output is not output and len(users) == 1 and not users[0].merge \
                and _fusable(node.layer, users[0].layer):
            steps.append(WiredUnit(ConvReluPool(node.layer, users[0].layer), node.inputs, False,
                                   users[0].output))
            fused.add(users[0])
        else:
            unit = LayerUnit(node.layer, output_logits=output_logits and node.output is output)
            steps.append(WiredUnit(unit, node.inputs, node.merge, node.output))
    return steps
