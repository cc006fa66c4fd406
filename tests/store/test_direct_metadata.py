"""Arrays created without zarr's event loop: the metadata files zarr itself writes, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from neuralatlas.errors import StoreError
from neuralatlas.store.core import ARRAY_CONFIG, CHUNK_KEY_ENCODING, ActivationStore, compressor_for, with_checksum


def _tree(root):
    """Every file under ``root`` with its bytes (relative paths)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stores(tmp_path):
    made = []
    for name in ("zarr", "direct"):
        made.append(ActivationStore.create(tmp_path / f"{name}.zarr", {"layers": ["x"], "unit_shapes": {"x": [3, 4]},
                                                                         "n_samples": 23, "chunk_rows": 5}))
    return made


SPECS = [
    ("acts/conv1", dict(shape=(23, 3, 4), chunks=(5, 3, 4), dtype="float32", fill_value=0,
                        compressors=with_checksum())),
    ("epochs/3/grads/fc.1", dict(shape=(23, 7), chunks=(5, 7), dtype="float32", fill_value=0,
                                 compressors=with_checksum(compressor_for("lz4")))),
    ("done", dict(shape=(5,), chunks=(1,), dtype=bool, fill_value=False, compressors=with_checksum())),
    ("prediction", dict(shape=(23,), chunks=(5,), dtype="int64", fill_value=-1, compressors=with_checksum())),
    ("samples/group", dict(shape=(23,), chunks=(5,), dtype=str, fill_value=None, compressors=with_checksum())),
    ("samples/label", dict(shape=(23,), chunks=(5,), dtype=np.float64, fill_value=None, compressors=with_checksum())),
]


@pytest.mark.parametrize("path,spec", SPECS, ids=[p for p, _ in SPECS])
def test_direct_array_metadata_is_the_bytes_zarr_writes(tmp_path, path, spec):
    via_zarr, direct = _stores(tmp_path)
    assert direct._local_root() == tmp_path / "direct.zarr"
    a = via_zarr._group.create_array(path, config=ARRAY_CONFIG, chunk_key_encoding=CHUNK_KEY_ENCODING, **spec)
    b = direct._create_array(path, **spec)
    # the array's zarr.json and those of the parent groups zarr makes on the way
    assert _tree(tmp_path / "direct.zarr") == _tree(tmp_path / "zarr.zarr")
    assert b.metadata == a.metadata
    assert b.config.write_empty_chunks is True  # the run-time config writers rely on
    # and the array is a working zarr array: written through it, read back by plain zarr
    values = (np.arange(np.prod(spec["shape"])) % 2 == 0).reshape(spec["shape"]) if spec["dtype"] is bool else (
        np.arange(np.prod(spec["shape"])).reshape(spec["shape"]).astype(spec["dtype"]))
    b[:] = values
    a[:] = values
    assert _tree(tmp_path / "direct.zarr") == _tree(tmp_path / "zarr.zarr")
    reread = zarr.open_array(str(tmp_path / "direct.zarr"), path=path, mode="r")
    np.testing.assert_array_equal(reread[:], values)


def test_direct_creation_refuses_an_existing_array(tmp_path):
    _, direct = _stores(tmp_path)
    spec = SPECS[0][1]
    direct._create_array("acts/conv1", **spec)
    with pytest.raises(StoreError, match="already holds an array"):
        direct._create_array("acts/conv1", **spec)


def test_has_matches_zarr_membership(tmp_path):
    _, direct = _stores(tmp_path)
    direct._create_array("epochs/2/acts/x", **SPECS[1][1])
    for path in ("epochs", "epochs/2", "epochs/2/acts", "epochs/2/acts/x", "epochs/3", "acts", "nope/x"):
        assert direct._has(path) == (path in direct._group), path


def test_capture_store_reads_back_through_plain_zarr(tmp_path):
    """A whole capture with the direct metadata path: every array opens in plain zarr."""
    torch = pytest.importorskip("torch")
    from neuralatlas import capture
    from neuralatlas.data import ArrayDataset

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.normal(size=(37, 6)).astype(np.float32), rng.integers(0, 3, 37), ["a", "b", "c"])
    store = capture(model, data, out=tmp_path / "s.zarr", gradients=True, batch_size=8, chunk_rows=16)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    with torch.no_grad():
        h = model[1](model[0](torch.from_numpy(data.inputs)))
    np.testing.assert_allclose(group["acts/1"][:], h.numpy(), rtol=1e-6)
    assert group["done"][:].all()
    assert sorted(group["grads"].array_keys()) == sorted(store.layers)


def test_direct_attribute_writes_are_the_bytes_zarr_writes(tmp_path):
    """Attributes written as the group's zarr.json directly: the file zarr's own update writes,
    seen at once through the open store, and by a fresh zarr open."""
    via_zarr, direct = _stores(tmp_path)
    updates = [{"complete": {"final": False}}, {"sample_columns": ["index", "label"]},
               {"complete": {"final": True}, "nonfinite_rows": {}, "note": float("nan")}]
    for update in updates:
        via_zarr._group.attrs.update(update)
        direct.update_attrs(**update)
        mine, theirs = (tmp_path / "direct.zarr" / "zarr.json"), (tmp_path / "zarr.zarr" / "zarr.json")
        assert mine.read_bytes() == theirs.read_bytes()
    assert direct.attrs["complete"] == {"final": True} and direct.is_complete()
    reopened = zarr.open_group(str(tmp_path / "direct.zarr"), mode="r")
    assert reopened.attrs["sample_columns"] == ["index", "label"]
    # the store's own writers go the same way: mark_complete, plan_slots, write_samples
    direct.plan_slots([None, 2])
    direct.mark_complete(2)
    assert zarr.open_group(str(tmp_path / "direct.zarr"), mode="r").attrs["complete"] == {"final": True, "2": True}


def test_arrays_opened_from_their_metadata_file_equal_zarrs(tmp_path):
    """An existing array opened for writing by reading its zarr.json: the metadata and the
    run-time config zarr's open plus ``writable`` give; writes through it read back in zarr."""
    from neuralatlas.store.core import writable

    _, direct = _stores(tmp_path)
    for path, spec in SPECS:
        direct._create_array(path, **spec)
    reopened = ActivationStore.open(tmp_path / "direct.zarr", mode="a")
    for path, _ in SPECS:
        mine = reopened._writable(path)
        theirs = writable(reopened._group[path])
        assert mine.metadata == theirs.metadata, path
        assert mine.config == theirs.config, path
        assert mine.path == theirs.path and mine.store == theirs.store
    values = np.arange(23 * 7, dtype=np.float32).reshape(23, 7)
    reopened._writable("epochs/3/grads/fc.1")[:] = values  # lz4 + crc32c: through zarr's codecs
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "direct.zarr"), path="epochs/3/grads/fc.1")[:],
                                  values)
    # a group, not an array: not parsed as one here (zarr's own open decides, as before)
    from neuralatlas.store.core import _open_local_array

    assert _open_local_array(reopened._group, tmp_path / "direct.zarr", "epochs/3") is None
    assert _open_local_array(reopened._group, tmp_path / "direct.zarr", "no/such/array") is None


def test_a_store_written_with_slash_chunk_keys_still_reads_and_verifies(tmp_path, monkeypatch):
    """Stores from before the "." chunk keys (``c/<i>/0``) are read, checked and named the same."""
    import neuralatlas.store.core as core
    from neuralatlas.errors import StoreCorruptError

    acts = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    monkeypatch.setattr(core, "CHUNK_KEY_ENCODING", {"name": "default", "separator": "/"})
    ActivationStore.from_arrays(tmp_path / "old.zarr", {"x": acts}, chunk_rows=8)
    monkeypatch.undo()
    chunk = tmp_path / "old.zarr" / "acts" / "x" / "c" / "1" / "0"
    assert chunk.is_file()
    store = ActivationStore.open(tmp_path / "old.zarr")
    np.testing.assert_array_equal(store.read("x"), acts)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "old.zarr"), path="acts/x", mode="r")[:], acts)
    assert store.check_integrity().ok
    chunk.unlink()
    with pytest.raises(StoreCorruptError, match="rows 8"):
        ActivationStore.open(tmp_path / "old.zarr").read("x")
