"""iNNtrospect folders: an imported output folder gives the NAPs of the same arrays in a store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuralatlas.analysis.naps import contrastive_naps, naps
from neuralatlas.errors import DataError, StoreError
from neuralatlas.store import ActivationStore, import_innspect_corpus, import_innspect_output, read_innspect_corpus

GROUPS = {"cat": [5, 7, 3], "dog": [6], "eel": [4, 4]}    # batch sizes per group file


def _write_innspect_output(folder, rng):
    """A processed corpus as iNNtrospect writes it: channels-last batches per layer folder."""
    files = {g: [f"{g}_batch{i:04d}.npy" for i in range(len(sizes))] for g, sizes in GROUPS.items()}
    arrays = {"conv": [], "dense": [], "out": [], "g_conv": [], "g_dense": []}
    for g, sizes in GROUPS.items():
        for file, size in zip(files[g], sizes, strict=True):
            batch = {
                "layer000": rng.normal(size=(size, 5, 6, 3)).astype(np.float32),     # [n, H, W, C]
                "layer001": rng.normal(size=(size, 7)).astype(np.float32),
                "layer002": rng.normal(size=(size, 4)).astype(np.float32),
            }
            grads = {"layer000": rng.normal(size=(size, 5, 6, 3)).astype(np.float32),
                     "layer001": rng.normal(size=(size, 7)).astype(np.float32)}
            for layer, a in batch.items():
                (folder / "acts" / layer).mkdir(parents=True, exist_ok=True)
                np.save(folder / "acts" / layer / file, a)
            for layer, a in grads.items():
                (folder / "grads" / layer).mkdir(parents=True, exist_ok=True)
                np.save(folder / "grads" / layer / file, a)
            arrays["conv"].append(batch["layer000"])
            arrays["dense"].append(batch["layer001"])
            arrays["out"].append(batch["layer002"])
            arrays["g_conv"].append(grads["layer000"])
            arrays["g_dense"].append(grads["layer001"])
    (folder / "group_name_to_files.json").write_text(json.dumps(files))
    (folder / "group_name_to_index.json").write_text(json.dumps({g: str(i) for i, g in enumerate(GROUPS)}))
    groups = np.repeat(list(GROUPS), [sum(s) for s in GROUPS.values()])
    return {k: np.concatenate(v) for k, v in arrays.items()}, groups, files


def _innspect_naps(folder, layer, files):
    """iNNtrospect's NAP: per group, the batch means weighted by batch size (channels-last)."""
    out = []
    for g, sizes in GROUPS.items():
        means = [np.load(folder / "acts" / layer / f).mean(0) for f in files[g]]
        out.append(sum(m * s for m, s in zip(means, sizes, strict=True)) / sum(sizes))
    return np.stack(out)


@pytest.fixture()
def innspect_folder(tmp_path):
    folder = tmp_path / "processed"
    arrays, groups, files = _write_innspect_output(folder, np.random.default_rng(0))
    return folder, arrays, groups, files


def test_imported_folder_matches_the_same_arrays_in_a_store(innspect_folder, tmp_path):
    folder, arrays, groups, files = innspect_folder
    # 4 rows per chunk: chunks straddle batch files and groups
    imported = import_innspect_output(folder, tmp_path / "imported.zarr", layer_names=["conv", "dense", "out"],
                                      chunk_rows=4)
    assert imported.layers == ["conv", "dense", "out"]
    assert imported.unit_shape("conv") == (3, 5, 6)                        # stored channels-first
    assert list(imported.samples["group"]) == list(groups)
    assert imported.classes == list(GROUPS)
    np.testing.assert_array_equal(imported.samples["prediction"], arrays["out"].argmax(1))
    conv_cf = np.moveaxis(arrays["conv"], -1, 1)
    np.testing.assert_array_equal(np.asarray(imported.activations("conv")), conv_cf)
    assert not imported.has_gradients("out")

    same = ActivationStore.from_arrays(
        tmp_path / "arrays.zarr", {"conv": conv_cf, "dense": arrays["dense"], "out": arrays["out"]},
        groups=groups, labels=np.unique(groups, return_inverse=True)[1],
        gradients={"conv": np.moveaxis(arrays["g_conv"], -1, 1), "dense": arrays["g_dense"]})
    for align in (None, "gradient"):
        a = naps(imported, by="group", align=align, layers=["conv", "d*"])
        b = naps(same, by="group", align=align, layers=["conv", "d*"])
        assert a.groups == b.groups == list(GROUPS)
        np.testing.assert_array_equal(a.counts, [sum(s) for s in GROUPS.values()])
        for layer in ("conv", "dense"):
            np.testing.assert_allclose(a.values(layer), b.values(layer), rtol=1e-6, atol=1e-7)
        ca, cb = contrastive_naps(a), contrastive_naps(b)
        np.testing.assert_allclose(ca.values("conv"), cb.values("conv"), rtol=1e-5, atol=1e-6)

    # and both equal iNNtrospect's own definition (batch means weighted by batch size)
    plain = naps(imported, by="group", layers=["conv", "dense"])
    np.testing.assert_allclose(plain.values("conv"), np.moveaxis(_innspect_naps(folder, "layer000", files), -1, 1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plain.values("dense"), _innspect_naps(folder, "layer001", files), rtol=1e-5, atol=1e-6)


def test_labels_from_the_corpus_csv(innspect_folder, tmp_path):
    folder, _, groups, files = innspect_folder
    lines = [f"{f}, {g}, {i}" for i, g in enumerate(GROUPS) for f in files[g]]
    (tmp_path / "corpus.csv").write_text("\n".join(lines) + "\n")
    store = import_innspect_output(folder, tmp_path / "s.zarr", corpus_csv=tmp_path / "corpus.csv",
                                   include_output=False)
    assert store.layers == ["layer000", "layer001"]
    np.testing.assert_array_equal(store.samples["label"], np.unique(groups, return_inverse=True)[1])


def test_corpus_reads_as_a_dataset_and_captures_a_pytorch_model(tmp_path):
    import torch
    from torch import nn

    rng = np.random.default_rng(1)
    rows = []
    for i, (group, size) in enumerate([("shirt", 3), ("shirt", 2), ("trouser", 4)]):
        np.save(tmp_path / f"batch{i}.npy", rng.random((size, 6, 6, 1)).astype(np.float32))   # channels-last
        rows.append(f"batch{i}.npy, {group}, {int(group == 'trouser')}")
    (tmp_path / "corpus.csv").write_text("\n".join(rows))
    data = read_innspect_corpus(tmp_path / "corpus.csv")
    assert data.inputs.shape == (9, 1, 6, 6) and list(data.labels) == [0] * 5 + [1] * 4
    assert list(data.groups) == ["shirt"] * 5 + ["trouser"] * 4

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)).eval()
    store = import_innspect_corpus(tmp_path / "corpus.csv", model, out=tmp_path / "acts.zarr", batch_size=4)
    assert store.has_gradients("0")
    result = naps(store, by="group", layers=["0"], align="gradient")
    assert result.groups == ["shirt", "trouser"] and list(result.counts) == [5, 4]


def test_bad_folders_get_clear_errors(tmp_path, innspect_folder):
    with pytest.raises(StoreError, match="no acts/ folder"):
        import_innspect_output(tmp_path, tmp_path / "x.zarr")
    folder, *_ = innspect_folder
    with pytest.raises(StoreError, match="layer_names has 2 names but"):
        import_innspect_output(folder, tmp_path / "y.zarr", layer_names=["a", "b"])
    (tmp_path / "bad.csv").write_text("only_a_file.npy\n")
    with pytest.raises(DataError, match="not 'file, group"):
        read_innspect_corpus(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("nothere.npy, a\n")
    with pytest.raises(DataError, match="is missing"):
        read_innspect_corpus(tmp_path / "missing.csv")
