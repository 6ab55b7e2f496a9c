"""Run the project's CUDA C kernels (``kernels/*.cu``) on the CPU: the same source that CuPy compiles on a GPU
is compiled by g++ against ``cuda_emulator.h`` and launched through ctypes.  See README.md in this folder."""
from gpucnn.emulator.loader import (
                                    CompileError,
                                    Function,
                                    Module,
                                    cache_dir,
                                    find_kernels,
                                    load_module,
                                    sanitizer_environment,
)

__all__ = ["CompileError", "Function", "Module", "cache_dir", "find_kernels", "load_module",
           "sanitizer_environment"]
