"""One-file model format: JSON config + raw float32 weights + optimizer state, with a checksum.

Layout (little-endian)::

    8 bytes   magic b"GPUCNN\\x00\\x01"
    8 bytes   length of the JSON header
    header    UTF-8 JSON: format_version, model config, compile config, tensor table
    payload   the tensors' bytes (float32, C order), at the offsets the header lists
    32 bytes  SHA-256 of everything before it

Files are written to a temporary file in the target's directory, fsynced, then renamed over the target,
so a save that is interrupted leaves the previous file intact.
"""
import hashlib
import json
import os
import struct
import tempfile

import numpy as np

MAGIC = b"GPUCNN\x00\x01"
FORMAT_VERSION = 1
_DIGEST = 32


class CorruptModelFileError(ValueError):
    """A model file is truncated, altered, or not a gpucnn model file."""


def _tensor_table(named_arrays, payload):
    """Append each array's bytes to ``payload`` and return the header entries describing them."""
    table = []
    for name, array in named_arrays:
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        table.append({"name": name, "shape": list(np.shape(array)), "offset": len(payload),
                      "nbytes": len(data)})
        payload += data
    return table


def serialize_model(model):
    """The bytes of ``model`` in the format above."""
    from gpucnn import losses, optimizers
    from gpucnn.backend import current

    model.build()
    payload = bytearray()
    header = {"format_version": FORMAT_VERSION, "model": model.get_config(),
              "weights": _tensor_table([(w.name, w.numpy()) for w in model.weights], payload),
              "compile": None, "optimizer_state": None}
    if model.loss is not None:
        header["compile"] = {"optimizer": optimizers.serialize(model.optimizer),
                             "loss": losses.serialize(model.loss), "metrics": model.metrics}
        if model.optimizer.state or model.optimizer.iterations:
            state = [(name, current().to_numpy(value)) for name, value in model.optimizer.state.items()]
            header["optimizer_state"] = {"iterations": model.optimizer.iterations,
                                         "tensors": _tensor_table(state, payload)}
    header_bytes = json.dumps(header).encode("utf-8")
    body = MAGIC + struct.pack("<Q", len(header_bytes)) + header_bytes + bytes(payload)
    return body + hashlib.sha256(body).digest()


def write_atomically(filepath, data):
    """Write ``data`` to ``filepath`` through a temporary file + fsync + rename."""
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to {filepath!r}: directory {directory!r} does not exist.")
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".gpucnn", dir=directory)
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


def save_model(model, filepath):
    write_atomically(filepath, serialize_model(model))


def _parse(data, filepath):
    def corrupt(why):
        return CorruptModelFileError(f"{filepath!r} is not a valid gpucnn model file: {why}. Fix: save "
                                     f"the model again, or restore the file from a backup.")

    if len(data) < len(MAGIC) + 8 + _DIGEST or not data.startswith(MAGIC):
        raise corrupt("missing gpucnn header (wrong file type or truncated)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise corrupt("checksum mismatch (the file is truncated or was modified)")
    (length,) = struct.unpack("<Q", body[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    try:
        header = json.loads(body[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise corrupt(f"unreadable header ({error})") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise corrupt(f"format version {header.get('format_version')!r}, this gpucnn reads "
                      f"{FORMAT_VERSION}")
    payload = body[start + length:]

    def tensors(table):
        return [np.frombuffer(payload, np.float32, int(np.prod(t["shape"], dtype=np.int64)),
                              t["offset"]).reshape(t["shape"]) for t in table]
    return header, tensors


def load_model(filepath, compile=True):
    from gpucnn import losses, optimizers
    from gpucnn.backend import current
    from gpucnn.models import Sequential

    try:
        with open(filepath, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"No model file at {os.fspath(filepath)!r}.") from None
    header, tensors = _parse(data, os.fspath(filepath))
    model = Sequential.from_config(header["model"])
    model.set_weights(tensors(header["weights"]))
    if compile and header.get("compile"):
        settings = header["compile"]
        model.compile(optimizer=optimizers.deserialize(settings["optimizer"]),
                      loss=losses.deserialize(settings["loss"]), metrics=settings["metrics"])
        state = header.get("optimizer_state")
        if state:
            model._pack_parameters()
            model.optimizer.iterations = state["iterations"]
            for table_entry, array in zip(state["tensors"], tensors(state["tensors"])):
                model.optimizer.state[table_entry["name"]][...] = current().asarray(array)
    return model
