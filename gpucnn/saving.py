"""One-file model format: JSON config + raw float32 weights + optimizer state, with a checksum.

A file can also carry the training state a resumed ``fit`` needs to continue bit-identically (on the
cpu backend): the number of completed epochs, the state of gpucnn's random generator (which shuffles
each epoch) and the per-layer step counters of Dropout (which derive each step's mask seed).  Optimizer
state and Dropout counters are in every file; the epoch count and the generator state only in
checkpoints written with ``save_model(..., epoch=...)`` (``callbacks.BackupAndRestore``), because
``load_model`` must not reseed the user's process.

Layout (little-endian)::

    8 bytes   magic b"GPUCNN\\x00\\x01"
    8 bytes   length of the JSON header
    header    UTF-8 JSON: format_version, model config, compile config, tensor table
    payload   the tensors' bytes (float32, C order), at the offsets the header lists
    32 bytes  SHA-256 of everything before it

Files are written to a temporary file in the target's directory, fsynced, then renamed over the target,
so a save that is interrupted leaves the previous file intact.

The file name's suffix chooses the format, as in Keras: ``.keras`` (a Keras 3 archive) and
``.weights.h5`` (Keras weights) are read and written by :mod:`gpucnn.keras_format`; any other name is
this format.
"""
import errno
import hashlib
import json
import os
import secrets
import stat
import struct

import numpy as np

from gpucnn import utils

MAGIC = b"GPUCNN\x00\x01"
FORMAT_VERSION = 1
_DIGEST = 32


class CorruptModelFileError(ValueError):
    """A model file is truncated, altered, or not a gpucnn model file."""


def _tensor_table(named_arrays, payload):
    """Append each array (little-endian float32, C order) to the ``payload`` list and return the header
    entries describing them; offsets count from the start of the payload."""
    table = []
    offset = sum(array.nbytes for array in payload)
    for name, array in named_arrays:
        array = np.ascontiguousarray(array, dtype="<f4")
        table.append({"name": name, "shape": list(array.shape), "offset": offset, "nbytes": array.nbytes})
        payload.append(array)
        offset += array.nbytes
    return table


def _dropout_counters(model):
    """Per layer (in model order), the counters a Dropout layer derives its mask seeds from, else None.
    Indexed by position, not name: a model rebuilt in the same process gets other automatic names."""
    from gpucnn.layers import Dropout

    return [layer.get_seed_state() if isinstance(layer, Dropout) else None
            for layer in model.layers]


def _set_dropout_counters(model, counters):
    for layer, state in zip(model.layers, counters or []):
        if state is not None:
            layer.set_seed_state(state)


def serialize_model(model, epoch=None, include_compile=True):
    """The bytes of ``model`` in the format above; with ``epoch`` (completed epochs), also the training
    state a resumed ``fit`` needs; without ``include_compile``, no compile settings and optimizer state
    (``save_weights``)."""
    from gpucnn import losses, optimizers
    from gpucnn.backend import current

    model.build()
    payload = []
    header = {"format_version": FORMAT_VERSION, "model_class": type(model).__name__,
              "model": model.get_config(),
              "weights": _tensor_table([(w.name, w.numpy()) for w in model.weights], payload),
              "compile": None, "optimizer_state": None, "dropout_counters": _dropout_counters(model),
              "training_state": None}
    if epoch is not None:
        header["training_state"] = {"epoch": int(epoch), "rng_state": utils.get_rng_state()}
    if include_compile and model.loss is not None:
        header["compile"] = {"optimizer": optimizers.serialize(model.optimizer),
                             "loss": losses.serialize(model.loss), "metrics": model.metrics}
        if model.optimizer.state or model.optimizer.iterations:
            state = [(name, current().to_numpy(value)) for name, value in model.optimizer.state.items()]
            header["optimizer_state"] = {"iterations": model.optimizer.iterations,
                                         "tensors": _tensor_table(state, payload)}
    header_bytes = json.dumps(header).encode("utf-8")
    # One buffer that every tensor is copied into once (concatenating bytes would copy it each time).
    data = bytearray(MAGIC + struct.pack("<Q", len(header_bytes)) + header_bytes)
    for array in payload:
        data += memoryview(array.reshape(-1)).cast("B")
    data += hashlib.sha256(data).digest()
    return data


def check_filepath(filepath, argument="filepath"):
    """``filepath`` as a str, or a TypeError/ValueError naming ``argument``."""
    if isinstance(filepath, bool) or not isinstance(filepath, (str, bytes, os.PathLike)):
        # open() would take an int as a file descriptor: refuse it explicitly.
        raise TypeError(f"Argument `{argument}` must be a file path (str or pathlib.Path), got "
                        f"{type(filepath).__name__}: {filepath!r}. Fix: pass e.g. 'model.gpucnn'.")
    filepath = os.fsdecode(os.fspath(filepath))
    if not filepath or os.path.isdir(filepath):
        raise ValueError(f"Argument `{argument}` must name a file, got {filepath!r}"
                         f"{' (a directory)' if filepath else ''}. Fix: pass a file name such as "
                         f"'model.gpucnn'.")
    return filepath


def write_atomically(filepath, data):
    """Write ``data`` to ``filepath`` through a temporary file + fsync + rename."""
    filepath = check_filepath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to {filepath!r}: directory {directory!r} does not exist. "
                                f"Fix: create it first (os.makedirs({directory!r}, exist_ok=True)).")
    # The rename below needs only the directory's permission, so it would replace a read-only file that
    # open(filepath, 'wb') (Keras) refuses.  A file without any write bit counts as read-only even for
    # root, whom os.access always lets write.
    if os.path.exists(filepath) and (not os.access(filepath, os.W_OK)
                                     or not stat.S_IMODE(os.stat(filepath).st_mode) & 0o222):
        raise PermissionError(errno.EACCES, f"Cannot save over the read-only file {filepath!r}. Fix: make "
                                            f"it writable (chmod u+w) or save to another path", filepath)
    # Not tempfile.mkstemp: it creates the file with mode 0o600, which the rename would give the saved
    # model.  os.open with 0o666 lets the umask decide, as for any file open() creates; O_EXCL never
    # clobbers another writer's temporary.
    temporary = os.path.join(directory, f".tmp-{secrets.token_hex(8)}.gpucnn")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, filepath)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory_handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_handle)
    finally:
        os.close(directory_handle)


KERAS_SUFFIX = ".keras"
KERAS_WEIGHTS_SUFFIX = ".weights.h5"


def _keras_format():
    # Imported on use: h5py loads only when a Keras file is read or written.
    from gpucnn import keras_format

    return keras_format


def _refuse_suffix(filepath, method, suffix, fix):
    if filepath.endswith(suffix):
        raise ValueError(f"{method}: {filepath!r} ends in {suffix!r}, which {fix}.")


def save_weights(model, filepath):
    """``model.save_weights``: the model file without compile settings and optimizer state, or Keras'
    weights file (with the optimizer state, as Keras writes it) for a name ending in .weights.h5."""
    filepath = check_filepath(filepath)
    _refuse_suffix(filepath, "save_weights", KERAS_SUFFIX, "names a whole Keras model. Fix: call "
                   "model.save(filepath), or end the name in '.weights.h5' for Keras weights")
    if filepath.endswith(KERAS_WEIGHTS_SUFFIX):
        _keras_format().save_weights(model, filepath)
    else:
        write_atomically(filepath, serialize_model(model, include_compile=False))


def load_weights(model, filepath):
    """``model.load_weights``: set ``model``'s weights from a file written by ``save_weights`` or
    ``save`` (gpucnn's or Keras' formats, by suffix); the weight shapes must match."""
    filepath = check_filepath(filepath)
    if filepath.endswith((KERAS_SUFFIX, KERAS_WEIGHTS_SUFFIX)):
        _keras_format().load_weights(model, filepath)
        return
    header, tensors = _read(filepath)
    _check_weight_shapes(model, header, filepath, "Fix: load weights saved from a model with the same "
                                                  "layers.")
    model.set_weights(tensors(header["weights"]))


def _check_weight_shapes(model, header, filepath, fix):
    model.build()
    saved_shapes = [tuple(entry["shape"]) for entry in header["weights"]]
    model_shapes = [w.shape for w in model.weights]
    if saved_shapes != model_shapes:
        raise ValueError(f"{filepath!r} was written by a model with weights {saved_shapes}, but this "
                         f"model has {model_shapes}. {fix}")


def save_model(model, filepath, epoch=None):
    """Write ``model`` to ``filepath`` atomically, as a Keras archive for a name ending in .keras;
    ``epoch`` adds the training state (see the module docstring; gpucnn's format only)."""
    filepath = check_filepath(filepath)
    _refuse_suffix(filepath, "save", KERAS_WEIGHTS_SUFFIX, "names Keras weights only. Fix: call "
                   "model.save_weights(filepath), or end the name in '.keras' or '.gpucnn'")
    if filepath.endswith(KERAS_SUFFIX):
        if epoch is not None:
            raise ValueError(f"save_model: the training state (epoch={epoch!r}) is kept in gpucnn's "
                             f"format only, not in {filepath!r}. Fix: use a name ending in '.gpucnn'.")
        _keras_format().save_model(model, filepath)
    else:
        write_atomically(filepath, serialize_model(model, epoch))


def _parse(data, filepath):
    def corrupt(why, fix="save the model again, or restore the file from a backup"):
        return CorruptModelFileError(f"{filepath!r} is not a valid gpucnn model file: {why}. Fix: {fix}.")

    if len(data) < len(MAGIC) + 8 + _DIGEST or not data.startswith(MAGIC):
        raise corrupt("missing gpucnn header (wrong file type or truncated)")
    # Slices of a memoryview share ``data``: the weights are read in place, not copied twice more.
    body = memoryview(data)[:-_DIGEST]
    if hashlib.sha256(body).digest() != data[-_DIGEST:]:
        raise corrupt("checksum mismatch (the file is truncated or was modified)")
    (length,) = struct.unpack("<Q", body[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    try:
        header = json.loads(bytes(body[start:start + length]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise corrupt(f"unreadable header ({error})") from None
    if not isinstance(header, dict):
        raise corrupt(f"the header is a JSON {type(header).__name__}, not an object")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise corrupt(f"format version {version!r}, this gpucnn reads {FORMAT_VERSION}",
                      fix="load it with the gpucnn version that wrote it (upgrade gpucnn for a newer file)")
    payload = body[start + length:]
    _check_header(header, len(payload), corrupt)

    def tensors(table):
        return [np.frombuffer(payload, "<f4", int(np.prod(t["shape"], dtype=np.int64)),
                              t["offset"]).reshape(t["shape"]) for t in table]
    return header, tensors


def _is_int(value, low=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_tensor_table(table, field, expected_offset, corrupt):
    """Every entry of a tensor table: a name, a shape of ints >= 0, nbytes = 4·size, and the offset at
    which the writer puts it (right after the previous tensor).  Returns the offset after the table."""
    if not isinstance(table, list):
        raise corrupt(f"header field `{field}` must be a list of tensors, got {type(table).__name__}")
    for index, entry in enumerate(table):
        where = f"{field}[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "shape", "offset", "nbytes"}:
            raise corrupt(f"header field `{where}` must be an object with name, shape, offset and nbytes, "
                          f"got {entry!r}")
        if not isinstance(entry["name"], str):
            raise corrupt(f"header field `{where}.name` must be a string, got {entry['name']!r}")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(_is_int(size) for size in shape):
            raise corrupt(f"header field `{where}.shape` must be a list of ints >= 0, got {shape!r}")
        nbytes = 4 * int(np.prod(shape, dtype=np.int64))
        if not _is_int(entry["nbytes"]) or entry["nbytes"] != nbytes:
            raise corrupt(f"header field `{where}.nbytes` is {entry['nbytes']!r}, but a float32 tensor "
                          f"of shape {shape} takes {nbytes} bytes")
        if not _is_int(entry["offset"]) or entry["offset"] != expected_offset:
            raise corrupt(f"header field `{where}.offset` is {entry['offset']!r}, but the tensor must "
                          f"start at byte {expected_offset} of the payload (right after the previous one)")
        expected_offset += nbytes
    return expected_offset


def _check_header(header, payload_size, corrupt):
    """Every header field a loader reads, checked before any byte is interpreted: a buggy writer gets a
    CorruptModelFileError naming the field, never shifted bytes or a wrong-shaped state."""
    if not isinstance(header.get("model"), dict):
        raise corrupt(f"header field `model` must be the model's config object, got {header.get('model')!r}")
    end = _check_tensor_table(header.get("weights"), "weights", 0, corrupt)
    compile_settings = header.get("compile")
    if compile_settings is not None:
        if not isinstance(compile_settings, dict) or set(compile_settings) != {"optimizer", "loss", "metrics"}:
            raise corrupt(f"header field `compile` must be null or an object with optimizer, loss and "
                          f"metrics, got {compile_settings!r}")
        for key in ("optimizer", "loss"):
            entry = compile_settings[key]
            if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
                    and isinstance(entry.get("config", {}), dict)):
                raise corrupt(f"header field `compile.{key}` must be an object with a class_name string "
                              f"and a config object, got {entry!r}")
        metrics = compile_settings["metrics"]
        if not isinstance(metrics, list) or not all(isinstance(name, str) for name in metrics):
            raise corrupt(f"header field `compile.metrics` must be a list of names, got {metrics!r}")
    state = header.get("optimizer_state")
    if state is not None:
        if not isinstance(state, dict) or set(state) != {"iterations", "tensors"}:
            raise corrupt(f"header field `optimizer_state` must be null or an object with iterations and "
                          f"tensors, got {state!r}")
        if compile_settings is None:
            raise corrupt("header field `optimizer_state` is set but `compile` is null")
        if not _is_int(state["iterations"]):
            raise corrupt(f"header field `optimizer_state.iterations` must be an int >= 0, got "
                          f"{state['iterations']!r}")
        end = _check_tensor_table(state["tensors"], "optimizer_state.tensors", end, corrupt)
    if end != payload_size:
        raise corrupt(f"the header's tensors take {end} bytes, but the payload holds {payload_size}")
    counters = header.get("dropout_counters")
    if counters is not None:
        model_layers = header["model"].get("layers")
        if not isinstance(counters, list) or (isinstance(model_layers, list) and len(counters) != len(model_layers)):
            raise corrupt(f"header field `dropout_counters` must be a list with one entry per layer, got "
                          f"{counters!r}")
        for index, entry in enumerate(counters):
            if entry is not None and not (isinstance(entry, dict) and set(entry) == {"base_seed", "step"}
                                          and _is_int(entry["base_seed"]) and _is_int(entry["step"])):
                raise corrupt(f"header field `dropout_counters[{index}]` must be null or an object with "
                              f"int base_seed and step >= 0, got {entry!r}")
    training_state = header.get("training_state")
    if training_state is not None and not (isinstance(training_state, dict)
                                           and set(training_state) == {"epoch", "rng_state"}
                                           and _is_int(training_state["epoch"])
                                           and isinstance(training_state["rng_state"], dict)):
        raise corrupt(f"header field `training_state` must be null or an object with an int epoch >= 0 and "
                      f"an rng_state object, got {training_state!r}")


def read_bytes(filepath):
    """The bytes of the model or weights file ``filepath``, or a FileNotFoundError that says so."""
    try:
        with open(filepath, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"No model file at {filepath!r}. Fix: check the path, or save a model "
                                f"there first with model.save(filepath) or model.save_weights(filepath)."
                                ) from None


def _read(filepath):
    filepath = check_filepath(filepath)
    return _parse(read_bytes(filepath), filepath)


def _check_optimizer_state_shapes(model, header, filepath):
    """Each saved optimizer state tensor must have the shape of the model's flat parameter buffer: an
    assignment into the state would broadcast a wrong shape instead of refusing it."""
    state = header.get("optimizer_state")
    if not state:
        return
    expected = [sum(int(np.prod(w.shape, dtype=np.int64)) for w in model.trainable_weights)]
    for index, entry in enumerate(state["tensors"]):
        if entry["shape"] != expected:
            raise CorruptModelFileError(
                f"{filepath!r} is not a valid gpucnn model file: header field "
                f"`optimizer_state.tensors[{index}].shape` ({entry['name']}) is {entry['shape']}, but the "
                f"model's optimizer keeps {expected} (one value per trainable parameter). Fix: save the "
                f"model again, or restore the file from a backup.")


def _restore_optimizer_state(model, header, tensors):
    state = header.get("optimizer_state")
    if state:
        names = [entry["name"] for entry in state["tensors"]]
        set_optimizer_state(model, state["iterations"], dict(zip(names, tensors(state["tensors"]))))


def set_optimizer_state(model, iterations, state):
    """Set the compiled ``model``'s optimizer update count and its state buffers (``{name: flat
    array}`` over the model's flat trainable parameters), as saved by either format."""
    from gpucnn.backend import current

    model.pack_parameters()
    if sorted(state) != sorted(model.optimizer.state):
        raise ValueError(f"The saved optimizer state holds {sorted(state)}, but the model's optimizer "
                         f"{type(model.optimizer).__name__} keeps {sorted(model.optimizer.state)}. Fix: "
                         f"compile with the optimizer the file was saved with.")
    model.optimizer.iterations = iterations
    for name, array in state.items():
        model.optimizer.state[name][...] = current().asarray(array)


def load_model(filepath, compile=True):
    """A model written by ``save_model`` (or by Keras, for a name ending in .keras)."""
    from gpucnn import losses, optimizers
    from gpucnn.functional import Functional
    from gpucnn.models import Sequential

    filepath = check_filepath(filepath)
    _refuse_suffix(filepath, "load_model", KERAS_WEIGHTS_SUFFIX, "names Keras weights only. Fix: "
                   "build the model, then call model.load_weights(filepath)")
    if filepath.endswith(KERAS_SUFFIX):
        return _keras_format().load_model(filepath, compile=compile)
    header, tensors = _read(filepath)
    classes = {"Sequential": Sequential, "Functional": Functional}
    class_name = header.get("model_class", "Sequential")
    if class_name not in classes:
        raise CorruptModelFileError(f"{filepath!r} holds a model of class {class_name!r}; gpucnn reads "
                                    f"{sorted(classes)}. Fix: save it again with this gpucnn version.")
    model = classes[class_name].from_config(header["model"])
    model.set_weights(tensors(header["weights"]))
    _set_dropout_counters(model, header.get("dropout_counters"))
    if compile and header.get("compile"):
        settings = header["compile"]
        model.compile(optimizer=optimizers.deserialize(settings["optimizer"]),
                      loss=losses.deserialize(settings["loss"]), metrics=settings["metrics"])
        _check_optimizer_state_shapes(model, header, filepath)
        _restore_optimizer_state(model, header, tensors)
    return model


def restore_training_state(model, filepath):
    """Load a checkpoint written with ``save_model(..., epoch=...)`` into the compiled ``model`` (weights,
    optimizer state and learning rate, Dropout counters, gpucnn's random generator) and return its
    completed epochs."""
    header, tensors = _read(filepath)
    training_state = header.get("training_state")
    if not training_state:
        raise ValueError(f"{filepath!r} holds a model but no training state to resume from (it was not "
                         f"written by BackupAndRestore). Fix: point BackupAndRestore at its own "
                         f"backup_dir.")
    _check_weight_shapes(model, header, filepath, "Fix: resume with the same model, or delete the "
                                                  "backup directory to start over.")
    model.set_weights(tensors(header["weights"]))
    _check_optimizer_state_shapes(model, header, filepath)
    _restore_optimizer_state(model, header, tensors)
    saved_optimizer = (header.get("compile") or {}).get("optimizer", {}).get("config", {})
    if "learning_rate" in saved_optimizer:
        # A callback (ReduceLROnPlateau, LearningRateScheduler) may have changed it during the run.
        model.optimizer.learning_rate = saved_optimizer["learning_rate"]
    _set_dropout_counters(model, header.get("dropout_counters"))
    utils.set_rng_state(training_state["rng_state"])
    return int(training_state["epoch"])
