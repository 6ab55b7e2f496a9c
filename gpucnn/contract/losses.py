"""Cross-entropy and mean squared error losses: the checks of the binary and categorical losses, on
probabilities or logits (``outputs_name`` says which the caller got), of ``mean_squared_error``, and the
label-smoothing arithmetic both backends share, and the per-sample loss weights every loss takes."""
import numbers

import numpy as np

from .shapes import check_last_axis, check_rank, check_shape


def check_binary(outputs_name, outputs, labels):
    """ValueError unless ``labels`` has the shape of ``outputs`` ((N,) labels are accepted for (N, 1))."""
    shape = tuple(outputs.shape)
    if tuple(labels.shape) != shape and not (shape[-1:] == (1,) and tuple(labels.shape) == shape[:-1]):
        raise ValueError(f"Argument `labels` must have the shape of `{outputs_name}` {shape}, "
                         f"got {tuple(labels.shape)}.")


def check_categorical(outputs_name, outputs, labels, sparse):
    """Outputs (N, classes); labels shaped like them, or (sparse) integer class indices (N,) or (N, 1)."""
    check_rank(outputs_name, outputs, 2, "a matrix: batch, classes")
    rows = outputs.shape[0]
    if not sparse:
        check_shape("labels", labels, outputs.shape, f"(the shape of `{outputs_name}`)")
    elif labels.dtype.kind not in "iu" or tuple(labels.shape) not in ((rows,), (rows, 1)):
        raise ValueError(f"Argument `labels` must be integer class indices of shape ({rows},) or ({rows}, 1), "
                         f"got {labels.dtype} {tuple(labels.shape)}.")


def check_mean_squared_error(outputs, labels):
    check_binary("outputs", outputs, labels)
    check_last_axis("outputs", outputs, "the last holds the units")


def check_sample_weight(outputs, sample_weight):
    """ValueError unless ``sample_weight`` is float32 of shape (N,): one weight per sample of
    ``outputs`` (the first axis)."""
    rows = tuple(outputs.shape[:1])
    if tuple(sample_weight.shape) != rows or sample_weight.dtype != np.float32:
        raise ValueError(f"Argument `sample_weight` must be float32 of shape {rows} (one weight per "
                         f"sample), got {sample_weight.dtype} {tuple(sample_weight.shape)}.")


def check_label_smoothing(label_smoothing):
    """``label_smoothing`` as a float in [0, 1], or a ValueError."""
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"Argument `label_smoothing` must be a float in [0, 1], got {label_smoothing!r}.")
    return float(label_smoothing)


def smoothing_terms(label_smoothing, classes):
    """(keep, offset) with target = y·keep + offset, both rounded to float32 once (as the kernels get
    them): keep = 1 - s, offset = s / classes."""
    label_smoothing = check_label_smoothing(label_smoothing)
    return np.float32(1 - label_smoothing), np.float32(label_smoothing / classes)
