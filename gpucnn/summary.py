"""``model.summary()``: the Keras table of layers, output shapes and parameter counts, with the totals."""
import numpy as np

from gpucnn.layers.base import format_shape


def summary(model, print_fn=None):
    """Print ``model``'s table line by line with ``print_fn`` (default ``print``): layer (type), output
    shape, parameter count (and, for a model over a graph of layers, Keras' "Connected to" column and
    an InputLayer row), then total, trainable, non-trainable (and optimizer) parameters."""
    model.build()
    headers = ("Layer (type)", "Output Shape", "Param #")
    graph = getattr(model, "nodes", None)  # the layer calls of a Functional model
    rows = [([f"{layer.name} ({type(layer).__name__})"], [format_shape(layer.output_shape)],
             [f"{layer.count_params():,}"]) for layer in model.layers]
    if graph is not None:
        headers += ("Connected to",)
        rows = [([f"{model.input.name} (InputLayer)"], [str(model.input.shape)], ["0"], ["-"])] + [
            row + (_connections(layer, graph),) for row, layer in zip(rows, model.layers)]
    minimum = (31, 22, 13, 19)
    widths = [max(minimum[i], *(len(line) for row in rows for line in row[i])) for i in range(len(headers))]

    def line(cells, left, middle, right):
        return left + middle.join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in
                                  enumerate(zip(cells, widths))) + right

    lines = [f'Model: "{model.name}"',
             "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓",
             line(headers, "┃ ", " ┃ ", " ┃"),
             "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"]
    for index, row in enumerate(rows):
        if graph is not None and index:
            lines.append("├" + "┼".join("─" * (w + 2) for w in widths) + "┤")
        for depth in range(max(len(cell) for cell in row)):
            lines.append(line([cell[depth] if depth < len(cell) else "" for cell in row],
                              "│ ", " │ ", " │"))
    lines.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
    total = model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # Like Keras, once the optimizer has its state (after the first training step) its variables
    # count in the total: the slots (m and v for Adam, velocity for SGD with momentum) plus the
    # iteration counter (int64) and the learning rate (float32).
    optimizer_count, optimizer_bytes = 0, 0
    if model.optimizer is not None and model.flat_parameters is not None:
        slots = sum(int(np.prod(array.shape)) for array in model.optimizer.state.values())
        optimizer_count, optimizer_bytes = slots + 2, 4 * slots + 8 + 4
    lines += [f" Total params: {total + optimizer_count:,} "
              f"({_format_bytes(4 * total + optimizer_bytes)})",
              f" Trainable params: {trainable:,} ({_format_bytes(4 * trainable)})",
              f" Non-trainable params: {total - trainable:,} ({_format_bytes(4 * (total - trainable))})"]
    if optimizer_count:
        lines.append(f" Optimizer params: {optimizer_count:,} ({_format_bytes(optimizer_bytes)})")
    for line in lines:
        (print_fn or print)(line)


def _format_bytes(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.2f} {unit}"
        count /= 1024


def _connections(layer, nodes):
    """Keras' "Connected to" cell of ``layer``: ``producer[call index][0]`` for every tensor each of its
    calls reads, one per line (Keras wraps the comma-separated list the same way)."""
    names = [f"{t.node.layer.name}[{t.node.index}][0]" if t.node is not None else f"{t.name}[0][0]"
             for node in nodes if node.layer is layer for t in node.inputs]
    return [name + "," for name in names[:-1]] + names[-1:]
