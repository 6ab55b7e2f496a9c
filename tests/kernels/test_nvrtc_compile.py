"""Every kernels/*.cu compiles with NVRTC to an sm_90 cubin, without register spills or local-memory
arrays and within 255 registers (ptxas' report, parsed by gpucnn.cuda.nvrtc), and the tensor-core kernels
run on tensor cores (HMMA in their SASS, cuobjdump).  No GPU needed."""
import collections
import functools
import importlib.util
import re
import sys
from pathlib import Path

import cuda.bindings.nvrtc  # noqa: F401  (no importorskip: the test extra installs it; CI must not skip)
import pytest

from gpucnn.cuda import numba_compile, nvrtc

SOURCES = nvrtc.cuda_sources()


@functools.lru_cache(maxsize=None)
def _compiled(filename):
    return nvrtc.compile_cubin(filename)


def test_kernel_sources_exist():
    assert {"conv.cu", "gemm.cu", "conv_tc.cu", "gemm_tc.cu"} <= set(SOURCES)


@pytest.mark.parametrize("filename", SOURCES)
def test_compiles_to_sm90_cubin(filename):
    result = _compiled(filename)
    assert result.cubin[:4] == b"\x7fELF"  # a cubin is an ELF image; PTX would be text
    assert result.kernels, f"ptxas reported no entry function for {filename}:\n{result.log}"


@pytest.mark.parametrize("filename", SOURCES)
def test_no_spills_and_at_most_255_registers(filename):
    for kernel in _compiled(filename).kernels:
        assert kernel.spill_stores == 0 and kernel.spill_loads == 0, f"{filename}: {kernel}"
        # A stack frame without spills is a per-thread array indexed at run time: local memory, as slow.
        assert kernel.stack_bytes == 0, f"{filename}: {kernel}"
        assert kernel.registers <= 255, f"{filename}: {kernel}"


def test_report_parser_reads_ptxas_lines():
    log = ("ptxas info    : Compiling entry function 'k' for 'sm_90'\n"
           "ptxas info    : Function properties for k\n"
           "ptxas         .     8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
           "ptxas info    : Used 40 registers, used 1 barriers, 1024 bytes smem\n"
           "ptxas info    : Compiling entry function 'j' for 'sm_90'\n"
           "ptxas info    : Function properties for j\n"
           "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
           "ptxas info    : Used 9 registers\n")
    assert nvrtc.parse_ptxas_log(log) == (nvrtc.KernelResources("k", 40, 4, 12, 1024, 8),
                                          nvrtc.KernelResources("j", 9, 0, 0, 0, 0))


def test_compile_error_carries_the_log(monkeypatch):
    from gpucnn.cuda import runtime
    monkeypatch.setattr(runtime, "kernel_source", lambda filename: "extern \"C\" __global__ void k() { oops; }")
    with pytest.raises(nvrtc.CompileError, match="oops"):
        nvrtc.compile_cubin("broken.cu")


def test_resource_report_lists_every_kernel():
    script = Path(__file__).resolve().parents[2] / "profiling" / "kernel_resources.py"
    spec = importlib.util.spec_from_file_location("kernel_resources", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = _compiled("gemm.cu")
    numba_kernel = nvrtc.KernelResources("relu_forward", 26, 0, 8, 0, 0)
    mix = {kernel.name: collections.Counter({"HMMA": 0, "FFMA": 900 + i, "LDS": 7, "LDG": 3})
           for i, kernel in enumerate(result.kernels)}
    report = module.format_report([result], [numba_compile.NumbaCompileResult(
        "relu_forward", "void()", 100, numba_kernel)], "sm_90", {"gemm.cu": mix})
    assert all(k.name in report for k in result.kernels)
    assert " HMMA  FFMA   LDS   LDG" in report.splitlines()[0]
    assert all(f"     0   {900 + i}     7     3" in report for i in range(len(result.kernels)))
    assert "Numba kernels (sm_90)" in report and "relu_forward" in report and "<-- spills" in report
    # With the simulator on, the report says why the Numba kernels are missing.
    assert "not compiled (simulator on)" in module.format_report([result], "simulator on", "sm_90")


def _kernel_folder(monkeypatch, tmp_path, files):
    from gpucnn.cuda import runtime
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(runtime, "kernels_dir", lambda: tmp_path)
    return runtime


def test_source_inlines_headers_so_cupys_cache_key_sees_them(monkeypatch, tmp_path):
    # CuPy keys its on-disk cubin cache by the source text and options only: a header reached through -I
    # could change without the key changing, and a GPU would run kernels built from the old header.
    runtime = _kernel_folder(monkeypatch, tmp_path, {
        "k.cu": '#include "a.cuh"\n#include "a.cuh"\nextern "C" __global__ void k(float* x) { x[0] = VALUE; }\n',
        "a.cuh": "#pragma once\n#define VALUE 1.5f\n"})
    before = runtime.kernel_source("k.cu")
    assert "#include" not in before and before.count("#define VALUE 1.5f") == 1  # each header once
    (tmp_path / "a.cuh").write_text("#pragma once\n#define VALUE -2.0f\n")
    assert "#define VALUE -2.0f" in runtime.kernel_source("k.cu")


def test_compile_errors_in_an_inlined_header_name_the_header_and_line(monkeypatch, tmp_path):
    _kernel_folder(monkeypatch, tmp_path, {
        "k.cu": '// a kernel\n#include "a.cuh"\nextern "C" __global__ void k(float* x) { x[0] = f(); }\n',
        "a.cuh": "#pragma once\n__device__ float f() {\n    return oops;\n}\n"})
    with pytest.raises(nvrtc.CompileError, match=r'a\.cuh\(3\).*oops'):
        nvrtc.compile_cubin("k.cu")


def test_project_sources_hold_no_include_for_nvrtc_to_resolve():
    # Our headers are inlined; the only includes left are the toolkit's wmma and bf16 headers, which
    # runtime.nvrtc_options points NVRTC to.
    from gpucnn.cuda import runtime
    for filename in SOURCES:
        includes = re.findall(r"#\s*include\s*(\S+)", runtime.kernel_source(filename))
        assert set(includes) <= {"<mma.h>", "<cuda_bf16.h>"}, (filename, includes)


def test_every_entry_point_the_launchers_ask_for_is_compiled():
    # launch_gemm builds kernel names from an op prefix and the tile it picks: each must exist in the cubin.
    from gpucnn.cuda import gemm
    prefixes = {"conv.cu": ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_filter"),
                "gemm.cu": ("gemm_nn", "gemm_nt", "gemm_tn")}
    for base_file, ops in prefixes.items():
        for precision in ("highest", "high", "medium"):
            variants = {gemm.kernel_variant(base_file, op, precision) for op in ops}
            (filename,) = {variant[0] for variant in variants}
            compiled = {kernel.name for kernel in _compiled(filename).kernels}
            wanted = {f"{prefix}_{tile.suffix}" for file, prefix, _ in variants
                      for tile in gemm.tiles_of(file, prefix)} | {"split_k_reduce"}
            assert wanted <= compiled, (filename, sorted(wanted - compiled))


@functools.lru_cache(maxsize=None)
def _instruction_mix(filename):
    return nvrtc.sass_instruction_counts(_compiled(filename).cubin)


@pytest.mark.parametrize("filename", ["gemm_tc.cu", "conv_tc.cu", "gemm.cu", "conv.cu"])
def test_tensor_core_kernels_use_tensor_cores(filename):
    mix = _instruction_mix(filename)
    assert set(mix) == {kernel.name for kernel in _compiled(filename).kernels}
    from gpucnn.cuda import gemm
    tile_suffixes = tuple(gemm.TILES)  # GEMM tiles; not split_k_reduce or conv2d_backward_data_narrow
    for name, counts in mix.items():
        gemm_tile = name.endswith(tile_suffixes)
        if gemm_tile and filename.endswith("_tc.cu"):
            # BF16 m16n16k16 is two HMMA.16816 per fragment pair, TF32 m16n16k8 two HMMA.1684 per k step.
            assert counts["HMMA"] >= 4, (name, counts)
        else:
            assert counts["HMMA"] == 0, (name, counts)
        if gemm_tile and not filename.endswith("_tc.cu"):
            assert counts["FFMA"] >= 64, (name, counts)  # the 4×4 (or 8×8) register-blocked FMAs


def test_sass_parser_counts_opcodes_per_kernel():
    text = ("\t\tFunction : k\n"
            "        /*0000*/                   LDC R1, c[0x0][0x28] ;   /* 0x00000a00ff017b82 */\n"
            "                                                            /* 0x000fe20000000800 */\n"
            "        /*0260*/                   HMMA.1684.F32.TF32 R8, R4.reuse, R20, RZ ;\n"
            "        /*0270*/               @!P0 HMMA.16816.F32.BF16 R4, R4, R24, RZ ;\n"
            "\t\tFunction : j\n"
            "        /*0010*/               @P1 FFMA R2, R3, R4, R2 ;\n")
    assert nvrtc.parse_sass(text) == {"k": collections.Counter({"HMMA": 2, "LDC": 1}),
                                      "j": collections.Counter({"FFMA": 1})}


def test_toolkit_headers_are_found_or_the_error_says_how_to_get_them(monkeypatch, tmp_path):
    from cuda import pathfinder

    from gpucnn.cuda import runtime

    def not_found(name):
        raise RuntimeError(f"no {name}")
    monkeypatch.setattr(pathfinder, "find_nvidia_header_directory", not_found)
    monkeypatch.setitem(sys.modules, "cupy", None)  # no CuPy toolkit either (import cupy fails)
    monkeypatch.setattr(runtime, "DEFAULT_CUDA_PATH", str(tmp_path / "none"))
    for variable in ("CUDA_PATH", "CUDA_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CUDA_PATH", str(tmp_path))
    (tmp_path / "include" / "crt").mkdir(parents=True)
    (tmp_path / "include" / "crt" / "mma.h").write_text("")
    assert runtime.toolkit_include_dir.__wrapped__() == str(tmp_path / "include")
    assert runtime.nvrtc_options("#include <mma.h>\n")[-1] == f"--include-path={runtime.toolkit_include_dir()}"
    assert runtime.nvrtc_options('extern "C" __global__ void k() {}') == runtime.NVRTC_OPTIONS
    (tmp_path / "include" / "crt" / "mma.h").unlink()
    with pytest.raises(RuntimeError, match="pip install 'nvidia-cuda-runtime>=13' 'nvidia-cuda-crt>=13'"):
        runtime.toolkit_include_dir.__wrapped__()
