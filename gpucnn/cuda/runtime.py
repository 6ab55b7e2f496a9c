"""How the launchers in ``gpucnn.cuda`` reach the device: one place for streams, module loading and
argument checks, so every launcher works unchanged on the ``cuda`` backend (CuPy arrays, real GPU) and
on the ``emulated`` backend (NumPy arrays, Numba's CUDA simulator and our C++ emulator of CUDA C).
"""
import functools
import importlib.resources

import numpy as np

from gpucnn import backend

# NVRTC options used both by CuPy on a GPU and by the CPU compile checks, so both see the same code.
# No --use_fast_math: results are compared with the float32 NumPy reference.
NVRTC_OPTIONS = ("-std=c++17",)


def kernels_dir():
    """Folder of the installed ``gpucnn.kernels`` package (holds the ``.cu`` / ``.cuh`` sources)."""
    return importlib.resources.files("gpucnn.kernels")


def kernel_source(filename):
    return (kernels_dir() / filename).read_text()


def is_emulated():
    return backend.current().name == "emulated"


def xp():
    return backend.current().xp


@functools.lru_cache(maxsize=None)
def _external_stream(ptr):
    from numba import cuda
    return cuda.external_stream(ptr)


def numba_stream():
    """Stream for Numba launches: CuPy's current stream on a GPU (no sync between the two libraries),
    the simulator's default stream when emulated.  One external-stream object per CuPy stream, because
    Numba caches launch configurations per stream object."""
    if is_emulated():
        return 0
    import cupy
    return _external_stream(cupy.cuda.get_current_stream().ptr)


@functools.lru_cache(maxsize=None)
def _cupy_module(filename):
    import cupy
    options = NVRTC_OPTIONS + (f"-I{kernels_dir()}",)
    return cupy.RawModule(code=kernel_source(filename), options=options)


@functools.lru_cache(maxsize=None)
def _emulated_module(filename):
    from gpucnn import emulator
    return emulator.load_module(str(kernels_dir() / filename))


def cuda_c_function(filename, name):
    """Kernel ``name`` (an ``extern "C" __global__`` entry point) of ``kernels/<filename>``, callable as
    ``f(grid, block, args, shared_mem=0)`` like ``cupy.RawKernel``.  Compiled once per process."""
    module = _emulated_module(filename) if is_emulated() else _cupy_module(filename)
    return module.get_function(name)


def check_array(name, array, ndim=None, dtype=np.float32):
    """Raise a clear TypeError/ValueError unless ``array`` is a C-contiguous array of ``dtype`` and rank
    ``ndim`` living on the current backend."""
    module = xp()
    if not isinstance(array, module.ndarray):
        raise TypeError(f"Argument `{name}` must be a {module.__name__}.ndarray on the "
                        f"'{backend.current().name}' backend, got {type(array).__name__}.")
    if array.dtype != dtype:
        raise TypeError(f"Argument `{name}` must have dtype {np.dtype(dtype).name}, got {array.dtype}. "
                        f"Fix: convert with .astype({np.dtype(dtype).name}).")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"Argument `{name}` must have rank {ndim}, got shape {tuple(array.shape)}.")
    if not array.flags.c_contiguous:
        raise ValueError(f"Argument `{name}` must be C-contiguous. Fix: pass xp.ascontiguousarray({name}).")
    return array


def blocks_for(count, threads):
    """Number of blocks of ``threads`` threads that cover ``count`` items (at least 1)."""
    return max(1, -(-int(count) // threads))
