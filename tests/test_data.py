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
    return [tuple(None if a is None else np.array(to_numpy(a)) for a in batch) for batch in batches]


def expected_batches(x, y, batch_size, order, w=None):
    rows = np.arange(len(x)) if order is None else order
    return [tuple(None if a is None else a[rows[i:i + batch_size]] for a in (x, y, w))
            for i in range(0, len(x), batch_size)]


def assert_same(got, want):
    assert len(got) == len(want)
    for got_batch, want_batch in zip(got, want):
        assert len(got_batch) == len(want_batch) == 3
        for g, w in zip(got_batch, want_batch):
            if w is None:
                assert g is None
            else:
                np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("with_labels, with_weights", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("chunk_batches", [1, 2, 10])
def test_host_data_streams_the_same_batches(cpu, monkeypatch, shuffle, with_labels, with_weights,
                                            chunk_batches):
    x, y = arrays()
    y = y if with_labels else None
    w = np.arange(len(x), dtype=np.float32) if with_weights else None
    batch_size = 4
    sample_bytes = x[0].nbytes + (0 if y is None else y[0].nbytes) + (0 if w is None else 4)
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk_batches * batch_size * sample_bytes)
    order = np.random.default_rng(1).permutation(len(x)) if shuffle else None
    want = expected_batches(x, y, batch_size, order, w)
    assert_same(collect(data.HostData(x, y, w).batches(batch_size, order)), want)
    assert_same(collect(data.DeviceData(x, y, w).batches(batch_size, order)), want)


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


def small_cnn_and_data(samples, side, filters, seed):
    """A compiled conv-pool-dense model and images whose label is "brighter than average"."""
    import gpucnn
    from gpucnn.layers import Conv2D, Dense, Flatten, MaxPooling2D

    x = np.random.default_rng(seed).random((samples, side, side, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.float32)
    gpucnn.utils.set_random_seed(seed)
    model = gpucnn.Sequential([Conv2D(filters, (3, 3), activation="relu", input_shape=(side, side, 1)),
                               MaxPooling2D((2, 2)), Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_fit_evaluate_predict_on_streamed_data_match_device_data(cpu, monkeypatch):
    """The whole training loop on host-resident data in small chunks gives bit-identical results."""

    def run():
        model, x, y = small_cnn_and_data(37, 8, 3, seed=4)
        history = model.fit(x, y, batch_size=5, epochs=3, validation_split=0.25, verbose=0)
        return (model.get_weights(), history.history, model.evaluate(x, y, batch_size=6, verbose=0),
                model.predict(x, batch_size=7))

    want = run()
    placed = []

    def place_on_host(x, y=None, sample_weight=None):
        placed.append(len(x))
        return data.HostData(x, y, sample_weight)

    monkeypatch.setattr(data, "place", place_on_host)
    monkeypatch.setattr(data, "CHUNK_BYTES", 2 * 5 * (8 * 8 * 4 + 4))  # two batches a chunk
    got = run()
    assert placed == [10, 27, 37, 37]  # validation, train, evaluate, predict
    for g, w in zip(got[0], want[0]):
        np.testing.assert_array_equal(g, w)
    assert got[1] == want[1] and got[2] == want[2]
    np.testing.assert_array_equal(got[3], want[3])


@pytest.mark.gpu
def test_fit_on_streamed_data_on_the_gpu_matches_device_data(gpu, monkeypatch):
    def run():
        model, x, y = small_cnn_and_data(300, 16, 8, seed=6)
        model.fit(x, y, batch_size=32, epochs=2, validation_split=0.2, verbose=0)
        return model.get_weights(), model.predict(x)

    want = run()
    monkeypatch.setattr(data, "DEVICE_FRACTION", 0.0)  # nothing "fits": every array is streamed
    monkeypatch.setattr(data, "CHUNK_BYTES", 3 * 32 * (16 * 16 * 4 + 4))
    got = run()
    for g, w in zip(got[0], want[0]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[1], want[1])


def test_nan_in_any_slice_of_host_data_is_found_without_a_full_size_mask(cpu, monkeypatch, tmp_path):
    """A memory-mapped float32 file is checked slice by slice, and a NaN in the last slice is still found."""
    import gpucnn
    from gpucnn import data
    from gpucnn.layers import Dense, Flatten

    monkeypatch.setattr(data, "_FINITE_CHECK_BYTES", 2 * 4 * 4)  # two 2x2x1 images per slice
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(9, 2, 2, 1))
    x[:] = 0.5
    model = gpucnn.Sequential([Flatten(input_shape=(2, 2, 1)), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    assert model.predict(x).shape == (9, 1)
    x[8, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`x` contains NaN or Inf"):
        model.predict(x)
