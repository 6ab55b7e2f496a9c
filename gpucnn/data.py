"""The data a model is given: input checks, then placement on the backend, batch by batch (``fit``,
``evaluate``, ``predict`` and calling a model).

:func:`check_x` / :func:`check_xy` check images and labels against a model (dtype, shape, NaN/Inf,
sample counts) and turn CuPy, ``__cuda_array_interface__`` and DLPack arrays into CuPy views without a
copy; NumPy data stays on the host until :func:`place` decides where it goes.

Data that fits in device memory (the usual case, and always on the cpu and emulated backends) is put on
the device once and every batch is a gather on the device: :class:`DeviceData`.

Data that does not fit stays on the host: :class:`HostData`.  Each pass goes through it in chunks of
whole batches.  A chunk is gathered on the host into one of two pinned buffers and copied to one of two
device buffers on a side stream, so the copy of chunk k + 1 overlaps the training on chunk k.  Events
order the two streams: the training stream waits for a chunk's copy before its first batch; a copy into
a device buffer waits until the kernels that read the chunk before it are done.  The host waits only
before it overwrites a pinned buffer, for the copy out of it two chunks earlier (long finished).
"""
import math

import numpy as np

from gpucnn import backend


# -- input checks ---------------------------------------------------------------------------------
def check_x(model, x, argument="x"):
    """``x`` checked against ``model``'s input (building the model for it when its input shape is not
    known yet), as a float32 contiguous array where it lives: NumPy data stays on the host
    (:func:`place` decides whether it goes to the device whole)."""
    if x is None:
        raise ValueError(f"Argument `{argument}` is required: an array of images of shape "
                         f"(samples, height, width, channels).")
    array = as_array(x)
    dtype = np.dtype(array.dtype)
    if not np.issubdtype(dtype, np.floating):
        # Integer (and bool) images are refused rather than cast: 0..255 pixels fed as-is train badly.
        fix = "x.astype('float32') / 255 for 8-bit images" if np.issubdtype(dtype, np.integer) or \
            dtype == bool else "pass a float32 NumPy array of shape (samples, height, width, channels)"
        raise TypeError(f"Argument `{argument}` must hold floating-point images, got dtype {dtype}. "
                        f"Fix: {fix}.")
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"Argument `{argument}` is empty (shape {tuple(array.shape)}): training and "
                         f"inference need at least one sample. Fix: pass an array of shape "
                         f"(samples, height, width, channels) with samples >= 1.")
    if model.input_shape is None:
        model.build(tuple(array.shape[1:]))
    expected = model.input_shape
    if tuple(array.shape[1:]) != tuple(expected[1:]):
        raise ValueError(f"Argument `{argument}` has shape {tuple(array.shape)}, but model "
                         f"'{model.name}' expects {expected}. Fix: reshape the data (e.g. add a "
                         f"channel axis with x[..., None]) or change the first layer's input_shape.")
    where = np if isinstance(array, np.ndarray) else backend.current().xp  # device data stays there
    array = where.ascontiguousarray(array, dtype=np.float32)
    if not _all_finite(array, where):
        raise ValueError(f"Argument `{argument}` contains NaN or Inf values. Fix: clean or impute "
                         f"the data before training.")
    return array


def check_xy(model, x, y, x_name="x", y_name="y"):
    """``x`` as :func:`check_x` leaves it and the labels as a NumPy array, checked for the compiled
    ``model``'s loss and output shape."""
    x = check_x(model, x, x_name)
    if y is None:
        raise ValueError(f"Argument `{y_name}` is required: labels for every sample of `{x_name}`.")
    y_host = backend.current().to_numpy(as_array(y))
    if y_host.ndim == 0 or len(y_host) != len(x):
        raise ValueError(f"Arguments `{x_name}` and `{y_name}` must have the same number of samples, "
                         f"got {len(x)} and {y_host.shape[0] if y_host.ndim else 'a scalar'}.")
    return x, model.loss.prepare_labels(y_host, model.output_shape[1:], y_name)


def check_sample_weight(sample_weight, samples, argument="sample_weight"):
    """``sample_weight`` as a float32 NumPy vector of one finite weight per sample (Keras takes shape
    (samples,) or (samples, 1)), or None."""
    if sample_weight is None:
        return None
    weights = backend.current().to_numpy(as_array(sample_weight))
    if weights.dtype.kind == "c" or not (np.issubdtype(weights.dtype, np.number) or weights.dtype == bool):
        raise TypeError(f"Argument `{argument}` must hold real numbers, got dtype {weights.dtype}. "
                        f"Fix: pass a float array of shape ({samples},).")
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (samples,):
        raise ValueError(f"Argument `{argument}` must have one weight per sample, shape ({samples},), got "
                         f"shape {weights.shape}.")
    weights = weights.astype(np.float32)
    if not np.isfinite(weights).all():
        raise ValueError(f"Argument `{argument}` contains NaN or Inf (or values beyond float32). Fix: "
                         f"pass finite weights.")
    return weights


def class_weight_to_sample_weight(class_weight, labels):
    """Keras' ``class_weight`` dict as per-sample weights for checked ``labels`` (as the loss' own
    ``prepare_labels`` returns them): the class of a sample is its label rounded (one unit or class
    indices) or the argmax of its row; classes missing from the dict weigh 1, as in Keras."""
    if not hasattr(class_weight, "items") or not hasattr(class_weight, "get"):
        raise ValueError(f"Argument `class_weight` must be a dict mapping class indices to weights, e.g. "
                         f"{{0: 1.0, 1: 4.0}}, got {type(class_weight).__name__}: {class_weight!r}.")
    weights_of = {}
    for key, value in class_weight.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"Argument `class_weight` must have integer class indices as keys, got the "
                             f"key {key!r}.") from None
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value):
            raise ValueError(f"Argument `class_weight` must map each class to a finite number, got "
                             f"{value!r} for class {key!r}.")
        weights_of[index] = float(value)
    classes = labels
    if classes.ndim > 1:
        classes = classes.argmax(axis=-1) if classes.shape[-1] != 1 else classes[..., 0]
    classes = np.round(classes).astype(np.int64)
    return np.array([weights_of.get(int(c), 1.0) for c in classes], dtype=np.float32)


def sample_weights(labels, sample_weight=None, class_weight=None):
    """The per-sample loss weights ``fit`` / ``train_on_batch`` use: ``sample_weight`` checked, or
    ``class_weight`` turned into per-sample weights for ``labels``, or None (Keras refuses both)."""
    if class_weight is None:
        return check_sample_weight(sample_weight, len(labels))
    if sample_weight is not None:
        raise ValueError("You cannot use `class_weight` and `sample_weight` at the same time. Fix: fold "
                         "the class weights into `sample_weight`, e.g. sample_weight * "
                         "class_weight_of_each_label.")
    return class_weight_to_sample_weight(class_weight, labels)


def x_on_backend(model, x):
    """``x`` checked as :func:`check_x` does, as an array of the backend."""
    return backend.current().asarray(check_x(model, x))


def on_backend(*arrays):
    """Each array on the backend (as it is, when already there); None stays None."""
    xp = backend.current().xp
    return tuple(None if array is None else xp.asarray(array) for array in arrays)


_FINITE_CHECK_BYTES = 64 << 20


def _all_finite(array, where):
    """Whether ``array`` holds no NaN/Inf.  Host data is checked in slices of about 64 MiB, so data far
    larger than the device (and a memory-mapped file) needs no full-size temporary mask."""
    if where is not np:
        return bool(where.isfinite(array).all())
    rows = max(1, _FINITE_CHECK_BYTES // max(array[:1].nbytes, 1))
    return all(np.isfinite(array[start:start + rows]).all() for start in range(0, len(array), rows))


# DLPack's device type code for CUDA memory (kDLCUDA).
_DLPACK_CUDA_DEVICE = 2


def as_array(data):
    """``data`` as an array without copying device data: on the cuda backend, CuPy arrays and objects
    with ``__cuda_array_interface__`` or CUDA DLPack capsules (PyTorch, JAX, Numba) become CuPy views
    of the same memory; everything else becomes a NumPy array."""
    if backend.current().name == "cuda":
        xp = backend.current().xp
        if hasattr(data, "__cuda_array_interface__"):
            return xp.asarray(data)
        if hasattr(data, "__dlpack_device__") and data.__dlpack_device__()[0] == _DLPACK_CUDA_DEVICE:
            return xp.from_dlpack(data)
    return data if isinstance(data, np.ndarray) else np.asarray(data)


# -- placement --------------------------------------------------------------------------------------
DEVICE_FRACTION = 0.5  # data above this share of the device's free memory stays on the host
CHUNK_BYTES = 256 * 2**20  # samples per host-to-device copy, rounded to whole batches


def fits_on_device(nbytes):
    """Whether ``nbytes`` of data should be copied to the device whole (always off the GPU)."""
    if backend.current().name != "cuda":
        return True
    import cupy
    free, _ = cupy.cuda.runtime.memGetInfo()
    free += cupy.get_default_memory_pool().free_bytes()  # cached by CuPy, reusable by us
    return nbytes <= DEVICE_FRACTION * free


def place(x, y=None, sample_weight=None):
    """``x`` (and labels ``y``, per-sample weights ``sample_weight``) as :class:`DeviceData`, or as
    :class:`HostData` when they are NumPy arrays too large for the device.  Device arrays are used in
    place."""
    b = backend.current()
    on_host = isinstance(x, np.ndarray) and b.name == "cuda"
    nbytes = sum(array.nbytes for array in (x, y, sample_weight) if array is not None)
    if on_host and not fits_on_device(nbytes):
        return HostData(x, y, sample_weight)
    return DeviceData(*(None if array is None else b.xp.asarray(array) for array in (x, y, sample_weight)))


class DeviceData:
    """Arrays already on the backend: the samples ``x`` and, optionally, their labels ``y`` and
    weights ``sample_weight``."""

    def __init__(self, x, y=None, sample_weight=None):
        self.x, self.y, self.sample_weight = x, y, sample_weight

    def __len__(self):
        return len(self.x)

    def batches(self, batch_size, order=None):
        """``(x, y, sample_weight)`` batches (None for what the data does not have) in sample order,
        or in the order of the host permutation ``order``."""
        index = None if order is None else backend.current().xp.asarray(order)
        for start in range(0, len(self.x), batch_size):
            rows = slice(start, start + batch_size) if index is None else index[start:start + batch_size]
            yield tuple(None if array is None else array[rows]
                        for array in (self.x, self.y, self.sample_weight))


class HostData(DeviceData):
    """NumPy arrays that stay on the host and reach the device chunk by chunk (see the module doc)."""

    def __init__(self, x, y=None, sample_weight=None, copier=None):
        super().__init__(*(None if array is None else np.ascontiguousarray(array)
                           for array in (x, y, sample_weight)))
        self._copier = copier

    def batches(self, batch_size, order=None):
        """As :meth:`DeviceData.batches`; a batch is a view into a chunk buffer that is refilled two
        chunks later, so use it (launch its step) before asking for the next ones."""
        copier = self._copier or _copier_for(backend.current())
        arrays = (self.x, self.y, self.sample_weight)
        sample_bytes = sum(array[0].nbytes for array in arrays if array is not None)
        chunk = max(1, CHUNK_BYTES // (batch_size * sample_bytes)) * batch_size
        chunk = min(chunk, math.ceil(len(self.x) / batch_size) * batch_size)
        slots = [_Slot(copier, arrays, chunk) for _ in range(2)]
        starts = range(0, len(self.x), chunk)

        def stage(k):
            rows = slice(starts[k], starts[k] + chunk)
            slots[k % 2].stage(arrays, rows if order is None else order[rows])

        stage(0)
        for k in range(len(starts)):
            if k + 1 < len(starts):
                stage(k + 1)  # the host gathers and the copy engine copies while chunk k trains
            slot = slots[k % 2]
            copier.wait_copied(slot.copied)
            for start in range(0, slot.count, batch_size):
                rows = slice(start, min(start + batch_size, slot.count))
                yield tuple(None if array is None else array[rows] for array in slot.device)
            # The caller has launched every step that reads this chunk: later copies into it wait for them.
            slot.used = copier.mark_used()


class _Slot:
    """One pinned host buffer and one device buffer of ``chunk`` samples per array (None stays None),
    and the events guarding them."""

    def __init__(self, copier, arrays, chunk):
        self.copier = copier
        self.host = [None if a is None else copier.empty_pinned((chunk,) + a.shape[1:], a.dtype) for a in arrays]
        self.device = [None if a is None else copier.empty_device((chunk,) + a.shape[1:], a.dtype) for a in arrays]
        self.count = 0
        self.copied = self.used = None

    def stage(self, arrays, rows):
        self.copier.wait_host_reusable(self.copied)
        count = len(range(*rows.indices(len(arrays[0])))) if isinstance(rows, slice) else len(rows)
        for array, host in zip(arrays, self.host):
            if array is None:
                continue
            if isinstance(rows, slice):
                host[:count] = array[rows]
            else:
                # mode='clip': the indices are valid, and 'raise' would gather into a temporary first.
                np.take(array, rows, axis=0, out=host[:count], mode="clip")
        self.count = count
        pairs = [(device, host) for device, host in zip(self.device, self.host) if host is not None]
        self.copied = self.copier.copy(pairs, count, after=self.used)


def _copier_for(b):
    return _CudaCopier() if b.name == "cuda" else _HostCopier()


class _HostCopier:
    """cpu and emulated backends: host memory is device memory and every op is done when it returns."""

    def empty_pinned(self, shape, dtype):
        return np.empty(shape, dtype)

    empty_device = empty_pinned

    def copy(self, pairs, count, after):
        for device, host in pairs:
            device[:count] = host[:count]

    def wait_copied(self, copied):
        pass

    def mark_used(self):
        return None

    def wait_host_reusable(self, copied):
        pass


class _CudaCopier:
    """Pinned host buffers, copies on a private non-blocking stream, CUDA events between the streams."""

    def __init__(self):
        import cupy
        import cupyx
        self._cupy, self._cupyx = cupy, cupyx
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def empty_pinned(self, shape, dtype):
        return self._cupyx.empty_pinned(shape, dtype)

    def empty_device(self, shape, dtype):
        return self._cupy.empty(shape, dtype)

    def copy(self, pairs, count, after):
        if after is not None:
            self.stream.wait_event(after)
        for device, host in pairs:
            device[:count].set(host[:count], stream=self.stream)
        return self.stream.record()

    def wait_copied(self, copied):
        self._cupy.cuda.get_current_stream().wait_event(copied)

    def mark_used(self):
        return self._cupy.cuda.get_current_stream().record()

    def wait_host_reusable(self, copied):
        if copied is not None:
            copied.synchronize()
