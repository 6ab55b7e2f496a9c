"""Cross-entropy losses: the checks of the binary and categorical losses, on probabilities or logits
(``outputs_name`` says which the caller got)."""
from .shapes import check_rank, check_shape


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
