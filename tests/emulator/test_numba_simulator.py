"""The simulator's ``cuda.shared.array`` race (see ``gpucnn.emulator.numba_simulator``), forced every time.

A dict that sleeps on every miss stands in for the simulator's table of a launch's shared arrays: the
sleep releases the GIL between the look-up and the insert, so every simulated thread of the first block
that asks for the array misses, as the rare thread switch did by chance.
"""
import time
from typing import ClassVar

import numpy as np
import pytest
from gpucnn.kernels import reduce
from numba import cuda, float32
from numba.cuda.simulator import kernelapi

from gpucnn import cuda as launchers
from gpucnn import reference
from gpucnn.emulator.numba_simulator import install_shared_array_lock

THREADS = 4


class SlowMissDict(dict):
    """Records the misses and the arrays stored (``list.append`` is atomic, ``+=`` on a counter is not).

    A thread that misses waits, after its look-up, until ``parties`` threads have missed or half a
    second has passed: without a lock every thread of the block gets there; with one, the first waits
    alone, holding the lock.
    """

    parties = THREADS
    misses: ClassVar[list] = []
    stores: ClassVar[list] = []

    def get(self, key, default=None):
        found = super().get(key, default)
        if key not in self:
            SlowMissDict.misses.append(key)
            deadline = time.monotonic() + 0.5
            while len(SlowMissDict.misses) < SlowMissDict.parties and time.monotonic() < deadline:
                time.sleep(0.001)
        return found

    def __setitem__(self, key, value):
        SlowMissDict.stores.append(value)
        super().__setitem__(key, value)


@pytest.fixture
def forced_race(monkeypatch):
    unpatched_init = kernelapi.FakeCUDAShared.__init__

    def init(self, dynshared_size):
        unpatched_init(self, dynshared_size)
        self._allocations = SlowMissDict()

    monkeypatch.setattr(kernelapi.FakeCUDAShared, "__init__", init)
    monkeypatch.setattr(SlowMissDict, "misses", [])
    monkeypatch.setattr(SlowMissDict, "stores", [])


@cuda.jit
def rotate(out):
    buffer = cuda.shared.array(THREADS, float32)
    t = cuda.threadIdx.x
    buffer[t] = t + 1
    cuda.syncthreads()
    out[t] = buffer[(t + 1) % THREADS]


def _rotate():
    out = np.zeros(THREADS, dtype=np.float32)
    rotate[1, THREADS](out)
    return out


def test_unpatched_simulator_gives_threads_private_shared_arrays(forced_race, monkeypatch):
    """The reproduction: without the lock each thread stores its own array (if this fails, upstream has
    fixed the race and gpucnn.emulator.numba_simulator can go)."""
    install_shared_array_lock()
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", kernelapi.FakeCUDAShared.array.__wrapped__)
    _rotate()
    assert len(SlowMissDict.stores) == THREADS


def test_locked_shared_array_is_one_array_per_launch(forced_race):
    install_shared_array_lock()
    np.testing.assert_array_equal(_rotate(), np.roll(np.arange(1, THREADS + 1), -1))
    assert len(SlowMissDict.stores) == 1


def test_install_is_idempotent():
    install_shared_array_lock()
    locked = kernelapi.FakeCUDAShared.array
    install_shared_array_lock()
    assert kernelapi.FakeCUDAShared.array is locked


def test_our_kernels_install_the_lock_before_compiling(monkeypatch):
    install_shared_array_lock()
    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", kernelapi.FakeCUDAShared.array.__wrapped__)
    monkeypatch.delitem(reduce.column_sums.__dict__, "dispatcher", raising=False)
    assert reduce.column_sums.dispatcher is not None
    assert kernelapi.FakeCUDAShared.array.gpucnn_locked


def test_block_reduction_under_the_forced_race(forced_race, emulated, small_numba_launches, monkeypatch):
    """A shared-memory reduction of the emulated backend is right when threads miss at once."""
    monkeypatch.setattr(SlowMissDict, "parties", 2)
    x = np.random.default_rng(0).standard_normal((70, 3)).astype(np.float32)
    np.testing.assert_allclose(launchers.bias_backward(x), reference.bias_backward(x), rtol=1e-5, atol=1e-5)
    assert SlowMissDict.stores
