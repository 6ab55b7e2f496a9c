"""Where arrays live and which implementation runs each op.

Three backends share one op interface (same function names and signatures):

``cpu``       NumPy arrays, ops from ``gpucnn.reference`` (vectorized NumPy).  Always available.
``emulated``  NumPy arrays, ops from ``gpucnn.cuda``: the real kernels, run on the CPU by Numba's CUDA
              simulator and by our C++ emulator of CUDA C.  Very slow; for tests and debugging kernels.
``cuda``      CuPy arrays, ops from ``gpucnn.cuda`` launched on CuPy's current stream.

Choice: ``set_backend(name)``, else the ``GPUCNN_BACKEND`` environment variable, else ``cuda`` when CuPy
sees a device, else ``cpu``.  ``emulated`` and ``cuda`` exclude each other within one process because
Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when ``numba.cuda`` is first imported.
"""
import importlib
import importlib.metadata
import os
import re
import sys

import numpy as np

BACKEND_NAMES = ("cpu", "emulated", "cuda")

_current = None


class BackendError(RuntimeError):
    """A backend was asked for that this process or machine cannot provide."""


class Backend:
    """A backend: ``name``, the array module ``xp`` and the op namespace ``ops``."""

    def __init__(self, name, xp, ops):
        self.name = name
        self.xp = xp
        self.ops = ops

    def asarray(self, array):
        """A float32 C-contiguous array on this backend (host arrays are copied to the device)."""
        return self.xp.ascontiguousarray(self.xp.asarray(array, dtype=self.xp.float32))

    def to_numpy(self, array):
        """A NumPy copy (or view) of ``array``, which may live on the device."""
        if self.name == "cuda":
            return array.get() if hasattr(array, "get") else np.asarray(array)
        return np.asarray(array)

    def synchronize(self):
        if self.name == "cuda":
            self.xp.cuda.get_current_stream().synchronize()

    def __repr__(self):
        return f"Backend({self.name!r})"


def _simulator_enabled():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _enable_simulator():
    """Turn on Numba's CUDA simulator, which only works before ``numba.cuda`` is imported."""
    if _simulator_enabled():
        return
    if "numba.cuda" in sys.modules:
        raise BackendError(
            "backend 'emulated' needs Numba's CUDA simulator, but numba.cuda was already imported without "
            "it in this process. Fix: set GPUCNN_BACKEND=emulated (or NUMBA_ENABLE_CUDASIM=1) in the "
            "environment before starting Python, or call gpucnn.set_backend('emulated') before anything "
            "imports numba.cuda.")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"


def cuda_device_count():
    """Number of CUDA devices CuPy can use (0 when CuPy or a driver is missing)."""
    try:
        import cupy
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def cuda_unavailable_reason():
    """Why CuPy cannot use a CUDA device here (CuPy missing, no driver, no device), or None when it can."""
    try:
        import cupy
    except Exception as error:
        return f"CuPy does not import ({type(error).__name__}: {error})"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as error:
        return f"CuPy sees no CUDA device ({type(error).__name__}: {error})"
    return None if count > 0 else "CuPy sees no CUDA device (device count 0)"


#: First numba-cuda release that takes CuPy arrays through DLPack on the launch stream, which does not
#: synchronise (older ones go through the CUDA Array Interface and synchronise for every argument of every
#: launch, which also breaks CUDA-graph capture).
NUMBA_CUDA_DLPACK_VERSION = (0, 25)


def numba_cuda_version():
    """The installed numba-cuda version string, or None (numba's own, older ``numba.cuda`` only)."""
    try:
        return importlib.metadata.version("numba-cuda")
    except importlib.metadata.PackageNotFoundError:
        return None


def check_numba_cuda_interop(version):
    """BackendError unless numba-cuda ``version`` launches on CuPy arrays without synchronising: >= 0.25,
    or an older one told not to synchronise (``NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0``)."""
    release = tuple(int(part) for part in re.findall(r"\d+", version or "")[:2])
    if version is not None and release >= NUMBA_CUDA_DLPACK_VERSION:
        return
    if os.environ.get("NUMBA_CUDA_ARRAY_INTERFACE_SYNC") == "0":
        return
    found = f"numba-cuda {version}" if version else "numba's built-in numba.cuda (no numba-cuda package)"
    wanted = ".".join(map(str, NUMBA_CUDA_DLPACK_VERSION))
    raise BackendError(
        f"backend 'cuda' needs numba-cuda >= {wanted}, found {found}: older versions pass CuPy arrays "
        f"through the CUDA Array Interface and synchronise the stream for every argument of every kernel "
        f"launch (slow, and it breaks CUDA-graph capture). Fix: pip install -U 'numba-cuda[cu13]>={wanted}' "
        f"(or [cu12] for CUDA 12), or set NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0 in the environment before "
        f"starting Python.")


def _make_backend(name):
    if name == "cpu":
        return Backend("cpu", np, importlib.import_module("gpucnn.reference"))
    if name == "emulated":
        _enable_simulator()
        return Backend("emulated", np, importlib.import_module("gpucnn.cuda"))
    # name == "cuda"
    check_numba_cuda_interop(numba_cuda_version())
    if _simulator_enabled():
        raise BackendError(
            "backend 'cuda' cannot run in a process where Numba's CUDA simulator is on "
            "(NUMBA_ENABLE_CUDASIM is set, e.g. by the 'emulated' backend). Fix: start a new Python "
            "process without NUMBA_ENABLE_CUDASIM.")
    if cuda_device_count() == 0:
        raise BackendError(
            "backend 'cuda' needs CuPy and an NVIDIA GPU with a working driver, and none was found. "
            "Fix: install the GPU extra (pip install 'gpucnn[cuda13]' or 'gpucnn[cuda12]') on a machine "
            "with a GPU, or use set_backend('cpu').")
    import cupy
    return Backend("cuda", cupy, importlib.import_module("gpucnn.cuda"))


def _check_name(name):
    if not isinstance(name, str) or name.lower() not in BACKEND_NAMES:
        raise ValueError(
            f"Unknown backend {name!r}: expected one of {', '.join(map(repr, BACKEND_NAMES))}.")
    return name.lower()


def set_backend(name):
    """Select the backend for everything created afterwards: ``'cpu'``, ``'emulated'`` or ``'cuda'``.

    Build models after choosing the backend: weights live where the backend was when they were built.
    """
    global _current
    _current = _make_backend(_check_name(name))
    return _current.name


def _default_name():
    env = os.environ.get("GPUCNN_BACKEND")
    if env:
        try:
            return _check_name(env)
        except ValueError:
            raise ValueError(
                f"Environment variable GPUCNN_BACKEND={env!r} names no backend: use one of "
                f"{', '.join(BACKEND_NAMES)}, or unset it for the automatic choice.") from None
    if _simulator_enabled():
        return "cpu"
    return "cuda" if cuda_device_count() > 0 else "cpu"


def current():
    """The active :class:`Backend`, chosen on first use when ``set_backend`` was not called."""
    global _current
    if _current is None:
        _current = _make_backend(_default_name())
    return _current


def get_backend():
    """Name of the active backend: ``'cpu'``, ``'emulated'`` or ``'cuda'``."""
    return current().name


class using_backend:
    """Context manager that switches to backend ``name`` and restores the previous one on exit.

    >>> with using_backend('cpu'):
    ...     model = Sequential([...])
    """

    def __init__(self, name):
        self.name = name
        self._saved = None

    def __enter__(self):
        self._saved = _current
        set_backend(self.name)
        return _current

    def __exit__(self, *exc):
        global _current
        _current = self._saved
        return False
