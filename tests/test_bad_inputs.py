"""Every misuse gets a clear answer: the table below lists what users get wrong, the exception each one
raises and a pattern its message must match (the argument's name, the bad value and the fix).  Never
an IndexError/AttributeError from inside, a crash, a hang or a wrong result.  The table runs on the cpu
and the emulated backends.

Documented rules (decisions, also checked below):
- float64 (and float16) images are accepted and cast to float32 (results equal those of x.astype('float32'));
  integer and bool images are refused with a TypeError suggesting x.astype('float32') / 255.
- Non-contiguous and negative-stride arrays are accepted (copied to a contiguous float32 array).
- batch_size larger than the data is accepted (one batch of everything), as in Keras.
- fit/evaluate/train_on_batch/test_on_batch before compile raise ValueError, as Keras 3 does.
- A missing model file or a save into a missing directory raise FileNotFoundError; a damaged file raises
  gpucnn.saving.CorruptModelFileError (a ValueError).
- The 'cuda' backend without a usable GPU raises gpucnn.backend.BackendError (a RuntimeError) that says
  how to fix it (install the cuda extra on a GPU machine, or use 'cpu').
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import gpucnn
from gpucnn import backend, optimizers
from gpucnn.backend import BackendError
from gpucnn.callbacks import EarlyStopping
from gpucnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from gpucnn.saving import CorruptModelFileError

BACKENDS = ["cpu", "emulated"]


def model(compiled=True, loss="binary_crossentropy", units=1):
    net = gpucnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(5, 5, 1)), Flatten(),
                             Dense(units, activation="sigmoid" if units == 1 else "softmax")])
    if compiled:
        net.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return net


def images(n=4):
    return np.random.default_rng(0).random((n, 5, 5, 1), np.float32)


def labels(n=4):
    return (np.arange(n) % 2).astype(np.float32)


def saved_file(tmp_path, damage):
    path = tmp_path / "model.gpucnn"
    model().save(path)
    path.write_bytes(damage(path.read_bytes()))
    return path


# (id, misuse, exception, message pattern).  A misuse is a function of pytest's tmp_path.
MISUSES = [
    # -- layers
    ("conv-zero-filters", lambda t: Conv2D(0, 3), ValueError, r"`filters`.*positive int.*0"),
    ("conv-kernel-rank", lambda t: Conv2D(4, (3, 3, 3)), TypeError, r"`kernel_size`.*tuple of 2 ints.*\(3, 3, 3\)"),
    ("conv-zero-stride", lambda t: Conv2D(4, 3, strides=0), ValueError, r"`strides`.*positive.*0.*Fix"),
    ("conv-padding-name", lambda t: Conv2D(4, 3, padding="full"), ValueError, r"`padding`.*'valid' or 'same'.*'full'"),
    ("unknown-activation", lambda t: Dense(2, activation="gelu"), ValueError, r"`activation`.*'gelu'.*expected.*'relu'"),
    ("dense-zero-units", lambda t: Dense(0), ValueError, r"`units`.*positive int.*0"),
    ("dropout-rate-1", lambda t: Dropout(1.0), ValueError, r"`rate`.*\[0, 1\).*1\.0"),
    ("pool-size-0", lambda t: MaxPooling2D(0), ValueError, r"`pool_size`.*positive.*0"),
    ("input-shape-zero", lambda t: Conv2D(2, 3, input_shape=(0, 5, 1)), ValueError, r"`input_shape`.*positive.*\(0, 5, 1\)"),
    ("conv-on-2d-input", lambda t: gpucnn.Sequential([Conv2D(2, 3, input_shape=(5, 5))]), ValueError,
     r"expects inputs of shape \(batch, height, width, channels\).*\(None, 5, 5\).*Fix"),
    ("kernel-larger-than-input", lambda t: gpucnn.Sequential([Conv2D(2, 7, input_shape=(5, 5, 1))]), ValueError,
     r"empty output \(None, 0, 0, 2\).*kernel_size \(7, 7\).*padding='same'"),
    ("zero-size-after-pooling", lambda t: gpucnn.Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), MaxPooling2D(4)]),
     ValueError, r"empty output \(None, 0, 0, 2\).*pool_size \(4, 4\).*Fix"),
    ("dense-without-flatten", lambda t: gpucnn.Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Dense(1)]),
     ValueError, r"Dense.*\(None, 3, 3, 2\).*Flatten\(\)"),
    ("add-a-string", lambda t: gpucnn.Sequential().add("dense"), TypeError, r"add\(\) takes a gpucnn layer.*'dense'"),
    ("duplicate-layer-name", lambda t: gpucnn.Sequential([Dense(1, name="d", input_shape=(3,)), Dense(1, name="d")]),
     ValueError, r"'d' is already used.*name="),
    # -- compile
    ("unknown-optimizer", lambda t: model(False).compile(optimizer="nadam", loss="binary_crossentropy"),
     ValueError, r"`optimizer` 'nadam'.*'adam'"),
    ("unknown-loss", lambda t: model(False).compile(optimizer="adam", loss="hinge"), ValueError, r"`loss` 'hinge'.*binary_crossentropy"),
    ("unknown-metric", lambda t: model(False).compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc"]),
     ValueError, r"`metrics`.*'auc'.*Fix.*'accuracy'"),
    ("metrics-not-a-list", lambda t: model(False).compile(optimizer="adam", loss="binary_crossentropy", metrics="accuracy"),
     TypeError, r"`metrics`.*list.*'accuracy'"),
    ("negative-learning-rate", lambda t: optimizers.Adam(learning_rate=-1.0), ValueError, r"`learning_rate`.*> 0.*-1\.0"),
    ("fit-before-compile", lambda t: model(False).fit(images(), labels(), verbose=0), ValueError,
     r"`compile\(\)` before calling `fit\(\)`.*Fix"),
    ("evaluate-before-compile", lambda t: model(False).evaluate(images(), labels(), verbose=0), ValueError,
     r"`compile\(\)` before calling `evaluate\(\)`.*Fix"),
    ("train-on-batch-before-compile", lambda t: model(False).train_on_batch(images(), labels()), ValueError,
     r"`compile\(\)` before calling `train_on_batch\(\)`.*Fix"),
    ("test-on-batch-before-compile", lambda t: model(False).test_on_batch(images(), labels()), ValueError,
     r"`compile\(\)` before calling `test_on_batch\(\)`.*Fix"),
    # -- fit / evaluate / predict data
    ("x-missing-channel-axis", lambda t: model().fit(images()[..., 0], labels(), verbose=0), ValueError,
     r"`x` has shape \(4, 5, 5\).*\(None, 5, 5, 1\).*x\[\.\.\., None\]"),
    ("x-wrong-size", lambda t: model().predict(np.zeros((2, 6, 6, 1), np.float32)), ValueError, r"`x` has shape \(2, 6, 6, 1\).*Fix"),
    ("uint8-images", lambda t: model().fit((images() * 255).astype(np.uint8), labels(), verbose=0), TypeError,
     r"`x`.*uint8.*astype\('float32'\) / 255"),
    ("bool-images", lambda t: model().predict(images() > 0.5), TypeError, r"`x`.*bool.*astype\('float32'\) / 255"),
    ("string-images", lambda t: model().predict(np.array([["a"]])), TypeError, r"`x`.*<U1.*Fix"),
    ("x-none", lambda t: model().fit(None, labels(), verbose=0), ValueError, r"`x` is required"),
    ("nan-in-x", lambda t: model().fit(np.full((4, 5, 5, 1), np.nan, np.float32), labels(), verbose=0), ValueError,
     r"`x` contains NaN.*Fix"),
    ("zero-length-data", lambda t: model().fit(images(0), labels(0), verbose=0), ValueError, r"`x` is empty.*\(0, 5, 5, 1\).*Fix"),
    ("sample-count-mismatch", lambda t: model().fit(images(4), labels(3), verbose=0), ValueError, r"`x` and `y`.*4 and 3"),
    ("bce-labels-outside-0-1", lambda t: model().fit(images(), labels() * 2, verbose=0), ValueError,
     r"`y`.*\[0, 1\].*\[0\.0, 2\.0\].*Fix"),
    ("bce-labels-wrong-shape", lambda t: model().fit(images(), np.zeros((4, 2)), verbose=0), ValueError,
     r"`y` has shape \(4, 2\).*\(4, 1\).*Fix"),
    ("sparse-labels-out-of-range", lambda t: model(loss="sparse_categorical_crossentropy", units=3).fit(
        images(), np.array([0, 1, 2, 3]), verbose=0), ValueError, r"`y`.*class indices in \[0, 3\).*3\.0"),
    ("labels-missing", lambda t: model().evaluate(images(), None, verbose=0), ValueError, r"`y` is required"),
    ("batch-size-zero", lambda t: model().fit(images(), labels(), batch_size=0, verbose=0), ValueError, r"`batch_size`.*positive.*0"),
    ("epochs-zero", lambda t: model().fit(images(), labels(), epochs=0, verbose=0), ValueError, r"`epochs`.*positive.*0"),
    ("validation-split-1", lambda t: model().fit(images(), labels(), validation_split=1.0, verbose=0), ValueError,
     r"`validation_split`.*\[0, 1\).*1\.0"),
    ("validation-split-leaves-nothing", lambda t: model().fit(images(1), labels(1), validation_split=0.5, verbose=0),
     ValueError, r"`validation_split=0\.5`.*0 training.*Fix"),
    ("validation-data-not-a-pair", lambda t: model().fit(images(), labels(), validation_data=(images(),), verbose=0),
     ValueError, r"`validation_data`.*\(x_val, y_val\)"),
    ("validation-data-wrong-shape", lambda t: model().fit(images(), labels(), verbose=0,
                                                           validation_data=(images()[..., 0], labels())),
     ValueError, r"`validation_data\[0\]` has shape"),
    ("callbacks-not-a-list", lambda t: model().fit(images(), labels(), callbacks=EarlyStopping(), verbose=0), TypeError,
     r"`callbacks`.*list.*Fix: wrap"),
    ("verbose-3", lambda t: model().fit(images(), labels(), verbose=3), ValueError, r"`verbose`.*0, 1, 2 or 'auto'.*3"),
    # -- weights
    ("set-weights-wrong-shape", lambda t: model().set_weights([np.zeros((3, 3, 1, 3)), np.zeros(2), np.zeros((18, 1)),
                                                                np.zeros(1)]),
     ValueError, r"has shape \(3, 3, 1, 2\).*\(3, 3, 1, 3\).*Fix"),
    ("set-weights-wrong-count", lambda t: model().set_weights([np.zeros((3, 3, 1, 2))]), ValueError,
     r"set_weights expects 4 arrays.*got 1"),
    # -- save / load
    ("load-corrupt-file", lambda t: gpucnn.load_model(saved_file(t, lambda d: d[:200] + b"x" + d[201:])),
     CorruptModelFileError, r"model\.gpucnn.*checksum.*Fix"),
    ("load-truncated-file", lambda t: gpucnn.load_model(saved_file(t, lambda d: d[:20])), CorruptModelFileError,
     r"model\.gpucnn.*truncated.*Fix"),
    ("load-missing-file", lambda t: gpucnn.load_model(t / "nope.gpucnn"), FileNotFoundError, r"nope\.gpucnn.*Fix"),
    ("save-into-missing-directory", lambda t: model().save(t / "no" / "m.gpucnn"), FileNotFoundError, r"does not exist"),
    ("load-an-int", lambda t: gpucnn.load_model(3), TypeError, r"`filepath`.*int.*Fix"),
    # -- backend
    ("unknown-backend", lambda t: gpucnn.set_backend("tpu"), ValueError, r"backend 'tpu'.*'cpu', 'emulated', 'cuda'"),
]


@pytest.fixture(params=BACKENDS)
def any_backend(request):
    """The backend fixture of conftest.py with this name (each skips where it cannot run)."""
    if request.param == "emulated":
        request.getfixturevalue("small_numba_launches")
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("misuse, error, match", [case[1:] for case in MISUSES], ids=[case[0] for case in MISUSES])
def test_misuse_raises_a_clear_error(any_backend, tmp_path, misuse, error, match):
    gpucnn.utils.set_random_seed(0)
    with pytest.raises(error, match=match):
        misuse(tmp_path)


def test_the_table_is_large_and_distinct():
    assert len(MISUSES) >= 30
    assert len({case[0] for case in MISUSES}) == len(MISUSES)


def test_cuda_backend_in_a_simulator_process_says_how_to_fix():
    if not os.environ.get("NUMBA_ENABLE_CUDASIM"):
        pytest.skip("this process may use the real GPU")
    with pytest.raises(BackendError, match=r"'cuda'.*simulator.*Fix"):
        gpucnn.set_backend("cuda")


def test_cuda_backend_without_gpu_says_how_to_fix():
    if backend.cuda_device_count() > 0:
        pytest.skip("a GPU is present here")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM", "GPUCNN_BACKEND")}
    result = subprocess.run([sys.executable, "-c", "import gpucnn; gpucnn.set_backend('cuda')"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "BackendError" in result.stderr
    assert "Fix: install the GPU extra" in result.stderr and "set_backend('cpu')" in result.stderr


# -- accepted inputs: same numbers as the clean float32 C-contiguous input -------------------------------
def big_images():
    return np.random.default_rng(1).random((6, 10, 10, 2), np.float32)


@pytest.mark.parametrize("variant", [
    pytest.param(lambda x: x.astype(np.float64), id="float64"),
    pytest.param(lambda x: np.asfortranarray(x), id="fortran-order"),
    pytest.param(lambda x: np.ascontiguousarray(x[::-1])[::-1], id="negative-stride"),
    pytest.param(lambda x: np.ascontiguousarray(np.repeat(x, 2, axis=1))[:, ::2], id="non-contiguous"),
    pytest.param(lambda x: x.tolist(), id="nested-list"),
])
def test_accepted_layouts_and_dtypes_give_the_float32_result(any_backend, variant):
    gpucnn.utils.set_random_seed(0)
    net = model()
    x = images(3)
    expected = net.predict(x)
    np.testing.assert_array_equal(net.predict(variant(x)), expected)


def test_batch_size_larger_than_the_data_is_one_batch(any_backend):
    x, y = images(4), labels(4)
    weights = []
    for batch_size in (len(x), 1000):
        gpucnn.utils.set_random_seed(0)
        net = model()
        history = net.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        weights.append(net.get_weights())
        np.testing.assert_allclose(net.predict(x, batch_size=1000), net.predict(x, batch_size=1), rtol=1e-6)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
