"""Training and inference data on the backend, batch by batch (``Sequential.fit/evaluate/predict``).

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


def place(x, y=None):
    """``x`` (and labels ``y``) as :class:`DeviceData`, or as :class:`HostData` when they are NumPy
    arrays too large for the device.  Device arrays are used in place."""
    b = backend.current()
    on_host = isinstance(x, np.ndarray) and b.name == "cuda"
    nbytes = x.nbytes + (0 if y is None else y.nbytes)
    if on_host and not fits_on_device(nbytes):
        return HostData(x, y)
    return DeviceData(b.xp.asarray(x), None if y is None else b.xp.asarray(y))


class DeviceData:
    """Arrays already on the backend."""

    def __init__(self, x, y=None):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def batches(self, batch_size, order=None):
        """``(x, y)`` batches in sample order, or in the order of the host permutation ``order``."""
        index = None if order is None else backend.current().xp.asarray(order)
        for start in range(0, len(self.x), batch_size):
            rows = slice(start, start + batch_size) if index is None else index[start:start + batch_size]
            yield self.x[rows], _part(self.y, rows)


def _part(y, rows):
    return None if y is None else y[rows]


class HostData(DeviceData):
    """NumPy arrays that stay on the host and reach the device chunk by chunk (see the module doc)."""

    def __init__(self, x, y=None, copier=None):
        super().__init__(np.ascontiguousarray(x), None if y is None else np.ascontiguousarray(y))
        self._copier = copier

    def batches(self, batch_size, order=None):
        """As :meth:`DeviceData.batches`; a batch is a view into a chunk buffer that is refilled two
        chunks later, so use it (launch its step) before asking for the next ones."""
        copier = self._copier or _copier_for(backend.current())
        sample_bytes = self.x[0].nbytes + (0 if self.y is None else self.y[0].nbytes)
        chunk = max(1, CHUNK_BYTES // (batch_size * sample_bytes)) * batch_size
        chunk = min(chunk, math.ceil(len(self.x) / batch_size) * batch_size)
        slots = [_Slot(copier, self.x, self.y, chunk) for _ in range(2)]
        starts = range(0, len(self.x), chunk)

        def stage(k):
            rows = slice(starts[k], starts[k] + chunk)
            slots[k % 2].stage(self.x, self.y, rows if order is None else order[rows])

        stage(0)
        for k in range(len(starts)):
            if k + 1 < len(starts):
                stage(k + 1)  # the host gathers and the copy engine copies while chunk k trains
            slot = slots[k % 2]
            copier.wait_copied(slot.copied)
            for start in range(0, slot.count, batch_size):
                rows = slice(start, min(start + batch_size, slot.count))
                yield slot.x[rows], _part(slot.y, rows)
            # The caller has launched every step that reads this chunk: later copies into it wait for them.
            slot.used = copier.mark_used()


class _Slot:
    """One pinned host buffer and one device buffer of ``chunk`` samples, and the events guarding them."""

    def __init__(self, copier, x, y, chunk):
        self.copier = copier
        self.host_x = copier.empty_pinned((chunk,) + x.shape[1:], x.dtype)
        self.x = copier.empty_device((chunk,) + x.shape[1:], x.dtype)
        self.host_y = None if y is None else copier.empty_pinned((chunk,) + y.shape[1:], y.dtype)
        self.y = None if y is None else copier.empty_device((chunk,) + y.shape[1:], y.dtype)
        self.count = 0
        self.copied = self.used = None

    def stage(self, x, y, rows):
        self.copier.wait_host_reusable(self.copied)
        if isinstance(rows, slice):
            count = len(range(*rows.indices(len(x))))
            self.host_x[:count] = x[rows]
            if y is not None:
                self.host_y[:count] = y[rows]
        else:
            count = len(rows)
            # mode='clip': the indices are valid, and 'raise' would gather into a temporary first.
            np.take(x, rows, axis=0, out=self.host_x[:count], mode="clip")
            if y is not None:
                np.take(y, rows, axis=0, out=self.host_y[:count], mode="clip")
        self.count = count
        pairs = [(self.x, self.host_x)] + ([] if y is None else [(self.y, self.host_y)])
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
