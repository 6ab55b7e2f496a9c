"""gpucnn.data: device-resident data, and host-resident data streamed to the device in chunks."""
import numpy as np
import pytest

from gpucnn import backend, data


def arrays(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 2, 1), dtype=np.float32), rng.random((n, 1), dtype=np.float32)


def collect(batches):
    """Copies of the batches as they come: a streamed batch lives in a buffer reused two chunks later."""
    to_numpy = backend.current().to_numpy
    return [(np.array(to_numpy(x)), None if y is None else np.array(to_numpy(y))) for x, y in batches]


def expected_batches(x, y, batch_size, order):
    rows = np.arange(len(x)) if order is None else order
    return [(x[rows[i:i + batch_size]], None if y is None else y[rows[i:i + batch_size]])
            for i in range(0, len(x), batch_size)]


def assert_same(got, want):
    assert len(got) == len(want)
    for (gx, gy), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(gx, wx)
        if wy is None:
            assert gy is None
        else:
            np.testing.assert_array_equal(gy, wy)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("with_labels", [True, False])
@pytest.mark.parametrize("chunk_batches", [1, 2, 10])
def test_host_data_streams_the_same_batches(cpu, monkeypatch, shuffle, with_labels, chunk_batches):
    x, y = arrays()
    y = y if with_labels else None
    batch_size = 4
    sample_bytes = x[0].nbytes + (0 if y is None else y[0].nbytes)
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk_batches * batch_size * sample_bytes)
    order = np.random.default_rng(1).permutation(len(x)) if shuffle else None
    want = expected_batches(x, y, batch_size, order)
    assert_same(collect(data.HostData(x, y).batches(batch_size, order)), want)
    assert_same(collect(data.DeviceData(x, y).batches(batch_size, order)), want)


def test_split_keeps_the_last_part_for_validation(cpu):
    x, y = arrays(10)
    for kind in (data.DeviceData, data.HostData):
        first, last = kind(x, y).split(7)
        assert type(first) is kind and len(first) == 7 and len(last) == 3
        np.testing.assert_array_equal(backend.current().to_numpy(last.x), x[7:])
        np.testing.assert_array_equal(backend.current().to_numpy(last.y), y[7:])


class RecordingCopier(data._HostCopier):
    """Host copies that log the ordering protocol: copy tokens, use tokens and what waited for what."""

    def __init__(self):
        self.log = []
        self.copies = self.uses = 0

    def copy(self, pairs, count, after):
        super().copy(pairs, count, after)
        self.copies += 1
        self.log.append(("copy", self.copies, after))
        return ("copied", self.copies)

    def wait_copied(self, copied):
        self.log.append(("wait_copied", copied))

    def mark_used(self):
        self.uses += 1
        self.log.append(("used", self.uses))
        return ("used", self.uses)

    def wait_host_reusable(self, copied):
        self.log.append(("host_wait", copied))


def test_chunk_copies_wait_for_the_kernels_of_the_chunk_two_before(cpu, monkeypatch):
    x, y = arrays(20)
    monkeypatch.setattr(data, "CHUNK_BYTES", 4 * (x[0].nbytes + y[0].nbytes))  # 5 chunks of 4 samples
    copier = RecordingCopier()
    log = copier.log
    for _ in data.HostData(x, y, copier=copier).batches(4):
        log.append(("batch",))
    copies = [event for event in log if event[0] == "copy"]
    # Chunk k's device buffer held chunk k - 2, whose last use was marked after its batches.
    assert [after for _, _, after in copies] == [None, None, ("used", 1), ("used", 2), ("used", 3)]
    # Chunk k + 1 is staged before chunk k's batches run (overlap), and each chunk's batches come only
    # after the training stream was told to wait for that chunk's copy.
    assert log[:4] == [("host_wait", None), ("copy", 1, None), ("host_wait", None), ("copy", 2, None)]
    assert log[4:6] == [("wait_copied", ("copied", 1)), ("batch",)]
    for k in range(1, 6):
        first_batch = log.index(("wait_copied", ("copied", k))) + 1
        assert log[first_batch] == ("batch",)
    # Before overwriting a pinned buffer the host waits for the copy out of it, two chunks earlier.
    host_waits = [event[1] for event in log if event[0] == "host_wait"]
    assert host_waits == [None, None, ("copied", 1), ("copied", 2), ("copied", 3)]


def test_place_keeps_data_on_the_device_off_the_gpu(cpu):
    x, y = arrays()
    placed = data.place(x, y)
    assert type(placed) is data.DeviceData and data.fits_on_device(10**15)


@pytest.mark.gpu
def test_host_data_on_the_gpu_matches_device_data(gpu, monkeypatch):
    x, y = arrays(1000)
    monkeypatch.setattr(data, "CHUNK_BYTES", 3 * 64 * (x[0].nbytes + y[0].nbytes))
    order = np.random.default_rng(2).permutation(len(x))
    want = expected_batches(x, y, 64, order)
    assert_same(collect(data.HostData(x, y).batches(64, order)), want)
    monkeypatch.setattr(data, "DEVICE_FRACTION", 0.0)
    assert type(data.place(x, y)) is data.HostData
