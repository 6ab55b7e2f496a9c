"""Compile ``kernels/*.cu`` with NVRTC to an sm_90 cubin on any machine (no GPU needed) and read ptxas'
resource report: registers, spill stores / loads and shared memory per kernel.

A cubin, not PTX, is requested on purpose: a newer NVRTC emits PTX that an older ptxas refuses, while the
cubin is assembled by the ptxas built into NVRTC.  The source (headers inlined) and the options are those
CuPy compiles on a GPU (``runtime.NVRTC_OPTIONS`` and the ``-ftz=true`` CuPy adds), so this checks the very
code that will run.
"""
import collections
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gpucnn.cuda import runtime

DEFAULT_ARCH = "sm_90"


class CompileError(RuntimeError):
    """NVRTC rejected a kernel source; the message holds its log."""


@dataclass(frozen=True)
class KernelResources:
    name: str
    registers: int
    spill_stores: int
    spill_loads: int
    shared_bytes: int
    stack_bytes: int


@dataclass(frozen=True)
class CompileResult:
    filename: str
    arch: str
    cubin: bytes
    log: str
    kernels: tuple  # KernelResources, one per entry point, in the order ptxas reports them


def _check(result, what, program=None):
    from cuda.bindings import nvrtc
    if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = _program_log(program) if program is not None else ""
        raise CompileError(f"{what} failed ({result.name}):\n{log}")


def _program_log(program):
    from cuda.bindings import nvrtc
    _, size = nvrtc.nvrtcGetProgramLogSize(program)
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(program, log)
    return log.rstrip(b"\x00 ").decode(errors="replace")


def compile_cubin(filename, arch=DEFAULT_ARCH):
    """Compile ``kernels/<filename>`` to a cubin for ``arch``; raise CompileError with NVRTC's log."""
    from cuda.bindings import nvrtc
    text = runtime.kernel_source(filename)
    result, program = nvrtc.nvrtcCreateProgram(text.encode(), filename.encode(), 0, [], [])
    _check(result, f"nvrtcCreateProgram({filename})")
    try:
        options = [o.encode() for o in (*runtime.nvrtc_options(text), *runtime.CUPY_IMPLICIT_NVRTC_OPTIONS,
                                        f"--gpu-architecture={arch}", "--ptxas-options=-v")]
        (result,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
        _check(result, f"compiling {filename} for {arch}", program)
        log = _program_log(program)
        _, size = nvrtc.nvrtcGetCUBINSize(program)
        cubin = b" " * size
        (result,) = nvrtc.nvrtcGetCUBIN(program, cubin)
        _check(result, f"nvrtcGetCUBIN({filename})")
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    return CompileResult(filename, arch, cubin, log, parse_ptxas_log(log))


_FUNCTION = re.compile(r"Compiling entry function '(?P<name>[^']+)'")
_SPILLS = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
                     r"(?P<loads>\d+) bytes spill loads")
_USAGE = re.compile(r"Used (?P<registers>\d+) registers")
_SHARED = re.compile(r"(?P<shared>\d+) bytes smem")


def parse_ptxas_log(log):
    """KernelResources for every entry function in a ``ptxas -v`` log.

    ptxas writes, per function, a "Compiling entry function 'name'" line, then the stack / spill line,
    then "Used N registers, ... M bytes smem, ..." (the smem part is absent when the kernel uses none).
    """
    kernels = []
    name = stack = stores = loads = None
    for line in log.splitlines():
        if m := _FUNCTION.search(line):
            name, stack, stores, loads = m["name"], 0, 0, 0
        elif name is not None and (m := _SPILLS.search(line)):
            stack, stores, loads = int(m["stack"]), int(m["stores"]), int(m["loads"])
        elif name is not None and (m := _USAGE.search(line)):
            shared = _SHARED.search(line)
            kernels.append(KernelResources(name, int(m["registers"]), stores, loads,
                                           int(shared["shared"]) if shared else 0, stack))
            name = None
    return tuple(kernels)


def resources_from_log(name, log):
    """KernelResources of the one kernel ``name`` in a linker log (nvJitLink ``-verbose``): its ptxas
    lines give registers and spills; its own summary line gives the static shared memory."""
    registers = re.search(r"[Uu]sed (\d+) registers", log)
    if registers is None:
        raise CompileError(f"no register count for {name} in the log:\n{log}")
    spills = _SPILLS.search(log)
    shared = _SHARED.search(log)
    return KernelResources(name, int(registers[1]), int(spills["stores"]) if spills else 0,
                           int(spills["loads"]) if spills else 0, int(shared["shared"]) if shared else 0,
                           int(spills["stack"]) if spills else 0)


def binary_utility(name):
    """Path of the CUDA tool ``name`` (``cuobjdump``, ``nvdisasm``): from its nvidia-cuda-<name> wheel (in
    gpucnn's test extra), else a CUDA toolkit's on PATH."""
    try:
        from cuda import pathfinder
        found = pathfinder.find_nvidia_binary_utility(name)
    except (ImportError, RuntimeError):
        found = None
    found = found or shutil.which(name)
    if found is None:
        raise CompileError(f"{name} not found. Fix: pip install nvidia-cuda-{name} (in gpucnn's test extra) "
                           f"or put a CUDA toolkit's bin folder on PATH.")
    return found


_SASS_FUNCTION = re.compile(r"^\s*Function : (\S+)")
_SASS_INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)")


def parse_sass(text):
    """``{kernel: Counter of opcodes}`` (HMMA, FFMA, LDS, LDG, ... without their modifiers) of
    ``cuobjdump -sass`` output."""
    counts, current = {}, None
    for line in text.splitlines():
        if m := _SASS_FUNCTION.match(line):
            current = counts.setdefault(m[1], collections.Counter())
        elif current is not None and (m := _SASS_INSTRUCTION.match(line)):
            current[m[1]] += 1
    return counts


def sass_instruction_counts(cubin):
    """The static instruction mix of every kernel in ``cubin``: ``{kernel: Counter of SASS opcodes}``.
    Tensor-core kernels show HMMA, the CUDA-core GEMMs FFMA.  No GPU needed."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernels.cubin"
        path.write_bytes(cubin)
        # cuobjdump -sass runs nvdisasm, which it looks for on PATH: the two wheels need not share a folder.
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(binary_utility("nvdisasm")).parent),
                                                     os.environ.get("PATH", "")]))
        result = subprocess.run([binary_utility("cuobjdump"), "-sass", str(path)], capture_output=True, text=True,
                                check=False, env=env)
    if result.returncode != 0:
        raise CompileError(f"cuobjdump -sass failed:\n{result.stderr}")
    return parse_sass(result.stdout)


def cuda_sources():
    """Names of every ``.cu`` file in ``kernels/``, sorted."""
    return sorted(p.name for p in runtime.kernels_dir().iterdir() if p.name.endswith(".cu"))
