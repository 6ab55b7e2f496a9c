"""Compile every Numba kernel of ``gpucnn.kernels`` for sm_90 on any machine (no GPU needed) and read
ptxas' resource report, as ``nvrtc.py`` does for ``kernels/*.cu``.

Each kernel is compiled with the exact signature its launcher uses (``numba.cuda.compile_ptx``), then
its PTX is linked for the target by nvJitLink, whose verbose log is ptxas' report.  Numba's CUDA
simulator compiles nothing, so this needs a process without ``NUMBA_ENABLE_CUDASIM``; processes that
have it on (the tests) run ``python -m gpucnn.cuda.numba_compile``, which prints the report as JSON.
"""
import dataclasses
import importlib
import json
import os
import pkgutil
import sys
import types

from gpucnn.cuda.nvrtc import resources_from_log

COMPUTE_CAPABILITY = (9, 0)


@dataclasses.dataclass(frozen=True)
class NumbaCompileResult:
    name: str
    signature: str
    ptx_bytes: int = 0
    resources: object = None  # nvrtc.KernelResources, or None when compiling failed
    error: str = None


def _link_log(ptx, compute_capability):
    from cuda.bindings import nvjitlink

    major, minor = compute_capability
    handle = nvjitlink.create(2, [f"-arch=sm_{major}{minor}", "-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
    finally:
        nvjitlink.destroy(handle)
    return log.decode(errors="replace")


def compile_kernels(compute_capability=COMPUTE_CAPABILITY):
    """A NumbaCompileResult per declared kernel; a failure is reported on its kernel, not raised, so
    one broken kernel does not hide the state of the others."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        raise RuntimeError("Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM), which compiles nothing. "
                           "Fix: run `python -m gpucnn.cuda.numba_compile` without that variable.")
    from numba import cuda
    from numba.cuda import dispatcher

    import gpucnn.kernels
    from gpucnn.kernels import _numba

    # Importing a kernel module declares its kernels: every module of the package is checked, so a new
    # kernel file needs no entry here.
    for module in pkgutil.iter_modules(gpucnn.kernels.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"gpucnn.kernels.{module.name}")

    # Device functions ask the current device for its compute capability when a kernel calling them
    # is typed; with no GPU, answer with the target's.
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=compute_capability)
    results = []
    for declared in _numba.REGISTRY:
        try:
            ptx, _ = cuda.compile_ptx(declared.py_func, declared.signature, cc=compute_capability,
                                      lineinfo=True)
            resources = resources_from_log(declared.name, _link_log(ptx, compute_capability))
            results.append(NumbaCompileResult(declared.name, declared.signature, len(ptx), resources))
        except Exception as error:
            results.append(NumbaCompileResult(declared.name, declared.signature,
                                              error=f"{type(error).__name__}: {error}"))
    return results


def main():
    try:
        results = compile_kernels()
    except RuntimeError as error:
        sys.exit(str(error))
    print(json.dumps([dataclasses.asdict(result) for result in results]))


if __name__ == "__main__":
    main()
