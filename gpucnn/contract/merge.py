"""Merging: the checks of ``add_forward``, ``add_inplace``, ``concatenate_forward`` and
``concatenate_backward``."""


def check_inputs(name, inputs, same_last_axis):
    """The list of ``inputs`` (at least 2 arrays of one rank) with equal shapes, or equal shapes but the
    last axis when ``same_last_axis`` is False; a ValueError/TypeError naming ``name`` otherwise."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
        raise TypeError(f"Argument `{name}` must be a list of at least 2 arrays, got {type(inputs).__name__}"
                        f"{'' if not isinstance(inputs, (list, tuple)) else f' of length {len(inputs)}'}.")
    for k, x in enumerate(inputs):
        if not hasattr(x, "shape"):
            raise TypeError(f"Argument `{name}[{k}]` must be an array, got {type(x).__name__}.")
    shapes = [tuple(x.shape) for x in inputs]
    first = shapes[0]
    for shape in shapes[1:]:
        if len(shape) != len(first) or not first or \
                (shape != first if same_last_axis else shape[:-1] != first[:-1]):
            what = "the same shape" if same_last_axis else "the same shape except the last axis"
            raise ValueError(f"Argument `{name}` must hold arrays of {what}, got shapes {shapes}.")
    return list(inputs)


def check_add_inplace(target, x):
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"Arguments `target` and `x` must have the same shape, got {tuple(target.shape)} "
                         f"and {tuple(x.shape)}.")


def check_split_sizes(shape, sizes):
    """``sizes`` as a list of positive ints adding up to the last axis of ``shape``, or a ValueError."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) <= 0 or not shape or sum(sizes) != shape[-1]:
        raise ValueError(f"Argument `sizes` must be at least 2 positive ints adding up to the last axis of "
                         f"`dy` {tuple(shape)}, got {sizes}.")
    return sizes
