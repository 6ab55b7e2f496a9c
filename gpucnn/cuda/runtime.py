"""How the launchers in ``gpucnn.cuda`` reach the device: one place for streams, module loading and
argument checks, so every launcher works unchanged on the ``cuda`` backend (CuPy arrays, real GPU) and
on the ``emulated`` backend (NumPy arrays, Numba's CUDA simulator and our C++ emulator of CUDA C).
"""
import functools
import importlib.resources
import os
import re
from pathlib import Path

import numpy as np

from gpucnn import backend

# NVRTC options used both by CuPy on a GPU and by the CPU compile checks, so both see the same code.
# No --use_fast_math: results are compared with the float32 NumPy reference.
NVRTC_OPTIONS = ("-std=c++17",)
# What CuPy appends to every NVRTC compile on its own (flush denormals to zero); the CPU compile check
# adds it too.
CUPY_IMPLICIT_NVRTC_OPTIONS = ("-ftz=true",)

_TOOLKIT_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*<([^>]+)>', re.M)
_LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[^\n]*$', re.M)
_PRAGMA_ONCE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+once[^\n]*$", re.M)


def kernels_dir():
    """Folder of the installed ``gpucnn.kernels`` package (holds the ``.cu`` / ``.cuh`` sources)."""
    return importlib.resources.files("gpucnn.kernels")


def kernel_source(filename):
    """The text of ``kernels/<filename>`` with its ``#include "..."`` headers (from the same folder) inlined,
    each once, between ``#line`` directives so compiler messages still name the original file and line.

    CuPy keys its on-disk kernel cache by the source text and the options, not by the headers NVRTC would
    read through ``-I``: with the headers inlined, an edit of ``common.cuh`` compiles anew instead of
    silently loading the cubin built from the old header.
    """
    return _inline_includes(filename, set())


def _inline_includes(filename, included):
    included.add(filename)
    text = (kernels_dir() / filename).read_text()
    pieces, end = [], 0
    for match in _LOCAL_INCLUDE.finditer(text):
        header = match.group(1)
        next_line = text.count("\n", 0, match.end()) + 2
        pieces.append(text[end:match.start()])
        if header not in included:
            body = _PRAGMA_ONCE.sub("", _inline_includes(header, included))
            pieces.append(f'#line 1 "{header}"\n{body}\n')
        pieces.append(f'#line {next_line} "{filename}"')
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces)


DEFAULT_CUDA_PATH = "/usr/local/cuda"


@functools.lru_cache(maxsize=None)
def toolkit_include_dir():
    """The CUDA toolkit's include folder that holds ``mma.h`` with its ``crt/`` part (NVRTC has no built-in
    copy): from the nvidia-cuda-runtime / nvidia-cuda-crt wheels, else CuPy's toolkit, $CUDA_PATH,
    $CUDA_HOME or /usr/local/cuda."""
    candidates = []
    try:
        from cuda import pathfinder
        candidates.append(pathfinder.find_nvidia_header_directory("cudart"))
    except (ImportError, RuntimeError):
        pass
    try:  # the toolkit CuPy itself uses, where it found one
        import cupy
        candidates.append(cupy.cuda.get_cuda_path())
    except (ImportError, AttributeError, RuntimeError):
        pass
    candidates += [os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), DEFAULT_CUDA_PATH]
    for candidate in candidates:
        if candidate and (Path(candidate) / "include" / "crt" / "mma.h").is_file():
            return str(Path(candidate) / "include")
        if candidate and (Path(candidate) / "crt" / "mma.h").is_file():
            return str(candidate)
    raise RuntimeError("The tensor-core kernels include the CUDA toolkit's <mma.h>, found in none of "
                       f"{[c for c in candidates if c]}. Fix: pip install 'nvidia-cuda-runtime>=13' "
                       "'nvidia-cuda-crt>=13' (the cuda13 extra of gpucnn), or set CUDA_PATH to a CUDA toolkit.")


def nvrtc_options(source):
    """NVRTC_OPTIONS for the kernel ``source``, with the toolkit's include folder when it includes a toolkit
    header (``#include <mma.h>``): CuPy and the CPU compile check then both find the same headers."""
    if _TOOLKIT_INCLUDE.search(source):
        return (*NVRTC_OPTIONS, f"--include-path={toolkit_include_dir()}")
    return NVRTC_OPTIONS


def is_emulated():
    return backend.current().name == "emulated"


def xp():
    return backend.current().xp


@functools.lru_cache(maxsize=None)
def _external_stream(ptr):
    from numba import cuda
    quiet_numba_occupancy_warning()
    return cuda.external_stream(ptr)


def quiet_numba_occupancy_warning():
    """Turn off Numba's warning for launches of fewer than 128 blocks.

    Our grids are small on purpose (small tensors; grid-stride loops cover the rest), so the warning is
    noise, and where warnings are errors it fails the step that first configures a launch on a new
    stream: the CUDA-graph warm-up and capture.  Set on the config module Numba's dispatcher reads at
    each new launch configuration (its ``_LaunchConfiguration``), whatever numba-cuda version moved it to.
    """
    from numba.cuda import dispatcher
    dispatcher.config.CUDA_LOW_OCCUPANCY_WARNINGS = 0


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
    source = kernel_source(filename)
    return cupy.RawModule(code=source, options=nvrtc_options(source))


@functools.lru_cache(maxsize=None)
def _emulated_module(filename):
    from gpucnn import emulator
    return emulator.load_module(str(kernels_dir() / filename))


def compile_module(filename):
    """Compile ``kernels/<filename>`` now rather than at its first launch (on the cuda backend, NVRTC and
    ptxas for this GPU, kept in CuPy's disk cache for later processes; emulated, g++)."""
    if is_emulated():
        _emulated_module(filename)
    else:
        _cupy_module(filename).compile()


def cuda_c_function(filename, name):
    """Kernel ``name`` (an ``extern "C" __global__`` entry point) of ``kernels/<filename>``, callable as
    ``f(grid, block, args, shared_mem=0)`` like ``cupy.RawKernel``.  Compiled once per process."""
    return _function(is_emulated(), filename, name)


@functools.lru_cache(maxsize=None)
def _function(emulated, filename, name):
    # CuPy's RawModule.get_function builds a new RawKernel (a module-function lookup) on every call: a
    # step launches dozens of CUDA C kernels, so each is looked up once per process instead.
    module = _emulated_module(filename) if emulated else _cupy_module(filename)
    return module.get_function(name)


def device_sm_count():
    """Streaming multiprocessors of the current CUDA device, or None off the GPU (emulated, cpu)."""
    if backend.current().name != "cuda":
        return None
    import cupy
    return _sm_count_of(cupy.cuda.Device().id)


@functools.lru_cache(maxsize=None)
def _sm_count_of(device_id):
    import cupy
    return int(cupy.cuda.Device(device_id).attributes["MultiProcessorCount"])


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
