"""Autotuning of the GEMM kernels (conv and Dense) on the user's GPU.

The tile shape and split-K factor that run fastest depend on the GPU and the problem, and the launcher's
heuristic (:func:`gpucnn.cuda.gemm.choose_tile`, ``choose_split_k``) was written without the hardware at
hand.  On the ``cuda`` backend, the first time a problem is seen (the kernel family and precision variant,
every shape argument, the GPU), :class:`Autotuner` times each candidate launch with CUDA events (one
warm-up, then the median of ``REPEATS``) and keeps the fastest: in memory and in a JSON file on disk
(``$GPUCNN_AUTOTUNE_CACHE``, default ``~/.cache/gpucnn/autotune.json``) so the next process starts tuned.
Entries are keyed by the GPU's name, the driver and CUDA runtime versions and a hash of the kernel source,
so a new driver or an edited kernel is tuned again.  The file is rewritten atomically (temporary file + rename) under an
exclusive lock (read, merge, write), so concurrent processes never corrupt it or lose each other's
entries; an unreadable or corrupt file counts as empty.

Tuning runs eagerly, during the training step's warm-up: inside a CUDA-graph capture the tuner never
times anything (it uses a known winner, else the heuristic).  Each first sight costs one host sync and a
few extra launches per candidate.  ``GPUCNN_AUTOTUNE=0`` or ``set_autotune(False)`` turns it off: the
heuristic then picks, as on the ``cpu`` and ``emulated`` backends; ``autotuning(flag)`` sets it for a
``with`` block, and ``compile(..., autotune=flag)`` for one model's steps.
"""
import contextlib
import fcntl
import functools
import hashlib
import json
import math
import os
import statistics
import tempfile
import warnings
from pathlib import Path

from gpucnn import backend
from gpucnn.cuda import runtime

AUTOTUNE_ENV = "GPUCNN_AUTOTUNE"
CACHE_ENV = "GPUCNN_AUTOTUNE_CACHE"
REPEATS = 5

_enabled = None  # set_autotune's value; None: the environment variable (on unless "0")


def set_autotune(enabled):
    """Turn autotuning on the ``cuda`` backend on or off (off: the launcher's heuristic picks)."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"Argument `enabled` must be True or False, got {enabled!r}.")
    _enabled = enabled


@contextlib.contextmanager
def autotuning(enabled):
    """Inside the ``with`` block autotuning is on or off as ``enabled`` says (None: as it is); on exit the
    previous switch comes back (how a model compiled with ``autotune=...`` runs its steps)."""
    global _enabled
    if enabled is None:
        yield
        return
    previous = _enabled
    set_autotune(enabled)
    try:
        yield
    finally:
        _enabled = previous


def autotune_enabled():
    if _enabled is not None:
        return _enabled
    value = os.environ.get(AUTOTUNE_ENV, "1")
    if value not in ("0", "1"):
        raise ValueError(f"The environment variable {AUTOTUNE_ENV} must be '0' (off) or '1' (on), got "
                         f"{value!r}.")
    return value == "1"


def default_cache_path():
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "gpucnn" / "autotune.json"


def read_cache_file(path):
    """The entries of the cache file at ``path``; {} when it is missing, unreadable or corrupt."""
    try:
        entries = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        warnings.warn(f"gpucnn autotune cache {path} is unreadable ({error}); it is tuned anew and rewritten.",
                      RuntimeWarning, stacklevel=2)
        return {}
    return entries if isinstance(entries, dict) else {}


@contextlib.contextmanager
def _locked(path):
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_cache_entry(path, key, value):
    """Add ``key: value`` to the cache file: under an exclusive lock, re-read the file (other processes may
    have added entries), merge, write a temporary file and rename it over the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = read_cache_file(path)
        entries[key] = value
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            json.dump(entries, tmp, indent=0, sort_keys=True)
        os.replace(tmp.name, path)


class Autotuner:
    """Picks the fastest candidate per problem.

    ``timer(run)`` returns the time of ``run()`` (any unit, smaller is faster); ``device`` names the GPU and
    driver (part of every key); ``launch_errors`` are the exceptions that mark a candidate as unable to run
    on this GPU (it is skipped, not chosen).
    """

    def __init__(self, timer, device, cache_path, launch_errors=()):
        self.timer = timer
        self.device = device
        self.cache_path = Path(cache_path)
        self.launch_errors = tuple(launch_errors)
        self._memory = None

    def key(self, problem, source_hash):
        return json.dumps([self.device, source_hash, problem])

    def known(self, key, candidates):
        """The stored winner for ``key`` if it is still one of ``candidates``, else None."""
        if self._memory is None:
            self._memory = read_cache_file(self.cache_path)
        winner = self._memory.get(key)
        return tuple(winner) if winner is not None and tuple(winner) in candidates else None

    def choose(self, problem, source_hash, candidates, run, tune=True):
        """The fastest of ``candidates`` (tuples of JSON values) for ``problem``: the stored winner, else,
        when ``tune``, the one whose ``run(candidate)`` the timer finds fastest (stored); else None."""
        candidates = [tuple(c) for c in candidates]
        key = self.key(problem, source_hash)
        winner = self.known(key, candidates)
        if winner is not None or not tune:
            return winner
        times = []
        for candidate in candidates:
            try:
                times.append(self.timer(functools.partial(run, candidate)))
            except self.launch_errors:
                times.append(math.inf)
        if min(times) == math.inf:
            return None
        winner = candidates[times.index(min(times))]
        self._memory[key] = list(winner)
        write_cache_entry(self.cache_path, key, list(winner))
        return winner


@functools.lru_cache(maxsize=None)
def source_hash(filename):
    """Hash of ``kernels/<filename>`` with its headers inlined: an edit invalidates its tuned entries."""
    return hashlib.sha256(runtime.kernel_source(filename).encode()).hexdigest()[:16]


def cuda_event_timer(run, repeats=REPEATS):
    """Median time in ms of ``run()`` on the current stream, by CUDA events, after one warm-up run."""
    import cupy
    stream = cupy.cuda.get_current_stream()
    run()
    times = []
    for _ in range(repeats):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        run()
        end.record(stream)
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


@functools.lru_cache(maxsize=None)
def _cuda_tuner(cache_path):
    import cupy
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = properties["name"]
    # The CUDA runtime (NVRTC) version too: another compiler can make another candidate the fastest.
    device = (f"{name.decode() if isinstance(name, bytes) else name} driver {cupy.cuda.runtime.driverGetVersion()} "
              f"runtime {cupy.cuda.runtime.runtimeGetVersion()}")
    return Autotuner(cuda_event_timer, device, cache_path,
                     (cupy.cuda.driver.CUDADriverError, cupy.cuda.runtime.CUDARuntimeError))


def current_tuner():
    """The tuner of this process's GPU, or None where autotuning does not apply (off, not ``cuda``)."""
    if not autotune_enabled() or backend.current().name != "cuda":
        return None
    return _cuda_tuner(default_cache_path())


def capturing():
    """Whether the current CUDA stream is capturing a graph (then nothing may be timed or synchronized)."""
    import cupy
    return cupy.cuda.get_current_stream().is_capturing()


_forced = None      # forced(): the candidate every launch runs
_recorders = []     # recording(): lists that collect (problem, candidates) of each launch


@contextlib.contextmanager
def forced(candidate):
    """Inside, every GEMM launch runs ``candidate`` (tile suffix, K splits), whatever the tuner or the
    heuristic would pick: how a benchmark times each candidate."""
    global _forced
    previous, _forced = _forced, tuple(candidate)
    try:
        yield
    finally:
        _forced = previous


@contextlib.contextmanager
def recording():
    """Yields a list that collects ``(problem, candidates)`` of every GEMM launch made inside."""
    calls = []
    _recorders.append(calls)
    try:
        yield calls
    finally:
        _recorders.remove(calls)


def choose(problem, filename, candidates, run, fallback):
    """The candidate to launch for ``problem`` (kernels of ``kernels/<filename>``): tuned on the ``cuda``
    backend (never while a CUDA graph is being captured), else ``fallback`` (the heuristic's choice)."""
    for calls in _recorders:
        calls.append((problem, list(candidates)))
    if _forced is not None:
        return _forced
    tuner = current_tuner()
    if tuner is None:
        return fallback
    winner = tuner.choose(problem, source_hash(filename), candidates, run, tune=not capturing())
    return fallback if winner is None else winner
