"""Pictures of a model and its training, with matplotlib (the ``plot`` extra:
``pip install 'gpucnn[plot]'``).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), not ``pyplot``: they
render with the Agg backend, need no display, and leave the user's pyplot state alone.  Each function
returns the Figure and, given ``filepath``, also writes it there (PNG for a ``.png`` name).

>>> history = model.fit(x, y, validation_split=0.2, epochs=5)
>>> plot_history(history, "history.png")
>>> plot_filters(model, filepath="filters.png")
>>> plot_feature_maps(model, x[0], layer=0, filepath="maps.png")
"""
import math

import numpy as np

from gpucnn import backend, data


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("gpucnn.plot needs matplotlib, which is not installed. Fix: pip install "
                          "'gpucnn[plot]' (or pip install matplotlib).") from None
    return Figure


def _finish(figure, filepath):
    figure.tight_layout()
    if filepath is not None:
        figure.savefig(filepath)
    return figure


def plot_history(history, filepath=None):
    """Loss and metric curves per epoch, one panel per quantity (train and, when present, validation).

    ``history`` is the :class:`gpucnn.callbacks.History` returned by ``fit`` or its ``.history`` dict.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"Argument `history` must be the History returned by fit() (or its .history "
                         f"dict) with at least one epoch, got {history!r}. Fix: plot_history(model.fit(...)).")
    names = [name for name in logs if not name.startswith("val_")]
    names += [name[4:] for name in logs if name.startswith("val_") and name[4:] not in logs]
    names.sort(key=lambda name: name != "loss")  # loss first, then the metrics in logged order
    epochs = getattr(history, "epoch", None) or list(range(len(next(iter(logs.values())))))
    figure = _figure_class()(figsize=(5 * len(names), 3.5))
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        for key, label in ((name, "train"), ("val_" + name, "validation")):
            if key in logs:
                axes.plot([e + 1 for e in epochs], logs[key], marker="o", label=label)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.legend()
    return _finish(figure, filepath)


def _find_layer(model, layer, argument="layer"):
    """``layer`` given as an index, a name, a layer of ``model``, or None for the first Conv2D."""
    from gpucnn.layers import Conv2D, Layer

    model.build()
    if layer is None:
        for candidate in model.layers:
            if isinstance(candidate, Conv2D):
                return candidate
        raise ValueError(f"Model '{model.name}' has no Conv2D layer. Fix: pass `{argument}=` explicitly.")
    if isinstance(layer, Layer) and layer in model.layers:
        return layer
    if isinstance(layer, str):
        for candidate in model.layers:
            if candidate.name == layer:
                return candidate
    if isinstance(layer, int) and not isinstance(layer, bool) and -len(model.layers) <= layer < len(model.layers):
        return model.layers[layer]
    count = len(model.layers)
    raise ValueError(f"Argument `{argument}` must be an index in [-{count}, {count}), a layer name "
                     f"of model '{model.name}' ({[l.name for l in model.layers]}) or one of its layers, "
                     f"got {layer!r}.")


def _image_grid(images, titles, filepath, cmap):
    """One panel per image, in a near-square grid."""
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    figure = _figure_class()(figsize=(1.6 * columns, 1.6 * rows))
    for index, (image, title) in enumerate(zip(images, titles)):
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.imshow(image, cmap=cmap, interpolation="nearest")
        axes.set_title(title, fontsize=7)
        axes.set_axis_off()
    return _finish(figure, filepath)


def _check_max_panels(max_panels):
    if isinstance(max_panels, bool) or not isinstance(max_panels, int) or max_panels <= 0:
        raise ValueError(f"Argument `max_panels` must be a positive int, got {max_panels!r}.")


def plot_filters(model, layer=None, filepath=None, max_panels=64):
    """The kernels of a Conv2D layer (default: the first) as a grid, one panel per filter (the first
    ``max_panels``).  Filters over 3 input channels are drawn as RGB (each scaled to [0, 1]); over any
    other count, as the mean over the input channels in grey."""
    from gpucnn.layers import Conv2D

    _check_max_panels(max_panels)
    conv = _find_layer(model, layer)
    if not isinstance(conv, Conv2D):
        raise ValueError(f"Argument `layer` must be a Conv2D layer to plot filters, got '{conv.name}' "
                         f"({type(conv).__name__}). Fix: pass a Conv2D layer, or leave layer=None for "
                         f"the first one.")
    kernel = conv.kernel.numpy()  # (kh, kw, in, filters)
    images = []
    for index in range(min(kernel.shape[3], max_panels)):
        weights = kernel[:, :, :, index]
        if weights.shape[2] == 3:
            span = np.ptp(weights)
            images.append((weights - weights.min()) / span if span > 0 else np.zeros_like(weights))
        else:
            images.append(weights.mean(axis=2))
    return _image_grid(images, [f"filter {i}" for i in range(len(images))], filepath, "gray")


def plot_feature_maps(model, x, layer=None, filepath=None, max_panels=64):
    """The output channels of ``layer`` (default: the first Conv2D) for one image ``x`` of shape
    (height, width, channels) or (1, height, width, channels), one panel per channel (the first
    ``max_panels``)."""
    _check_max_panels(max_panels)
    target = _find_layer(model, layer)
    if target.output_shape is None or len(target.output_shape) != 3:
        raise ValueError(f"Argument `layer`: layer '{target.name}' outputs "
                         f"{target.output_shape}, not feature maps (height, width, channels). Fix: pick "
                         f"a Conv2D, pooling or activation layer before Flatten.")
    image = np.asarray(x)
    image_shape = model.input_shape[1:]
    if image.ndim == len(image_shape):
        image = image[None]
    if image.ndim != len(image_shape) + 1 or len(image) != 1:
        raise ValueError(f"Argument `x` must be one image of shape {image_shape} (or a batch "
                         f"of one), got shape {image.shape}. Fix: pass x[0] for the first image.")
    out = data.x_on_backend(model, image)
    if getattr(model, "nodes", None) is not None:
        # A graph of layers: run the part of it that the target's first call depends on.
        from gpucnn.functional import Functional
        first_call = next(node for node in model.nodes if node.layer is target)
        out = Functional(model.input, first_call.output, name=f"{model.name}_to_{target.name}").forward(
            out, training=False)
    else:
        for current in model.layers:
            out = current.call(out, training=False)
            if current is target:
                break
    maps = backend.current().to_numpy(out)[0]
    count = min(maps.shape[-1], max_panels)
    return _image_grid([maps[:, :, i] for i in range(count)], [f"channel {i}" for i in range(count)],
                       filepath, "viridis")
