"""Compile check of every Numba kernel for an H100 (sm_90) without a GPU (``gpucnn.cuda.numba_compile``).

The test process runs with Numba's simulator on (tests/conftest.py), where nothing is compiled, so the
check runs ``python -m gpucnn.cuda.numba_compile`` in a subprocess without NUMBA_ENABLE_CUDASIM: each
kernel is compiled with the exact signature its launcher uses and linked for sm_90 by nvJitLink, whose
log gives registers, spills and shared memory.
"""
import json
import os
import subprocess
import sys

import pytest

from gpucnn.cuda import numba_compile

MAX_REGISTERS = 255


def test_every_numba_kernel_compiles_for_sm90():
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-m", "gpucnn.cuda.numba_compile"], env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    print(json.dumps(report, indent=1))  # visible with pytest -s: the register budget of each kernel
    names = {entry["name"] for entry in report}
    for expected in ("relu_forward", "bias_add", "dropout", "adam_update", "sgd_update", "column_sums",
                     "max_pool_forward", "max_pool_backward", "binary_crossentropy",
                     "categorical_crossentropy", "softmax_forward", "batchnorm_backward_data",
                     "average_pool_forward", "average_pool_backward", "shifted_copy", "add_arrays",
                     "copy_channels"):
        assert expected in names, f"kernel {expected} missing from the compile check"
    failures = [entry for entry in report if entry["error"]]
    assert not failures, json.dumps(failures, indent=1)
    resources = [entry["resources"] for entry in report]
    spilling = [r for r in resources if r["spill_stores"] or r["spill_loads"]]
    assert not spilling, f"kernels that spill registers: {json.dumps(spilling, indent=1)}"
    assert all(0 < r["registers"] <= MAX_REGISTERS for r in resources)
    # The block reductions declare static shared memory; ptxas must report it.
    assert next(r for r in resources if r["name"] == "column_sums")["shared_bytes"] > 0


def test_the_simulator_is_refused_with_the_fix():
    # This process has the simulator on (tests/conftest.py).
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM.*python -m gpucnn.cuda.numba_compile"):
        numba_compile.compile_kernels()
