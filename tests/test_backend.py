"""Backend selection: names, the environment variable, and the errors for what a machine cannot do."""
import os
import subprocess
import sys

import numpy as np
import pytest

import gpucnn
from gpucnn import backend


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (Numba reads its simulator flag once per process)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("GPUCNN_BACKEND", "NUMBA_ENABLE_CUDASIM")}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120)


def test_set_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"Unknown backend 'gpu'.*'cpu', 'emulated', 'cuda'"):
        gpucnn.set_backend("gpu")


def test_using_backend_switches_ops_and_restores(cpu):
    with backend.using_backend("emulated") as b:
        assert gpucnn.get_backend() == "emulated" and b.ops.__name__ == "gpucnn.cuda"
    assert gpucnn.get_backend() == "cpu" and backend.current().ops.__name__ == "gpucnn.reference"


def test_cuda_without_gpu_is_a_clear_error():
    if backend.cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(backend.BackendError, match="Fix"):
        gpucnn.set_backend("cuda")


def test_automatic_choice_is_cpu_without_gpu_and_env_var_overrides():
    if backend.cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    assert run_python("import gpucnn; print(gpucnn.get_backend())").stdout.strip() == "cpu"
    result = run_python("import gpucnn, os; print(gpucnn.get_backend(), os.environ['NUMBA_ENABLE_CUDASIM'])",
                        GPUCNN_BACKEND="emulated")
    assert result.stdout.split() == ["emulated", "1"], result.stderr
    result = run_python("import gpucnn; gpucnn.get_backend()", GPUCNN_BACKEND="tpu")
    assert "GPUCNN_BACKEND='tpu'" in result.stderr


def test_emulated_after_numba_cuda_import_explains_the_fix():
    result = run_python("import numba.cuda, gpucnn; gpucnn.set_backend('emulated')")
    assert "BackendError" in result.stderr and "GPUCNN_BACKEND=emulated" in result.stderr


def test_backend_asarray_gives_float32_contiguous(cpu):
    array = cpu.asarray(np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::-1])
    assert array.dtype == np.float32 and array.flags.c_contiguous
