"""How the Numba kernels of this package are declared: ``@kernel(signature)`` instead of ``@cuda.jit``.

The decorator keeps three things apart that plain ``@cuda.jit(signature)`` mixes up:

- the plain Python function (``.py_func``) and its launch signature (``.signature``), so the CPU compile
  check can run ``numba.cuda.compile_ptx`` on every kernel with no GPU and no simulator;
- compilation happens on the first launch, not at import: importing the package never needs a GPU, and a
  process compiles only the kernels it uses;
- jit options that the CUDA simulator rejects (``lineinfo``) are passed only to the real compiler;
- under the simulator, its ``cuda.shared.array`` is made thread-safe first (an upstream race, see
  ``gpucnn.emulator.numba_simulator``), so every path to a simulated kernel of ours gets the fix.
"""
import functools
import os

from numba import cuda

#: Every kernel declared with :func:`kernel`, in declaration order (read by the compile check).
REGISTRY = []


def simulating():
    """True when Numba's CUDA simulator runs the kernels (the ``emulated`` backend and the CI tests)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def jit_options():
    """Options for the real compiler: line info lets Nsight Compute map SASS back to the Python source."""
    return {} if simulating() else {"lineinfo": True}


class NumbaKernel:
    """A kernel compiled on first use for one explicit signature; launch as ``k[grid, block, stream](...)``.

    Scalars must be passed as NumPy scalars of the signature's types (``np.float32``, ``np.int64``, ...):
    an explicit signature does not convert Python floats to float32.
    """

    def __init__(self, py_func, signature):
        self.py_func = py_func
        self.signature = signature
        self.name = py_func.__name__

    @functools.cached_property
    def dispatcher(self):
        if simulating():
            from gpucnn.emulator.numba_simulator import install_shared_array_lock
            install_shared_array_lock()
        return cuda.jit(self.signature, **jit_options())(self.py_func)

    def __getitem__(self, launch_configuration):
        return self.dispatcher[launch_configuration]

    def __repr__(self):
        return f"NumbaKernel({self.name}, {self.signature!r})"


def kernel(signature, name=None):
    """Declare ``py_func`` as a CUDA kernel with one launch ``signature`` (a Numba signature string).

    ``name`` renames it, for kernels made by a factory from one template (each gets its own name).
    """
    def declare(py_func):
        if name is not None:
            py_func.__name__ = py_func.__qualname__ = name
        declared = NumbaKernel(py_func, signature)
        REGISTRY.append(declared)
        return declared
    return declare


def device(py_func):
    """A device function (inlined into the kernels that call it; compiled lazily, no GPU needed)."""
    return cuda.jit(device=True)(py_func)
