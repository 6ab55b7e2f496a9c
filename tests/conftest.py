"""Test set-up shared by every layer of tests.

Numba reads NUMBA_ENABLE_CUDASIM once, when numba.cuda is first imported, so it is set here before any
project import: the whole CI test process runs Numba kernels in the CUDA simulator.  On a GPU machine
`GPUCNN_TESTS_ON_GPU=1 pytest -m gpu` leaves it off so the same kernels run on the device, and fails at
once where CuPy cannot use a GPU: skipping every test there would pass on exactly the machine that matters.
"""
import os

ON_GPU = os.environ.get("GPUCNN_TESTS_ON_GPU") == "1"
if not ON_GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

from gpucnn import backend  # noqa: E402


def _gpu_available():
    return ON_GPU and backend.cuda_device_count() > 0


def pytest_configure(config):
    if not ON_GPU:
        return
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        pytest.exit(f"GPUCNN_TESTS_ON_GPU=1 asks for the GPU tests, but {reason}. Fix: run them where CuPy "
                    f"sees an NVIDIA GPU (pip install 'gpucnn[cuda13]'), or unset GPUCNN_TESTS_ON_GPU to run "
                    f"the CPU tests.", returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: run GPUCNN_TESTS_ON_GPU=1 pytest -m gpu on one")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cpu():
    with backend.using_backend("cpu") as b:
        yield b


@pytest.fixture
def emulated():
    if ON_GPU:
        pytest.skip("the emulated backend needs Numba's simulator, which is off in a GPU test run")
    with backend.using_backend("emulated") as b:
        yield b


@pytest.fixture
def small_numba_launches(monkeypatch):
    """Numba kernels launch 32-thread blocks on a grid of at most two blocks (grid-stride loops cover the
    rest, as on a GPU): each simulated thread costs ~100 µs, so whole-model tests on the emulated backend
    run several times faster, and tiny arrays still wrap the grid."""
    from gpucnn.cuda import _numba_launch
    monkeypatch.setattr(_numba_launch, "THREADS", 32)
    monkeypatch.setattr(_numba_launch, "MAX_BLOCKS", 2)


@pytest.fixture(name="backend")
def op_backend(request, monkeypatch):
    """The backend named by the test's ``backend`` parameter (``ops.on_backends``).

    Emulated, the Numba launch configuration shrinks to 32-thread blocks, a grid of at most two blocks and
    one row per column-sum thread, so tiny arrays still cross block edges, wrap around the grid-stride
    loop and take the multi-part reduction path (at ~100 µs per simulated thread).
    """
    if request.param == "emulated":
        from gpucnn.cuda import _numba_launch
        monkeypatch.setattr(_numba_launch, "THREADS", 32)
        monkeypatch.setattr(_numba_launch, "MAX_BLOCKS", 2)
        monkeypatch.setattr(_numba_launch, "ROWS_PER_THREAD", 1)
        monkeypatch.setattr(_numba_launch, "CHANNEL_TILE", 8)
        monkeypatch.setattr(_numba_launch, "TARGET_BLOCKS", 6)
    return request.getfixturevalue(request.param)


@pytest.fixture
def gpu():
    if not _gpu_available():
        pytest.skip("needs a CUDA GPU")
    with backend.using_backend("cuda") as b:
        yield b
