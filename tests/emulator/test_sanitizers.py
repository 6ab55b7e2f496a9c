"""The sanitizer builds catch planted bugs: AddressSanitizer an out-of-bounds read, ThreadSanitizer (one OS
thread per CUDA thread) a missing __syncthreads; the correct twins run clean.  Each mode runs in one child
Python process with the sanitizer runtime preloaded, which halts at the first report: reaching the marker
printed after the correct launch proves that launch was clean."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpucnn import emulator

SOURCE = Path(__file__).with_name("planted_bugs.cu")

SCRIPT = """
import sys
import numpy as np
from gpucnn import emulator

module = emulator.load_module(sys.argv[1], sanitize=sys.argv[2])
x = np.arange(64, dtype=np.float32)
if sys.argv[2] == "address":
    out = np.zeros(64, np.float32)
    module.get_function("copy_shifted")((1,), (64,), (x, out, np.int32(64), np.int32(0)))
    assert (out == x).all()
    print("correct kernel ran clean", flush=True)
    module.get_function("copy_shifted")((1,), (64,), (x, out, np.int32(64), np.int32(1)))
else:
    out = np.zeros(1, np.float32)
    module.get_function("reduce_64_correct")((1,), (64,), (x, out))
    assert out[0] == x.sum()
    print("correct kernel ran clean", flush=True)
    module.get_function("reduce_64_missing_sync")((1,), (64,), (x, out))
print("planted bug not reported", flush=True)
"""


def run_sanitized(mode, tmp_path):
    env = {**os.environ, **emulator.sanitizer_environment(mode), "TSAN_OPTIONS": "halt_on_error=1"}
    script = tmp_path / "sanitized_launch.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(SOURCE), mode], capture_output=True, text=True,
                          env=env, timeout=120)


def test_address_sanitizer_reports_read_past_the_end(tmp_path):
    result = run_sanitized("address", tmp_path)
    assert "correct kernel ran clean" in result.stdout, result.stderr
    assert "planted bug not reported" not in result.stdout
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr, result.stderr
    assert "planted_bugs.cu:6 in copy_shifted" in result.stderr, result.stderr


def test_thread_sanitizer_reports_missing_syncthreads(tmp_path):
    result = run_sanitized("thread", tmp_path)
    assert "correct kernel ran clean" in result.stdout, result.stderr
    assert "planted bug not reported" not in result.stdout
    assert "ThreadSanitizer: data race" in result.stderr, result.stderr
    assert "reduce_64<false>" in result.stderr, result.stderr


def test_sanitized_module_needs_the_preloaded_runtime():
    with pytest.raises(RuntimeError, match="sanitizer_environment"):
        emulator.load_module(SOURCE, sanitize="address")
