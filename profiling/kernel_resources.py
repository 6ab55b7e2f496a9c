"""Print ptxas' resource report (registers, spills, shared memory, stack) of every kernel: the CUDA C of
kernels/*.cu (compiled with NVRTC, the options CuPy uses on a GPU) and the Numba kernels of
gpucnn/kernels (numba.cuda.compile_ptx + nvJitLink).  For the CUDA C kernels it adds the static SASS
instruction mix (cuobjdump): tensor-core HMMA, FP32 FFMA, shared (LDS) and global (LDG) loads, a speed
signal without a GPU: the tensor-core kernels must show HMMA.  No GPU needed:

    python profiling/kernel_resources.py [--arch sm_90]

The Numba part needs Numba's simulator off (NUMBA_ENABLE_CUDASIM unset).
"""
import argparse

from gpucnn.cuda import numba_compile, nvrtc

MAX_REGISTERS = 255


MIX = ("HMMA", "FFMA", "LDS", "LDG")


def format_rows(title, kernels, mix=None):
    lines = [title]
    for k in sorted(kernels, key=lambda k: k.name):
        flag = "  <-- spills" if k.spill_stores or k.spill_loads else ""
        flag += "  <-- too many registers" if k.registers > MAX_REGISTERS else ""
        counts = "".join(f" {mix[k.name][op]:>5}" for op in MIX) if mix and k.name in mix else ""
        lines.append(f"  {k.name:<38} {k.registers:>5} {k.spill_stores:>9} {k.spill_loads:>9} "
                     f"{k.shared_bytes:>7} {k.stack_bytes:>8}{counts}{flag}")
    return lines


def format_report(cuda_c_results, numba_results, arch, mixes=None):
    """The table; ``mixes`` maps a .cu file name to nvrtc.sass_instruction_counts of its cubin (columns
    HMMA FFMA LDS LDG, static counts), or is None."""
    lines = [f"{'kernel':<40} {'regs':>5} {'spill st':>9} {'spill ld':>9} {'smem B':>7} {'stack B':>8}"
             + ("".join(f" {op:>5}" for op in MIX) if mixes else "")]
    for result in cuda_c_results:
        lines += format_rows(f"{result.filename} ({result.arch})", result.kernels,
                             (mixes or {}).get(result.filename))
    if isinstance(numba_results, str):
        lines.append(f"Numba kernels: not compiled ({numba_results})")
        return "\n".join(lines)
    lines += format_rows(f"Numba kernels ({arch})", [r.resources for r in numba_results if r.resources])
    lines += [f"  {r.name:<38} FAILED: {r.error}" for r in numba_results if r.error]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=nvrtc.DEFAULT_ARCH, help="GPU architecture (default: %(default)s)")
    args = parser.parse_args()
    digits = args.arch.removeprefix("sm_")
    try:
        numba_results = numba_compile.compile_kernels((int(digits[:-1]), int(digits[-1])))
    except RuntimeError as error:
        numba_results = str(error)
    cuda_c_results = [nvrtc.compile_cubin(name, args.arch) for name in nvrtc.cuda_sources()]
    try:
        mixes = {r.filename: nvrtc.sass_instruction_counts(r.cubin) for r in cuda_c_results}
    except nvrtc.CompileError as error:
        print(f"SASS instruction mix: not available ({error})")
        mixes = None
    print(format_report(cuda_c_results, numba_results, args.arch, mixes))


if __name__ == "__main__":
    main()
