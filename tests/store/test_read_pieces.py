"""Rows read in cache-sized pieces into reused buffers: the same values as a whole read,
checksums checked, damage named (for streamed reductions such as NAPs)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
import zarr.codecs

from neuralatlas.errors import StoreCorruptError
from neuralatlas.store.chunkio import ChunkChecksumError, ChunkFile
from neuralatlas.store.core import read_pieces


def _array(tmp_path, shape=(50, 6), chunk=8, crc=True, compressors=None):
    g = zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
    codecs = compressors if compressors is not None else ([zarr.codecs.Crc32cCodec()] if crc else None)
    arr = g.create_array("acts/x", shape=shape, chunks=(chunk, *shape[1:]), dtype="float32",
                         compressors=codecs, fill_value=0, config={"write_empty_chunks": True})
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    arr[:] = values
    return arr, values


def _collect(pieces):
    """Copies of the pieces (the buffers are reused) and the row slices they came with."""
    out, slices, buffers = [], [], set()
    for sl, piece in pieces:
        assert piece.shape[0] == sl.stop - sl.start
        out.append(piece.copy())
        slices.append(sl)
        buffers.add(piece.base.__array_interface__["data"][0] if piece.base is not None else id(piece))
    return out, slices, buffers


@pytest.mark.parametrize("crc", [True, False])
def test_pieces_equal_the_rows_for_any_slice_and_piece_size(tmp_path, crc):
    arr, values = _array(tmp_path, crc=crc)
    assert ChunkFile.for_array(arr) is not None
    for a, b in [(0, 50), (0, 8), (3, 4), (7, 9), (8, 48), (45, 50), (10, 10), (49, 60)]:
        for piece_rows in (1, 3, 8, 20):
            got, slices, buffers = _collect(read_pieces(arr, slice(a, b), piece_rows=piece_rows, buffers=2))
            want = values[a:b]
            if len(want) == 0:
                assert got == []
                continue
            np.testing.assert_array_equal(np.concatenate(got), want)
            # consecutive, within [a, b), never longer than asked, from two buffers only
            assert slices[0].start == a and slices[-1].stop == min(b, 50)
            assert all(s.stop == t.start for s, t in zip(slices, slices[1:], strict=False))
            assert max(s.stop - s.start for s in slices) <= piece_rows
            assert len(buffers) <= 2


def test_a_piece_buffer_is_reused_only_after_the_next_piece(tmp_path):
    arr, values = _array(tmp_path)
    seen = []
    for sl, piece in read_pieces(arr, slice(0, 50), piece_rows=4, buffers=2):
        if seen:   # the previous piece is still intact while this one is held (two buffers)
            prev_sl, prev = seen[-1]
            np.testing.assert_array_equal(prev, values[prev_sl])
        seen.append((sl, piece))


def test_unwritten_chunks_read_as_the_fill_value(tmp_path):
    g = zarr.open_group(str(tmp_path / "f.zarr"), mode="w")
    arr = g.create_array("x", shape=(20, 3), chunks=(5, 3), dtype="float32",
                         compressors=[zarr.codecs.Crc32cCodec()], fill_value=0)
    arr[5:10] = 1.0   # chunks 0, 2, 3 never written
    got, _, _ = _collect(read_pieces(arr, slice(2, 18), piece_rows=3))
    np.testing.assert_array_equal(np.concatenate(got), np.asarray(arr[2:18]))


def test_arrays_the_direct_path_cannot_read_are_read_by_zarr_and_cut_up(tmp_path):
    arr, values = _array(tmp_path, compressors=[zarr.codecs.BloscCodec(cname="lz4")])
    assert ChunkFile.for_array(arr) is None
    got, slices, _ = _collect(read_pieces(arr, slice(3, 41), piece_rows=7))
    np.testing.assert_array_equal(np.concatenate(got), values[3:41])
    assert slices[0] == slice(3, 10)


@pytest.mark.parametrize("damage", ["flip_late", "flip_early", "truncate", "extend"])
def test_a_damaged_chunk_raises_before_its_last_piece(tmp_path, damage):
    arr, values = _array(tmp_path, shape=(40, 4), chunk=10)
    f = ChunkFile.for_array(arr)
    path = f.path(2)
    raw = bytearray(path.read_bytes())
    if damage == "flip_late":
        raw[-6] ^= 0x01          # the last row of the chunk: only the CRC can tell
    elif damage == "flip_early":
        raw[0] ^= 0x01
    elif damage == "truncate":
        raw = raw[:-9]
    else:
        raw += b"\0"
    path.write_bytes(bytes(raw))
    seen = []
    with pytest.raises(ChunkChecksumError, match="CRC-32C|bytes"):
        for sl, _piece in read_pieces(arr, slice(0, 40), piece_rows=3):
            seen.append(sl)
    # every piece of the damaged chunk but none of its last was handed out, nothing after it
    assert all(s.stop <= 30 for s in seen)
    assert not any(s.stop == 30 for s in seen)


def test_store_pieces_name_the_damaged_layer_and_rows(tmp_path):
    import neuralatlas as na

    rng = np.random.default_rng(3)
    acts = {"conv": rng.normal(size=(30, 4, 2, 2)).astype(np.float32)}
    store = na.ActivationStore.from_arrays(tmp_path / "s.zarr", acts, labels=rng.integers(0, 2, 30),
                                           chunk_rows=10)
    got, _, _ = _collect(read_pieces(store.activations("conv"), slice(0, 30), piece_rows=4))
    np.testing.assert_array_equal(np.concatenate(got), acts["conv"])
    path = ChunkFile.for_array(store.activations("conv").zarr_array).path(1)
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0x20
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptError, match=r"'conv'.*rows 10–19"):
        for _ in read_pieces(na.ActivationStore.open(tmp_path / "s.zarr").activations("conv"), slice(0, 30),
                             piece_rows=4):
            pass
    with pytest.raises(StoreCorruptError):        # and NAPs, which read this way, give no result
        na.naps(tmp_path / "s.zarr")


def test_strided_rows_are_refused_not_labelled_as_contiguous(tmp_path):
    from neuralatlas.errors import StoreError

    arr = zarr.create_array(tmp_path / "a.zarr", shape=(10, 3), chunks=(4, 3), dtype="f4")
    arr[:] = np.arange(30, dtype=np.float32).reshape(10, 3)
    with pytest.raises(StoreError, match="contiguous rows"):
        list(read_pieces(arr, slice(0, 10, 2)))
