"""Merging tensors (NumPy reference): elementwise sum (Keras ``Add``) and concatenation along the last
axis (Keras ``Concatenate(axis=-1)``), their gradients, and the in-place accumulation that sums the
gradients of a tensor used by several layers.

Sums run left to right over the inputs in list order, each partial sum rounded to float32: the result
does not depend on the device or on the launch configuration.
"""
import numpy as np

from gpucnn.contract.merge import check_add_inplace, check_inputs, check_split_sizes


def add_forward(inputs):
    """The elementwise sum of the arrays in ``inputs`` (same shape), added left to right."""
    inputs = check_inputs("inputs", inputs, same_last_axis=True)
    total = inputs[0] + inputs[1]
    for x in inputs[2:]:
        total += x
    return total


def add_inplace(target, x):
    """``target += x`` in place (same shape); returns None.  Accumulates the gradients of a tensor that
    feeds several layers, in the order of the calls."""
    check_add_inplace(target, x)
    target += x


def concatenate_forward(inputs):
    """The arrays of ``inputs`` joined along the last axis (all other axes equal)."""
    return np.concatenate(check_inputs("inputs", inputs, same_last_axis=False), axis=-1)


def concatenate_backward(dy, sizes):
    """The gradients of the inputs: ``dy`` split along the last axis into parts of ``sizes``."""
    sizes = check_split_sizes(dy.shape, sizes)
    offsets = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(part) for part in np.split(dy, offsets, axis=-1)]
