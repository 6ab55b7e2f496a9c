"""A fix for a data race in Numba's CUDA simulator, installed wherever our Numba kernels run simulated.

Upstream bug (numba-cuda ``numba/cuda/simulator/kernelapi.py``, and the same code in the CUDA target
that numba itself still ships): ``FakeCUDAShared.array`` gives every simulated thread of a launch the
array it created for the calling source line, looked up in a plain dict with no lock::

    res = self._allocations.get(caller)
    if res is None:
        res = np.empty(shape, dtype)
        self._allocations[caller] = res

Each simulated CUDA thread is a Python thread, so a thread switch between the ``get`` and the store lets
two threads of the first block both miss: each then works on its own private "shared" array, and a
block reduction reads another thread's slot from an array that thread never wrote (uninitialised memory).
We saw it as rare failures of whole-model runs on the emulated backend (bias gradients off by ~1e9, NaN
losses); ``tests/emulator/test_numba_simulator.py`` forces the thread switch and reproduces it every time.

Upstream-ready fix: do the look-up and the insert under one lock (below; upstream it is the same body
with ``with self._lock:`` around those four lines and ``self._lock = threading.Lock()`` in ``__init__``).
The caller is found with ``sys._getframe(1)``, which gives the same (file, line) key as upstream's
``traceback.extract_stack(...)[-2][0:2]`` at a fraction of the cost.
"""
import functools
import sys
import threading

import numpy as np

_LOCK = threading.Lock()


def _locked_shared_array(kernelapi, unlocked):
    @functools.wraps(unlocked)
    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            # Dynamic shared memory is one buffer made with the launch (no look-up, no race); an alignment
            # is refused by the simulator itself, with its own message.
            return unlocked(self, shape, dtype, *(() if alignment is None else (alignment,)))
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller_frame = sys._getframe(1)
        caller = (caller_frame.f_code.co_filename, caller_frame.f_lineno)
        with _LOCK:
            allocation = self._allocations.get(caller)
            if allocation is None:
                allocation = self._allocations[caller] = np.empty(shape, dtype)
        return allocation

    array.gpucnn_locked = True
    return array


def install_shared_array_lock():
    """Make the simulator's ``cuda.shared.array`` thread-safe (idempotent).

    Call only when the simulator is on (``NUMBA_ENABLE_CUDASIM``): it imports the simulator's module.
    The simulator's own method stays reachable as ``FakeCUDAShared.array.__wrapped__``.
    """
    from numba.cuda.simulator import kernelapi
    shared = kernelapi.FakeCUDAShared
    if not getattr(shared.array, "gpucnn_locked", False):
        shared.array = _locked_shared_array(kernelapi, shared.array)
