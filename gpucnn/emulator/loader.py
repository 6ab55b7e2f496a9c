"""Compile a CUDA C file with g++ against ``cuda_emulator.h`` and launch its kernels on NumPy arrays.

``load_module(path).get_function(name)(grid, block, args, shared_mem=0)`` behaves like
``cupy.RawModule(...).get_function(name)(...)``: the same ``.cu`` text, the same launch call.  See README.md in
this folder for what can and cannot be emulated.
"""
import ctypes
import functools
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HEADER = Path(__file__).with_name("cuda_emulator.h")
# CUDA headers the emulator provides itself (mma.h: nvcuda::wmma, cuda_bf16.h: __nv_bfloat16).
INCLUDE_DIR = Path(__file__).with_name("include")
SANITIZE_MODES = (None, "address", "thread")
# Bumped whenever the generated code or compile flags change meaning, to invalidate cached libraries.
_LOADER_VERSION = "2"
_ERROR_BUFFER_BYTES = 4096

_SANITIZER_FLAGS = {
    None: [],
    "address": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g"],
    "thread": ["-fsanitize=thread", "-DGPUCNN_EMU_THREADS=1", "-g"],
}
_SANITIZER_RUNTIME = {"address": ("libasan.so", "__asan_init"), "thread": ("libtsan.so", "__tsan_init")}

# CUDA's launch limits (compute capability 7.0 and later).
_MAX_BLOCK = (1024, 1024, 64)
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_THREADS_PER_BLOCK = 1024
_DEFAULT_MAX_DYNAMIC_SHARED = 48 * 1024
_OPT_IN_MAX_DYNAMIC_SHARED = 227 * 1024


class CompileError(RuntimeError):
    """g++ rejected a CUDA C file; the message holds the compiler's diagnostics."""


def compiler():
    return os.environ.get("CXX", "g++")


def _run(command):
    """Run a compiler command; a sanitizer runtime preloaded into this process is not passed on to it."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run(command, capture_output=True, text=True, env=env)


@functools.lru_cache(maxsize=None)
def _compiler_version(cxx):
    return _run([cxx, "--version"]).stdout


def cache_dir():
    """Where compiled kernels are kept: $GPUCNN_EMULATOR_CACHE, else ~/.cache/gpucnn/emulator."""
    configured = os.environ.get("GPUCNN_EMULATOR_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "gpucnn" / "emulator"


def sanitizer_environment(sanitize):
    """Environment variables a (child) Python process needs before it can load kernels built with
    ``sanitize``: the sanitizer runtime must be preloaded, because it has to come before every other library.
    Use as ``subprocess.run([sys.executable, ...], env={**os.environ, **sanitizer_environment('address')})``."""
    if sanitize not in _SANITIZER_RUNTIME:
        raise ValueError(f"Argument `sanitize` must be 'address' or 'thread', got {sanitize!r}.")
    library, _ = _SANITIZER_RUNTIME[sanitize]
    path = _run([compiler(), f"-print-file-name={library}"]).stdout.strip()
    env = {"LD_PRELOAD": os.path.realpath(path)}
    if sanitize == "address":
        # The Python interpreter keeps objects alive until exit on purpose; leak reports would be noise.
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def _check_sanitizer_runtime(sanitize):
    if sanitize is None:
        return
    _, symbol = _SANITIZER_RUNTIME[sanitize]
    if not hasattr(ctypes.CDLL(None), symbol):
        raise RuntimeError(
            f"sanitize={sanitize!r} needs the sanitizer runtime preloaded into this Python process. Fix: run "
            f"it in a child process with the variables of gpucnn.emulator.sanitizer_environment({sanitize!r}) "
            f"({sanitizer_environment(sanitize)}).")


# ----------------------------------------------------------------------------------------------------------
# Reading the source
# ----------------------------------------------------------------------------------------------------------
_COMMENT_OR_STRING = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def _blank_comments(text):
    """``text`` with comments replaced by spaces (newlines kept), so offsets and line numbers still match."""
    def blank(match):
        token = match.group(0)
        if token.startswith(("//", "/*")):
            return re.sub(r"[^\n]", " ", token)
        return token
    return _COMMENT_OR_STRING.sub(blank, text)


_QUALIFIERS = r"(?:(?:__\w+__|static|inline)(?:\s*\([^()]*\))?\s+)*"
_KERNEL = re.compile(r'\bextern\s+"C"\s+(' + _QUALIFIERS + r')void\s+(' + _QUALIFIERS + r')([A-Za-z_]\w*)\s*\(')


def _split_top_level(text):
    """Split a parameter list at commas that are not nested in (), <>, [] or {}."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "(<[{":
            depth += 1
        elif char in ")>]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _parameter_names(parameter_list):
    parameters = _split_top_level(parameter_list)
    if parameters in ([""], ["void"]):
        return []
    names = []
    for p in parameters:
        identifiers = re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]", "", p))
        names.append(identifiers[-1] if identifiers else f"<parameter {len(names)}>")
    return names


def find_kernels(text):
    """``{name: [parameter names]}`` of the ``extern "C" __global__`` functions in CUDA C ``text``."""
    code = _blank_comments(text)
    kernels = {}
    for match in _KERNEL.finditer(code):
        if "__global__" not in match.group(1) + match.group(2):
            continue
        depth, i = 1, match.end()
        while depth and i < len(code):
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            i += 1
        kernels[match.group(3)] = _parameter_names(code[match.end():i - 1])
    return kernels


_EXTERN_SHARED = re.compile(r"\bextern\s+__shared__\s+([^;\[\]]*?)\s*([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def _rewrite_dynamic_shared(text, path):
    """Turn each ``extern __shared__ T name[];`` into a pointer to the block's dynamic shared memory (the one
    CUDA construct a header cannot define), keeping line numbers unchanged."""
    code = _blank_comments(text)
    pieces, end = [], len(text)
    for match in reversed(list(_EXTERN_SHARED.finditer(code))):
        if code.count("{", 0, match.start()) == code.count("}", 0, match.start()):
            line = code.count("\n", 0, match.start()) + 1
            raise ValueError(f"{path}:{line}: the emulator supports `extern __shared__` arrays only inside a "
                             f"function. Fix: move the declaration into the kernel (or device function) body.")
        element = re.sub(r"__align__\s*\([^)]*\)", "", match.group(1)).strip()
        pieces.append(text[match.end():end])
        pieces.append(f"{element}* const {match.group(2)} = "
                      f"reinterpret_cast<{element}*>(::gpucnn_emu::dynamic_shared());")
        end = match.start()
    pieces.append(text[:end])
    return "".join(reversed(pieces))


# ----------------------------------------------------------------------------------------------------------
# Compiling
# ----------------------------------------------------------------------------------------------------------
def _trampolines(kernels):
    lines = ["", '#line 1 "<gpucnn emulator trampolines>"']
    for name in kernels:
        lines += [
            f'extern "C" int gpucnn_emu_launch_{name}(const unsigned int* grid, const unsigned int* block, '
            f"unsigned long long shared_bytes, int workers, void** args, char* err, unsigned long errlen) {{",
            f'    return ::gpucnn_emu::launch("{name}", &{name}, grid, block, shared_bytes, workers, args, err, '
            f"errlen);",
            "}",
            f'extern "C" const char* gpucnn_emu_describe_{name}() {{ return ::gpucnn_emu::describe(&{name}); }}',
        ]
    return "\n".join(lines) + "\n"


def _base_command(path, options, sanitize):
    return [compiler(), "-x", "c++", "-std=c++20", "-Wno-unknown-pragmas", f"-I{path.parent}", f"-I{INCLUDE_DIR}",
            *_SANITIZER_FLAGS[sanitize], *options]


def _preprocess(path, options, sanitize):
    """The translation unit of ``path`` after the preprocessor but without the emulator header, so that
    `__global__` survives: kernels whose parameter lists come from macros are found with their real
    parameter names, and the text (every included header inlined) keys the cache."""
    command = _base_command(path, options, sanitize) + ["-DGPUCNN_EMULATOR=1", "-E", "-P", str(path)]
    result = _run(command)
    if result.returncode != 0:
        raise CompileError(f"g++ could not preprocess {path} for the emulator:\n{result.stderr}")
    return result.stdout


def _compile(source, path, options, sanitize, target):
    """Build ``source`` (the text of ``path``, rewritten) into the shared library ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as build:
        cpp = Path(build) / (path.stem + ".cpp")
        cpp.write_text(source)
        output = Path(build) / target.name
        command = _base_command(path, options, sanitize) + [
            "-O2", "-fPIC", "-shared", "-pthread", "-include", str(HEADER), "-o", str(output), str(cpp)]
        result = _run(command)
        if result.returncode != 0:
            raise CompileError(f"g++ could not compile {path} for the emulator:\n{result.stderr}")
        os.replace(output, target)


def load_module(path, options=(), sanitize=None):
    """Compile the CUDA C file ``path`` for the CPU (cached) and return a :class:`Module`.

    ``options`` are extra g++ flags (e.g. ``("-DTILE=16",)``); ``sanitize`` is None, 'address' (build with
    AddressSanitizer) or 'thread' (one OS thread per CUDA thread, ThreadSanitizer)."""
    if sanitize not in SANITIZE_MODES:
        raise ValueError(f"Argument `sanitize` must be one of {SANITIZE_MODES}, got {sanitize!r}.")
    if isinstance(options, str) or not all(isinstance(o, str) for o in options):
        raise TypeError(f"Argument `options` must be a tuple of strings (g++ flags), got {options!r}.")
    options = tuple(options)
    _check_sanitizer_runtime(sanitize)
    path = Path(path).resolve()
    preprocessed = _preprocess(path, options, sanitize)
    kernels = find_kernels(preprocessed)
    source = f'#line 1 "{path}"\n' + _rewrite_dynamic_shared(path.read_text(), path) + _trampolines(kernels)
    key = hashlib.sha256()
    for part in (_LOADER_VERSION, source, preprocessed, HEADER.read_text(), repr(options), repr(sanitize),
                 _compiler_version(compiler())):
        key.update(part.encode() + b"\0")
    target = cache_dir() / f"{path.stem}-{key.hexdigest()[:24]}{'-' + sanitize if sanitize else ''}.so"
    if not target.exists():
        _compile(source, path, options, sanitize, target)
    return Module(path, ctypes.CDLL(str(target)), kernels)


class Module:
    """The kernels of one compiled CUDA C file (like ``cupy.RawModule``)."""

    def __init__(self, path, library, kernels):
        self.path = path
        self._library = library
        self._kernels = kernels

    def get_function(self, name):
        if name not in self._kernels:
            raise ValueError(f"Argument `name`: no extern \"C\" __global__ kernel {name!r} in {self.path}; "
                             f"it defines {sorted(self._kernels)}.")
        return Function(self, name, self._kernels[name])


# ----------------------------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------------------------
class _Parameter:
    """One C parameter as the compiled library describes it (``ptr|val const|mut kind size align``)."""

    def __init__(self, name, description):
        indirection, constness, kind, size, align = description.split()
        self.name = name
        self.is_pointer = indirection == "ptr"
        self.is_const = constness == "const"
        self.kind = kind
        self.size = int(size)
        self.align = int(align)

    @property
    def c_type(self):
        if self.kind in "fiub":
            return np.dtype(bool) if self.kind == "b" else np.dtype(f"{self.kind}{self.size}")
        return None


def _dim3(name, value, limits):
    # cupy.RawKernel hands grid and block to a function declared with `tuple` parameters: an int or a list
    # raises a TypeError there, so it does here too.
    if not isinstance(value, tuple) or not 1 <= len(value) <= 3 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        raise TypeError(f"Argument `{name}` must be a tuple of 1 to 3 ints, as cupy.RawKernel requires, got "
                        f"{value!r}. Fix: pass e.g. ({value!r},) for a 1-D {name}.")
    values = tuple(int(v) for v in value) + (1,) * (3 - len(value))
    for axis, (v, limit) in enumerate(zip(values, limits)):
        if not 1 <= v <= limit:
            raise ValueError(f"Argument `{name}` {value!r}: dimension {'xyz'[axis]} is {v}, must be in "
                             f"[1, {limit}].")
    return values


class Function:
    """A kernel of a :class:`Module`, called as ``f(grid, block, args, shared_mem=0)`` like ``cupy.RawKernel``."""

    def __init__(self, module, name, parameter_names):
        self.name = name
        self.module = module
        self.max_dynamic_shared_size_bytes = _DEFAULT_MAX_DYNAMIC_SHARED
        library = module._library
        describe = getattr(library, f"gpucnn_emu_describe_{name}")
        describe.restype = ctypes.c_char_p
        descriptions = [d for d in describe().decode().split(";") if d]
        if len(descriptions) != len(parameter_names):
            raise RuntimeError(f"kernel {name}: found {len(parameter_names)} parameter names in the source but "
                               f"the compiled signature has {len(descriptions)} parameters.")
        self.parameters = [_Parameter(n, d) for n, d in zip(parameter_names, descriptions)]
        self._launch = getattr(library, f"gpucnn_emu_launch_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.c_ulonglong, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.c_char_p, ctypes.c_ulong]

    def __call__(self, grid, block, args, *, shared_mem=0):
        grid = _dim3("grid", grid, _MAX_GRID)
        block = _dim3("block", block, _MAX_BLOCK)
        if block[0] * block[1] * block[2] > _MAX_THREADS_PER_BLOCK:
            raise ValueError(f"Argument `block` {block}: {block[0] * block[1] * block[2]} threads per block, "
                             f"CUDA allows at most {_MAX_THREADS_PER_BLOCK}.")
        if not isinstance(shared_mem, (int, np.integer)) or not (
                0 <= shared_mem <= self.max_dynamic_shared_size_bytes):
            raise ValueError(f"Argument `shared_mem` must be an int in [0, {self.max_dynamic_shared_size_bytes}] "
                             f"bytes (raise `max_dynamic_shared_size_bytes`, up to {_OPT_IN_MAX_DYNAMIC_SHARED}, "
                             f"for more), got {shared_mem!r}.")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel {self.name}: `args` must be a tuple of arguments, got {type(args).__name__}.")
        if len(args) != len(self.parameters):
            raise TypeError(f"kernel {self.name} takes {len(self.parameters)} arguments "
                            f"({', '.join(p.name for p in self.parameters)}), got {len(args)}.")
        # Keep every ctypes object alive until the launch returns: the library reads them through pointers.
        values = [self._convert(p, a) for p, a in zip(self.parameters, args)]
        pointers = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.addressof(v) for v in values])
        error = ctypes.create_string_buffer(_ERROR_BUFFER_BYTES)
        workers = int(os.environ.get("GPUCNN_EMULATOR_THREADS", "0"))
        status = self._launch((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), shared_mem, workers,
                              pointers, error, _ERROR_BUFFER_BYTES)
        if status != 0:
            raise RuntimeError(error.value.decode(errors="replace"))

    def _convert(self, parameter, value):
        where = f"kernel {self.name} parameter `{parameter.name}`"
        if parameter.is_pointer:
            return ctypes.c_void_p(self._array_address(parameter, value, where))
        if isinstance(value, np.ndarray):
            raise TypeError(f"{where} is {self._c_name(parameter)}, got a numpy array. Fix: pass "
                            f"a numpy scalar such as np.{self._expected_dtype(parameter)}(value).")
        dtype = parameter.c_type
        if dtype is None:
            raise TypeError(f"{where}: the emulator cannot pass struct parameters by value "
                            f"({parameter.size} bytes). Fix: pass the fields as separate scalar parameters.")
        ctype = np.ctypeslib.as_ctypes_type(dtype)
        if not isinstance(value, np.generic):
            value = self._as_cupy_passes_it(value, dtype, where)
        if value.dtype != dtype:
            raise TypeError(f"{where} is {self._c_name(parameter)}, got numpy.{value.dtype.name}. Fix: pass "
                            f"np.{dtype.name}(value).")
        return ctype(value.item())

    @staticmethod
    def _as_cupy_passes_it(value, dtype, where):
        """The NumPy scalar cupy.RawKernel makes of a Python scalar: a Python int (bool included) becomes a
        64-bit integer and a Python float a double, whatever the C parameter is, so an `int` or `float`
        parameter would read the wrong bytes on a GPU.  Accepted only where that is the C type."""
        if isinstance(value, int) and dtype == np.int64:
            return np.int64(value)
        if isinstance(value, float) and dtype == np.float64:
            return np.float64(value)
        if isinstance(value, (int, float)):
            passed = "int64" if isinstance(value, int) else "float64"
            raise TypeError(f"{where} is a scalar of type {dtype.name}, got Python {type(value).__name__} "
                            f"{value!r}, which cupy passes as {passed}: a GPU would read the wrong bytes. Fix: "
                            f"pass np.{dtype.name}(value).")
        raise TypeError(f"{where} is a scalar of type {dtype.name}, got {type(value).__name__} {value!r}. Fix: "
                        f"pass np.{dtype.name}(value).")

    @staticmethod
    def _c_name(parameter):
        dtype = parameter.c_type
        return f"a scalar of type {dtype.name}" if dtype is not None else f"a {parameter.size}-byte struct"

    @staticmethod
    def _expected_dtype(parameter):
        dtype = parameter.c_type
        return dtype.name if dtype is not None else "uint8"

    @staticmethod
    def _array_address(parameter, array, where):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{where} is a pointer; pass a numpy.ndarray (the emulator runs on host memory), "
                            f"got {type(array).__module__}.{type(array).__name__}.")
        if not array.flags.c_contiguous:
            raise ValueError(f"{where}: the array must be C-contiguous. Fix: pass np.ascontiguousarray(array).")
        if not parameter.is_const and not array.flags.writeable:
            raise ValueError(f"{where} points to non-const memory the kernel may write, but the array is "
                             f"read-only. Fix: pass array.copy().")
        expected = parameter.c_type
        # void*, char* and struct pointers (float4*, ...) take any array; typed pointers need their dtype.
        raw_bytes = parameter.kind in "vo" or (parameter.kind in "iu" and parameter.size == 1)
        if not raw_bytes and array.dtype != expected:
            raise TypeError(f"{where} points to {expected.name}, got an array of {array.dtype}. Fix: pass "
                            f"array.astype(np.{expected.name}).")
        if array.ctypes.data % parameter.align:
            raise ValueError(f"{where} needs {parameter.align}-byte aligned data, the array's address is "
                             f"{array.ctypes.data:#x}. Fix: pass a fresh copy (np.array(array)).")
        return array.ctypes.data
