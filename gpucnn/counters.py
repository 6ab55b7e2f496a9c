"""A count that a training step advances on the device (the optimizer's iterations, a Dropout layer's
steps).

The count lives in a 1-element int64 array on the backend that ops read (see
``gpucnn.contract.steps``).  Advancing it is an in-place add on that array, so a training step
captured as a CUDA graph advances it on every replay, and nothing is read back to the host during
training.  Reading :attr:`StepCounter.value` waits for the device; it is meant for saving and
inspection, not for the step itself.
"""
import numpy as np

from gpucnn import backend


class StepCounter:
    """``value`` on the host until :meth:`array` first places it on the current backend."""

    def __init__(self, value=0):
        self._host_value = int(value)
        self._array = None

    def array(self):
        """The device array holding the count (created on first use, then always the same array:
        captured graphs hold its address)."""
        if self._array is None:
            self._array = backend.current().xp.full(1, self._host_value, dtype=np.int64)
        return self._array

    def advance(self):
        """Add one on the device, without waiting; returns the array."""
        counter = self.array()
        counter += 1
        return counter

    @property
    def value(self):
        if self._array is None:
            return self._host_value
        return int(backend.current().to_numpy(self._array)[0])

    @value.setter
    def value(self, value):
        self._host_value = int(value)
        if self._array is not None:
            self._array[...] = self._host_value
