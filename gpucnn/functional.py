"""Models over a graph of layers: ``gpucnn.Model(inputs, outputs)``, Keras 3's Functional API.

>>> inputs = gpucnn.Input(shape=(32, 32, 3))
>>> x = Conv2D(16, 3, padding="same", activation="relu")(inputs)
>>> y = Conv2D(16, 3, padding="same")(x)
>>> x = Activation("relu")(Add()([x, y]))
>>> outputs = Dense(10, activation="softmax")(GlobalAveragePooling2D()(x))
>>> model = gpucnn.Model(inputs, outputs)

Calling layers on symbolic tensors records the graph (:mod:`gpucnn.layers.symbolic`);
:class:`Functional` walks it back from the output once, checks it, orders its layers as Keras does
(by depth from the output, then by first visit: so ``layers``, ``weights`` and ``get_weights`` come
in Keras' order and a weight list moves between the two libraries as is) and runs the layer calls as
execution units (:func:`gpucnn.execution.plan_graph`, with the fused Conv2D-ReLU + MaxPooling2D path).
It offers the trainer the same interface as ``Sequential``, so compile, fit, the CUDA-graph step, the
profiler and saving work unchanged.  One input and one output for now.

Backward sends each unit's input gradients to the tensors it read.  A tensor read by several layer
calls (a residual shortcut) gets the sum of their gradients, added on the device in plan order (the
first gradient is copied into a new buffer by ``add_forward``, later ones ``add_inplace``), so the
result is the same bits every step.  A layer called twice gets the sum of both calls' weight gradients
the same way.
"""
from gpucnn import backend, profiler
from gpucnn.execution import plan_graph
from gpucnn.layers import Input, deserialize, serialize
from gpucnn.layers.base import _unique_name, format_shape
from gpucnn.layers.symbolic import SymbolicTensor
from gpucnn.models import Model


class Functional(Model):
    """A model over the graph of layer calls from ``inputs`` (a ``gpucnn.Input``) to ``outputs`` (a
    symbolic tensor), made by ``gpucnn.Model(inputs, outputs)``.  ``layers`` lists each layer once, in
    Keras' order; ``input``/``output`` are the symbolic tensors."""

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True):
        if inputs is None or outputs is None:
            raise TypeError("gpucnn.Model(inputs, outputs) needs both: the gpucnn.Input(...) tensor and "
                            "the symbolic tensor the layers compute from it. (Subclassing Model is not "
                            "implemented; for a stack of layers use gpucnn.Sequential.)")
        super().__init__(name or _unique_name("functional"))
        self.input = _one_tensor(inputs, "inputs")
        self.output = _one_tensor(outputs, "outputs")
        if not isinstance(self.input, Input):
            raise TypeError(f"Argument `inputs` must be a gpucnn.Input(...) tensor, got the "
                             f"{self.input.describe()}. Fix: start the graph at an Input.")
        self._nodes, self.layers = _map_graph(self.input, self.output, self.name)
        self._input_shape = self.input.shape[1:]
        self._graph_plan = None
        if not trainable:
            self.trainable = False

    @property
    def nodes(self):
        """The layer calls of the graph in the order they run (a topological order)."""
        return list(self._nodes)

    @property
    def output_layer(self):
        return self.output.node.layer

    def build(self, input_shape=None):
        """Nothing to build (every layer was built when called on its inputs); ``input_shape``, when
        given, must be the model's (without the batch axis; a leading None is ignored)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            shape = shape[1:] if shape and shape[0] is None else shape
            if shape != self._input_shape:
                raise ValueError(f"Model '{self.name}' takes inputs {format_shape(self._input_shape)}, "
                                 f"got input_shape {input_shape!r}.")

    # -- running the graph --------------------------------------------------------------------------
    def wired_plan(self):
        """The execution units with the tensors each reads and writes
        (:class:`gpucnn.execution.WiredUnit`), re-planned when an activation or the compiled loss'
        use of the output's logits (``output_logits``) changes."""
        logits = self.output_logits
        key = (tuple((id(layer), layer.activation) for layer in self.layers), logits)
        if self._graph_plan is None or self._graph_plan[0] != key:
            self._graph_plan = (key, plan_graph(self._nodes, self.output, output_logits=logits))
        return self._graph_plan[1]

    def execution_plan(self):
        return [wired.unit for wired in self.wired_plan()]

    def forward(self, x, training, after_unit=None):
        values = {self.input: x}
        for wired in self.wired_plan():
            arguments = [values[tensor] for tensor in wired.inputs]
            with profiler.nvtx_range(wired.unit.name, "forward"):
                values[wired.output] = wired.unit.forward(arguments if wired.merge else arguments[0],
                                                          training)
            if after_unit is not None:
                after_unit()
        return values[self.output]

    def backward(self, dy, after_unit=None):
        ops = backend.current().ops
        gradients, owned = {self.output: dy}, set()
        finished = set()  # layers whose weight gradients this pass has set once already
        for wired in reversed(self.wired_plan()):
            dy = gradients.pop(wired.output)
            need_input_grad = any(tensor is not self.input for tensor in wired.inputs)
            # A layer called again: keep the gradients of its later calls (handled first) to add back.
            earlier = [(weight, weight.grad.copy()) for layer in wired.unit.layers if layer in finished
                       for weight in layer.weights if weight.grad is not None]
            with profiler.nvtx_range(wired.unit.name, "backward"):
                dx = wired.unit.backward(dy, need_input_grad=need_input_grad)
            for weight, gradient in earlier:
                ops.add_inplace(weight.grad, gradient)
            finished.update(wired.unit.layers)
            if after_unit is not None:
                after_unit()
            if not need_input_grad:
                continue
            for tensor, gradient in zip(wired.inputs, dx if wired.merge else [dx]):
                if tensor is self.input:
                    continue
                if tensor not in gradients:
                    gradients[tensor] = gradient  # may be shared with another tensor (Add): read only
                elif tensor in owned:
                    ops.add_inplace(gradients[tensor], gradient)
                else:
                    gradients[tensor] = ops.add_forward([gradients[tensor], gradient])
                    owned.add(tensor)

    # -- config -------------------------------------------------------------------------------------
    def get_config(self):
        """Input, layers with the calls each makes (``inbound_nodes``: per call, the ``[layer name,
        call index]`` of every tensor it reads, the input being ``[input name, 0]``) and the output."""
        positions, calls = {}, {}
        for node in self._nodes:
            positions[node.output] = [node.layer.name, len(calls.setdefault(node.layer, []))]
            calls[node.layer].append(node)
        positions[self.input] = [self.input.name, 0]
        return {"name": self.name,
                "input": {"name": self.input.name, "shape": list(self._input_shape)},
                "layers": [{**serialize(layer),
                            "inbound_nodes": [[positions[t] for t in node.inputs] for node in calls[layer]]}
                           for layer in self.layers],
                "output": positions[self.output]}

    @classmethod
    def from_config(cls, config):
        """The model of a ``get_config()`` dict: the layers are made anew and called in an order that
        respects every call's inputs; a config whose calls wait on each other (a cycle) or on a tensor
        nothing makes is refused, naming those calls."""
        name = config.get("name")
        model_input = Input(shape=tuple(config["input"]["shape"]), name=config["input"]["name"])
        tensors = {(model_input.name, 0): model_input}
        pending = []
        for entry in config["layers"]:
            layer = deserialize(entry)
            pending += [(layer, index, [tuple(ref) for ref in refs])
                        for index, refs in enumerate(entry["inbound_nodes"])]
        while pending:
            ready = [call for call in pending if all(ref in tensors for ref in call[2])
                     and (call[1] == 0 or (call[0].name, call[1] - 1) in tensors)]
            if not ready:
                known = {call[0].name for call in pending} | {ref[0] for ref in tensors}
                unknown = sorted({ref[0] for call in pending for ref in call[2] if ref[0] not in known})
                waiting = ", ".join(f"'{layer.name}' call {index} on {[list(r) for r in refs]}"
                                    for layer, index, refs in pending)
                why = (f"they read tensors of unknown layers {unknown}" if unknown else
                       "they wait on each other's outputs (a cycle)")
                raise ValueError(f"Model config '{name}': cannot make the layer calls {waiting}: {why}. "
                                 f"Fix: every call must read the input or an earlier call's output.")
            for layer, index, refs in ready:
                arguments = [tensors[ref] for ref in refs]
                tensors[(layer.name, index)] = layer(arguments if layer.merges_inputs else arguments[0])
            pending = [call for call in pending if (call[0].name, call[1]) not in tensors]
        output = tuple(config["output"])
        if output not in tensors:
            raise ValueError(f"Model config '{name}': the output {list(output)} is not a layer call of "
                             f"the config. Fix: name one of {sorted(set(tensors))}.")
        return cls(model_input, tensors[output], name=name)


def _one_tensor(value, argument):
    """The one symbolic tensor in ``value`` (a tensor or a list of one), or an error naming ``argument``."""
    if isinstance(value, dict):
        raise TypeError(f"Argument `{argument}` must be one symbolic tensor; dicts of several are not "
                         f"implemented (gpucnn models have one input and one output for now).")
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"Argument `{argument}` holds {len(value)} tensors, but gpucnn models have one "
                             f"input and one output for now. Fix: pass one tensor (several inputs or "
                             f"outputs are not implemented).")
        value = value[0]
    if not isinstance(value, SymbolicTensor):
        shape = f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else ""
        raise TypeError(f"Argument `{argument}` must be a symbolic tensor (gpucnn.Input(...) or a layer "
                        f"called on one), got {type(value).__name__}{shape}. A layer called on an array "
                        f"runs at once and returns an array. Fix: call the layers on the Input tensor "
                        f"and on each other's outputs.")
    return value


def _map_graph(model_input, output, name):
    """The layer calls from ``model_input`` to ``output`` in a topological order, and the layers in
    Keras' order (``keras.src.ops.function.map_graph``: by decreasing depth, where a call's depth is
    its distance from the output and a layer's is the largest of its calls'; ties by first visit in a
    depth-first walk from the output that visits a call's inputs in order)."""
    if output.node is None:
        raise ValueError(f"Model '{name}': the output is the {output.describe()} itself, so the model "
                         f"has no layers. Fix: pass the output of the last layer call.")
    order, first_visit, reached_inputs = [], {}, []
    finished = set()
    # Iterative depth-first walk (a deep network would exceed Python's recursion limit).
    stack = [(output.node, iter(output.node.inputs))]
    first_visit[output.node.layer] = 0
    while stack:
        node, pending = stack[-1]
        tensor = next(pending, None)
        if tensor is None:
            stack.pop()
            finished.add(node)
            order.append(node)
        elif tensor.node is None:
            if tensor not in reached_inputs:
                reached_inputs.append(tensor)
        elif tensor.node not in finished:
            first_visit.setdefault(tensor.node.layer, len(first_visit))
            stack.append((tensor.node, iter(tensor.node.inputs)))
    if model_input not in reached_inputs:
        raise ValueError(f"Model '{name}': the output ({output.describe()}) does not depend on the input "
                         f"'{model_input.name}' {model_input.shape}; it is computed from "
                         f"{[t.describe() for t in reached_inputs]}. Fix: pass the Input the output's "
                         f"layers were called on.")
    for node in order:
        foreign = [t for t in node.inputs if t.node is None and t is not model_input]
        if foreign:
            raise ValueError(f"Model '{name}': graph disconnected: layer '{node.layer.name}' is called on "
                             f"{foreign[0].describe()}, which is not the model's input "
                             f"'{model_input.name}' {model_input.shape}. gpucnn models have one input "
                             f"for now. Fix: compute every branch from the one Input.")
    depth_of_node, depth_of_layer = {}, {}
    for node in reversed(order):
        depth = max(depth_of_node.get(node, 0), depth_of_layer.get(node.layer, 0))
        depth_of_layer[node.layer] = depth_of_node[node] = depth
        for tensor in node.inputs:
            if tensor.node is not None:
                depth_of_node[tensor.node] = max(depth + 1, depth_of_node.get(tensor.node, 0))
    layers = sorted(depth_of_layer, key=lambda layer: (-depth_of_layer[layer], first_visit[layer]))
    names = [layer.name for layer in layers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"Model '{name}': layer names must be unique in a model, but {repeated} name "
                         f"several layers. Fix: pass distinct name= arguments.")
    return order, layers
