"""Backend selection: names, the environment variable, and the errors for what a machine cannot do."""
import os
import pathlib
import re
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


FAKE_CUPY = {
    "does not import": "raise ImportError('libcudart.so.13: cannot open shared object file')\n",
    "sees no CUDA device": "class cuda:\n    class runtime:\n        getDeviceCount = staticmethod(lambda: 0)\n",
}


@pytest.mark.parametrize("machine", sorted(FAKE_CUPY))
def test_gpu_test_run_without_a_usable_gpu_fails_and_says_why(tmp_path, machine):
    """`GPUCNN_TESTS_ON_GPU=1 pytest -m gpu` where CuPy does not import, or sees no device (a stand-in
    cupy module makes either true on any machine), exits non-zero and names the reason: it must not
    skip every test and pass."""
    (tmp_path / "cupy.py").write_text(FAKE_CUPY[machine])
    environment = {k: v for k, v in os.environ.items() if k not in ("GPUCNN_BACKEND", "NUMBA_ENABLE_CUDASIM")}
    environment.update(GPUCNN_TESTS_ON_GPU="1",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    tests = pathlib.Path(__file__).resolve().parent
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                             str(tests / "test_backend.py")], capture_output=True, text=True,
                            env=environment, timeout=120, cwd=tests.parent)
    assert result.returncode != 0, result.stdout
    output = result.stdout + result.stderr
    assert f"GPUCNN_TESTS_ON_GPU=1 asks for the GPU tests, but CuPy {machine}" in output, output
    assert "passed" not in output and "skipped" not in output


@pytest.mark.parametrize("version", ["0.24.1", "0.9", None])
def test_cuda_backend_refuses_a_numba_cuda_that_syncs_on_cupy_arrays(monkeypatch, version):
    monkeypatch.delenv("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", raising=False)
    monkeypatch.setattr(backend, "numba_cuda_version", lambda: version)
    found = f"numba-cuda {version}" if version else "numba's built-in numba.cuda"
    with pytest.raises(backend.BackendError, match=rf"needs numba-cuda >= 0\.25, found {re.escape(found)}.*"
                                                   rf"Fix: pip install -U 'numba-cuda\[cu13\]>=0\.25'"):
        gpucnn.set_backend("cuda")


@pytest.mark.parametrize("version", ["0.25.0", "0.30.4", "1.0.0rc1"])
def test_numba_cuda_with_dlpack_interop_passes_the_check(monkeypatch, version):
    monkeypatch.delenv("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", raising=False)
    backend.check_numba_cuda_interop(version)


def test_an_old_numba_cuda_told_not_to_sync_passes_the_check(monkeypatch):
    monkeypatch.setenv("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "0")
    backend.check_numba_cuda_interop("0.20.0")
    monkeypatch.setenv("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "1")
    with pytest.raises(backend.BackendError, match="NUMBA_CUDA_ARRAY_INTERFACE_SYNC=0"):
        backend.check_numba_cuda_interop("0.20.0")
