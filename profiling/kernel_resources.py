"""Print ptxas' resource report (registers, spills, shared memory, stack) of every kernel in kernels/*.cu.

Compiles each file with NVRTC to a cubin (no GPU needed), with the options CuPy uses on a GPU:

    python profiling/kernel_resources.py [--arch sm_90]
"""
import argparse

from gpucnn.cuda import nvrtc

MAX_REGISTERS = 255


def format_report(results):
    lines = [f"{'kernel':<40} {'regs':>5} {'spill st':>9} {'spill ld':>9} {'smem B':>7} {'stack B':>8}"]
    for result in results:
        lines.append(f"{result.filename} ({result.arch})")
        for k in sorted(result.kernels, key=lambda k: k.name):
            flag = "  <-- spills" if k.spill_stores or k.spill_loads else ""
            flag += "  <-- too many registers" if k.registers > MAX_REGISTERS else ""
            lines.append(f"  {k.name:<38} {k.registers:>5} {k.spill_stores:>9} {k.spill_loads:>9} "
                         f"{k.shared_bytes:>7} {k.stack_bytes:>8}{flag}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=nvrtc.DEFAULT_ARCH, help="GPU architecture (default: %(default)s)")
    args = parser.parse_args()
    print(format_report([nvrtc.compile_cubin(name, args.arch) for name in nvrtc.cuda_sources()]))


if __name__ == "__main__":
    main()
