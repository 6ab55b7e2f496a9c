"""The model file: round trip of weights, optimizer state and Dropout counters, training state for
resume, rejection of corrupt files, and atomic writes (a killed or failing save leaves the previous file
intact)."""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import gpucnn
from gpucnn import saving, utils
from gpucnn.layers import Conv2D, Dense, Dropout, Flatten
from gpucnn.saving import CorruptModelFileError


def trained_model():
    utils.set_random_seed(0)
    model = gpucnn.Sequential([Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), Flatten(),
                               Dropout(0.4), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return model


def data():
    x = np.random.default_rng(2).random((12, 6, 6, 1), np.float32)
    return x, (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)


def test_loaded_model_continues_training_identically_with_dropout(cpu, tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.gpucnn")
    loaded = gpucnn.load_model(tmp_path / "m.gpucnn")
    x, y = data()
    for m in (model, loaded):
        m.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    # The Dropout masks of the second epoch come from the saved step counter: without it the loaded
    # model would draw other masks and other weights.
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_training_state_restores_the_random_generator(cpu, tmp_path):
    model = trained_model()
    path = tmp_path / "backup.gpucnn"
    saving.save_model(model, path, epoch=3)
    expected = utils.rng().random(5)
    utils.set_random_seed(99)
    assert saving.restore_training_state(model, path) == 3
    np.testing.assert_array_equal(utils.rng().random(5), expected)


def test_plain_save_has_no_training_state(cpu, tmp_path):
    model = trained_model()
    model.save(tmp_path / "m.gpucnn")
    with pytest.raises(ValueError, match="no training state.*BackupAndRestore"):
        saving.restore_training_state(model, tmp_path / "m.gpucnn")


# -- corrupt files -------------------------------------------------------------------------------------
def rewrite_header(data, change):
    """A well-formed file (valid checksum) whose JSON header went through ``change``: built here from
    the documented layout, independently of the library's writer."""
    length = struct.unpack("<Q", data[8:16])[0]
    header = json.loads(data[16:16 + length])
    change(header)
    header_bytes = json.dumps(header).encode()
    body = data[:8] + struct.pack("<Q", len(header_bytes)) + header_bytes + data[16 + length:-32]
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("damage, match", [
    (lambda d: d[:len(d) // 2], "checksum"),
    (lambda d: d[:10], "truncated"),
    (lambda d: b"", "truncated"),
    (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "checksum"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 0x80]), "checksum"),
    (lambda d: b"PK\x03\x04" + d[4:], "wrong file type"),
    (lambda d: rewrite_header(d, lambda h: h.update(format_version=2)), "format version 2"),
])
def test_corrupt_files_are_rejected_clearly(cpu, tmp_path, damage, match):
    path = tmp_path / "m.gpucnn"
    trained_model().save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptModelFileError, match=match) as info:
        gpucnn.load_model(path)
    assert "m.gpucnn" in str(info.value) and "Fix:" in str(info.value)
    assert isinstance(info.value, ValueError)


# -- atomic writes -------------------------------------------------------------------------------------
class DiskFull(OSError):
    pass


def failing_fsync(fd):
    raise DiskFull(28, "No space left on device")


def failing_fdopen(real_fdopen):
    def fdopen(fd, mode="r", *args, **kwargs):
        stream = real_fdopen(fd, mode, *args, **kwargs)
        real_write = stream.write

        def write(data):
            real_write(data[:len(data) // 2])  # half the bytes reach the temporary file
            raise DiskFull(28, "No space left on device")
        stream.write = write
        return stream
    return fdopen


@pytest.mark.parametrize("failure", ["fsync", "write"])
def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(cpu, tmp_path, monkeypatch, failure):
    path = tmp_path / "m.gpucnn"
    model = trained_model()
    model.save(path)
    before = path.read_bytes()
    model.layers[0].kernel.value[...] += 1.0
    if failure == "fsync":
        monkeypatch.setattr(saving.os, "fsync", failing_fsync)
    else:
        monkeypatch.setattr(saving.os, "fdopen", failing_fdopen(os.fdopen))
    with pytest.raises(DiskFull):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.gpucnn"]
    gpucnn.load_model(path)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    import gpucnn
    from gpucnn.layers import Dense
    gpucnn.set_backend("cpu")
    model = gpucnn.Sequential([Dense(2048, input_shape=(2048,))])  # 4M weights: a 16 MB file
    for i in range(1000):
        for weight in model.weights:
            weight.value[...] = i
        model.save(sys.argv[1])
        print(i, flush=True)
""")


def test_save_killed_midway_leaves_the_previous_file_loadable(cpu, tmp_path):
    path = tmp_path / "big.gpucnn"
    env = dict(os.environ, GPUCNN_BACKEND="cpu")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    for delay in (0.02, 0.06, 0.10, 0.14):  # spread over the ~0.15 s a save takes here
        process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE,
                                   env=env, text=True)
        completed = int(process.stdout.readline())  # the first save is complete
        time.sleep(delay)  # now it is somewhere inside a later save
        process.send_signal(signal.SIGKILL)
        rest = process.stdout.read().split()
        process.wait()
        completed = int(rest[-1]) if rest else completed
        weights = gpucnn.load_model(path).get_weights()
        values = {float(v) for w in weights for v in np.unique(w)}
        # One whole save, never a mix: the last one reported, or the one that was being renamed in place
        # when the kill came.
        assert len(values) == 1 and values.pop() in (completed, completed + 1)
    # A killed save can leave its temporary file behind (nothing runs after SIGKILL); never the target.
    assert all(name == "big.gpucnn" or name.startswith(".tmp-") for name in os.listdir(tmp_path))


@pytest.mark.parametrize("filepath, error, match", [
    (123, TypeError, r"`filepath`.*int.*123.*model\.gpucnn"),
    (None, TypeError, r"`filepath`.*None"),
    ("", ValueError, r"`filepath`.*''.*file name"),
])
def test_bad_paths_name_the_argument(cpu, filepath, error, match):
    with pytest.raises(error, match=match):
        gpucnn.load_model(filepath)
    with pytest.raises(error, match=match):
        trained_model().save(filepath)


def test_saved_file_gets_the_usual_permissions(cpu, tmp_path):
    """The umask decides the mode, as for any file open() creates (a temporary file is created 0o600)."""
    old_umask = os.umask(0o022)
    try:
        trained_model().save(tmp_path / "m.gpucnn")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "m.gpucnn").stat().st_mode & 0o777 == 0o644


def test_newer_format_version_says_to_upgrade(cpu, tmp_path):
    path = tmp_path / "m.gpucnn"
    trained_model().save(path)
    path.write_bytes(rewrite_header(path.read_bytes(), lambda h: h.update(format_version=2)))
    with pytest.raises(CorruptModelFileError, match=r"format version 2.*Fix: .*upgrade gpucnn"):
        gpucnn.load_model(path)


# -- every header field is checked before a byte is read ---------------------------------------------
def _set(path, value):
    """A header change that sets ``header[path[0]][path[1]]...`` to ``value``."""
    def change(header):
        target = header
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _swap_first_two_weights(header):
    first, second = header["weights"][0], header["weights"][1]
    first["offset"], second["offset"] = second["offset"], first["offset"]


@pytest.mark.parametrize("change, field", [
    (_set(["model"], []), "`model`"),
    (_set(["weights"], {}), "`weights`"),
    (_set(["weights", 0, "shape"], [3, 3, 1, -2]), r"`weights\[0\].shape`"),
    (_set(["weights", 0, "shape"], [3, 3, 1, 2.0]), r"`weights\[0\].shape`"),
    (_set(["weights", 0, "nbytes"], 4), r"`weights\[0\].nbytes`"),
    (_set(["weights", 1, "offset"], 4), r"`weights\[1\].offset`"),   # shifted bytes
    (_swap_first_two_weights, r"`weights\[0\].(offset|nbytes)`"),
    (_set(["weights", 0, "name"], 7), r"`weights\[0\].name`"),
    (lambda h: h["weights"][0].pop("offset"), r"`weights\[0\]`"),
    (lambda h: h["optimizer_state"]["tensors"].pop(), "payload holds"),  # a tensor missing from the table
    (_set(["compile", "metrics"], "accuracy"), "`compile.metrics`"),
    (_set(["compile", "optimizer"], "adam"), "`compile.optimizer`"),
    (_set(["optimizer_state", "iterations"], -1), "`optimizer_state.iterations`"),
    (_set(["optimizer_state", "iterations"], True), "`optimizer_state.iterations`"),
    (_set(["optimizer_state", "tensors", 1, "offset"], 0), r"`optimizer_state.tensors\[1\].offset`"),
    (_set(["dropout_counters"], [None]), "`dropout_counters`"),
    (_set(["dropout_counters", 2], {"base_seed": "x", "step": 1}), r"`dropout_counters\[2\]`"),
    (_set(["training_state"], {"epoch": -3, "rng_state": {}}), "`training_state`"),
])
def test_every_header_field_is_validated(cpu, tmp_path, change, field):
    path = tmp_path / "m.gpucnn"
    trained_model().save(path)
    path.write_bytes(rewrite_header(path.read_bytes(), change))
    with pytest.raises(CorruptModelFileError, match=field) as info:
        gpucnn.load_model(path)
    assert "m.gpucnn" in str(info.value) and "Fix:" in str(info.value)


def test_a_wrong_shaped_optimizer_state_is_refused_not_broadcast(cpu, tmp_path):
    """The table is self-consistent (offsets, sizes, payload), only the state's shape is not the model's:
    assigning it would broadcast one value over the whole buffer."""
    path = tmp_path / "m.gpucnn"
    model = trained_model()
    model.save(path)
    data = path.read_bytes()
    length = struct.unpack("<Q", data[8:16])[0]
    header = json.loads(data[16:16 + length])
    payload = bytearray(data[16 + length:-32])
    tensors = header["optimizer_state"]["tensors"]
    cut = tensors[0]["nbytes"] - 4  # the first state tensor shrinks to one float
    start = tensors[0]["offset"]
    del payload[start + 4:start + 4 + cut]
    tensors[0]["shape"], tensors[0]["nbytes"] = [1], 4
    for entry in tensors[1:]:
        entry["offset"] -= cut
    header_bytes = json.dumps(header).encode()
    body = data[:8] + struct.pack("<Q", len(header_bytes)) + header_bytes + bytes(payload)
    path.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(CorruptModelFileError, match=r"`optimizer_state.tensors\[0\].shape`.*\[1\]"):
        gpucnn.load_model(path)


def test_saving_over_a_read_only_file_is_refused_and_keeps_it(cpu, tmp_path):
    path = tmp_path / "m.gpucnn"
    model = trained_model()
    model.save(path)
    before = path.read_bytes()
    path.chmod(0o444)
    model.layers[0].kernel.value[...] += 1.0
    try:
        for save in (model.save, model.save_weights):
            with pytest.raises(PermissionError, match="read-only"):
                save(path)
        assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.gpucnn"]
    finally:
        path.chmod(0o644)


def test_model_checkpoint_creates_its_folder(cpu, tmp_path):
    from gpucnn.callbacks import ModelCheckpoint
    model = trained_model()
    x, y = data()
    target = tmp_path / "new" / "nested" / "model-{epoch:02d}.gpucnn"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(target), save_best_only=False)])
    assert sorted(os.listdir(tmp_path / "new" / "nested")) == ["model-01.gpucnn", "model-02.gpucnn"]
    gpucnn.load_model(tmp_path / "new" / "nested" / "model-02.gpucnn")
