"""Compile check of every Numba kernel for an H100 (sm_90) without a GPU.

The test process runs with Numba's simulator on (tests/conftest.py), where nothing is compiled, so the
check runs this file as a script in a subprocess without NUMBA_ENABLE_CUDASIM.  The script compiles each
kernel with the exact signature its launcher uses (``numba.cuda.compile_ptx``), then links the PTX for
sm_90 with nvJitLink to read what ptxas reports (registers, spills), and prints one JSON report.
"""
import json
import os
import re
import subprocess
import sys

COMPUTE_CAPABILITY = (9, 0)


def _ptxas_report(ptx):
    """Registers and spill bytes ptxas reports for the one kernel in ``ptx`` (nvJitLink, no GPU)."""
    from cuda.bindings import nvjitlink

    handle = nvjitlink.create(2, [f"-arch=sm_{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]}", "-verbose"])
    try:
        data = ptx.encode()
        nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "kernel")
        nvjitlink.complete(handle)
        log = bytearray(nvjitlink.get_info_log_size(handle))
        nvjitlink.get_info_log(handle, log)
    finally:
        nvjitlink.destroy(handle)
    text = log.decode(errors="replace")
    registers = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    return {"registers": int(registers.group(1)) if registers else None,
            "spill_bytes": int(spills.group(1)) + int(spills.group(2)) if spills else None}


def compile_report():
    """One entry per kernel: name, signature, PTX size, registers and spills (or the error)."""
    import types

    from numba import cuda
    from numba.cuda import dispatcher

    from gpucnn.kernels import _numba, elementwise, pool, reduce  # noqa: F401 (registers the kernels)

    # Device functions (@cuda.jit(device=True)) ask the current device for its compute capability when
    # a kernel calling them is typed; with no GPU here, answer with the target's.
    target = types.SimpleNamespace(compute_capability=COMPUTE_CAPABILITY)
    dispatcher.get_current_device = lambda: target

    report = []
    for declared in _numba.REGISTRY:
        entry = {"kernel": declared.name, "signature": declared.signature}
        try:
            ptx, _ = cuda.compile_ptx(declared.py_func, declared.signature, cc=COMPUTE_CAPABILITY,
                                      lineinfo=True)
            entry["ptx_bytes"] = len(ptx)
            entry.update(_ptxas_report(ptx))
        except Exception as error:  # reported per kernel, so one failure does not hide the others
            entry["error"] = f"{type(error).__name__}: {error}"
        report.append(entry)
    return report


def test_every_numba_kernel_compiles_for_sm90():
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, __file__], env=environment, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    print(json.dumps(report, indent=1))  # visible with pytest -s: the register budget of each kernel
    names = {entry["kernel"] for entry in report}
    for expected in ("relu_forward", "bias_add", "dropout", "adam_update", "sgd_update", "column_sums",
                     "max_pool_forward", "max_pool_backward", "binary_crossentropy",
                     "categorical_crossentropy", "softmax_forward", "batchnorm_backward_data"):
        assert expected in names, f"kernel {expected} missing from the compile check"
    failures = [entry for entry in report if "error" in entry]
    assert not failures, json.dumps(failures, indent=1)
    spilling = [entry for entry in report if entry["spill_bytes"]]
    assert not spilling, f"kernels that spill registers: {json.dumps(spilling, indent=1)}"


if __name__ == "__main__":
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        sys.exit("run without NUMBA_ENABLE_CUDASIM: the simulator compiles nothing")
    print(json.dumps(compile_report()))
