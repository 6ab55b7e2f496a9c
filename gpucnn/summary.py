"""``model.summary()``: the Keras table of layers, output shapes and parameter counts, with the totals."""
import numpy as np

from gpucnn.layers.base import format_shape


def summary(model, print_fn=None):
    """Print ``model``'s table line by line with ``print_fn`` (default ``print``): layer (type), output
    shape, parameter count, then total, trainable, non-trainable (and optimizer) parameters."""
    model.build()
    rows = [(f"{layer.name} ({type(layer).__name__})", format_shape(layer.output_shape),
             f"{layer.count_params():,}") for layer in model.layers]
    widths = [max(31, *(len(r[0]) for r in rows)), max(22, *(len(r[1]) for r in rows)),
              max(13, *(len(r[2]) for r in rows))]
    total = model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    lines = [f'Model: "{model.name}"',
             "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓",
             "┃ " + " ┃ ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in
                               enumerate(zip(("Layer (type)", "Output Shape", "Param #"), widths)))
             + " ┃",
             "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"]
    for row in rows:
        lines.append("│ " + " │ ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                                      enumerate(zip(row, widths))) + " │")
    lines.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
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
