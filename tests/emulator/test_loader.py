"""The loader: kernel discovery, argument and launch-configuration checks (clear errors instead of crashes)
and the compiled-library cache."""
from pathlib import Path

import numpy as np
import pytest

from gpucnn import emulator

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def transpose():
    return emulator.load_module(HERE / "basic.cu").get_function("transpose")


def test_finds_extern_c_kernels_with_macro_parameter_lists():
    text = """
    #define PARAMS const float* a, int n
    // extern "C" __global__ void commented_out(int x) {}
    template <int T> __global__ void not_extern_c(int x) {}
    extern "C" __device__ void device_helper(int y) {}
    extern "C" __global__ void __launch_bounds__(256) bounded(float* __restrict__ out, const int n) {}
    extern "C" __global__ void empty() {}
    """
    # find_kernels reads preprocessed text; here the macro is spelled out by hand.
    kernels = emulator.find_kernels(text.replace("(PARAMS)", "(const float* a, int n)"))
    assert kernels == {"bounded": ["out", "n"], "empty": []}


def launch_args(rows=4, cols=4):
    return (np.zeros((rows, cols), np.float32), np.zeros((cols, rows), np.float32), np.int32(rows),
            np.int32(cols))


@pytest.mark.parametrize("position, value, error, message", [
    (0, np.zeros((4, 4), np.float64), TypeError, r"parameter `in` points to float32, got an array of float64"),
    (0, [0.0] * 16, TypeError, r"parameter `in` is a pointer; pass a numpy.ndarray"),
    (1, np.zeros((8, 8), np.float32)[::2, ::2], ValueError, r"parameter `out`: the array must be C-contiguous"),
    (2, np.int64(4), TypeError, r"parameter `rows` is a scalar of type int32, got numpy.int64. Fix: pass np.int32"),
    # cupy.RawKernel passes Python ints as int64 and floats as float64: an int parameter would read
    # the wrong bytes on a GPU, so the emulator refuses them too.
    (2, 4, TypeError, r"parameter `rows` is a scalar of type int32, got Python int 4, which cupy passes as "
                      r"int64.*Fix: pass np.int32\(value\)"),
    (2, True, TypeError, r"parameter `rows` is a scalar of type int32, got Python bool"),
    (2, 4.0, TypeError, r"parameter `rows` is a scalar of type int32, got Python float 4.0, which cupy "
                        r"passes as float64"),
    (2, "4", TypeError, r"parameter `rows` is a scalar of type int32, got str"),
    (3, np.zeros(1, np.int32), TypeError, r"parameter `cols` is a scalar of type int32, got a numpy array"),
])
def test_bad_arguments_raise_clear_errors(transpose, position, value, error, message):
    args = list(launch_args())
    args[position] = value
    with pytest.raises(error, match=message):
        transpose((1,), (16, 16), tuple(args))


def test_read_only_array_only_for_const_pointers(transpose):
    a, out, rows, cols = launch_args()
    a.flags.writeable = False
    transpose((1,), (16, 16), (a, out, rows, cols))  # `in` is const float*
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"parameter `out` points to non-const memory"):
        transpose((1,), (16, 16), (a, out, rows, cols))


def test_wrong_argument_count(transpose):
    with pytest.raises(TypeError, match=r"transpose takes 4 arguments \(in, out, rows, cols\), got 3"):
        transpose((1,), (16, 16), launch_args()[:3])


@pytest.mark.parametrize("grid, block, shared_mem, error, message", [
    ((0,), (16,), 0, ValueError, r"`grid` \(0,\): dimension x is 0"),
    ((1, 1, 1, 1), (16,), 0, TypeError, r"`grid` must be a tuple of 1 to 3 ints"),
    # cupy.RawKernel takes tuples only; an int or a list raises a TypeError there.
    (1, (16,), 0, TypeError, r"`grid` must be a tuple of 1 to 3 ints, as cupy.RawKernel requires, got 1. "
                             r"Fix: pass e.g. \(1,\)"),
    ((1,), [16], 0, TypeError, r"`block` must be a tuple"),
    ((1,), (1, 1, 65), 0, ValueError, r"`block` \(1, 1, 65\): dimension z is 65, must be in \[1, 64\]"),
    ((1,), (64, 32), 0, ValueError, r"2048 threads per block, CUDA allows at most 1024"),
    ((1,), (16,), 48 * 1024 + 1, ValueError, r"`shared_mem` must be an int in \[0, 49152\]"),
])
def test_bad_launch_configuration(transpose, grid, block, shared_mem, error, message):
    with pytest.raises(error, match=message):
        transpose(grid, block, launch_args(), shared_mem=shared_mem)


def test_unknown_kernel_and_bad_options():
    module = emulator.load_module(HERE / "basic.cu")
    with pytest.raises(ValueError, match=r"no extern \"C\" __global__ kernel 'transpos'.*'transpose'"):
        module.get_function("transpos")
    with pytest.raises(ValueError, match=r"`sanitize` must be one of"):
        emulator.load_module(HERE / "basic.cu", sanitize="memory")
    with pytest.raises(TypeError, match=r"`options` must be a tuple of strings"):
        emulator.load_module(HERE / "basic.cu", options="-O3")


def test_compile_error_shows_compiler_diagnostics(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUCNN_EMULATOR_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "broken.cu"
    source.write_text('extern "C" __global__ void broken(float* x) { x[0] = undeclared; }\n')
    with pytest.raises(emulator.CompileError, match=r"broken.cu:1:.*undeclared"):
        emulator.load_module(source)


def test_cache_is_keyed_by_included_headers(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPUCNN_EMULATOR_CACHE", str(cache))
    (tmp_path / "value.cuh").write_text("#define VALUE 1.5f\n")
    source = tmp_path / "fill.cu"
    source.write_text('#include "value.cuh"\n'
                      'extern "C" __global__ void fill(float* x) { x[threadIdx.x] = VALUE; }\n')

    def run():
        x = np.zeros(8, np.float32)
        emulator.load_module(source).get_function("fill")((1,), (8,), (x,))
        return x

    np.testing.assert_array_equal(run(), 1.5)
    np.testing.assert_array_equal(run(), 1.5)
    assert len(list(cache.glob("*.so"))) == 1  # the second load reused the library
    (tmp_path / "value.cuh").write_text("#define VALUE -2.0f\n")
    np.testing.assert_array_equal(run(), -2.0)
    assert len(list(cache.glob("*.so"))) == 2
