"""The bundled photographs and the seeded patch set."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from neuralatlas.data import load
from neuralatlas.data.photos import PHOTO_FILES, photo, photo_patches, photos
from neuralatlas.errors import DataError


def test_photos_are_centre_crops_in_unit_range():
    ds = photos(64)
    assert ds.inputs.shape == (len(PHOTO_FILES), 3, 64, 64)
    assert 0.0 <= ds.inputs.min() and ds.inputs.max() <= 1.0
    assert ds.classes == list(PHOTO_FILES) and list(ds.labels) == list(range(len(PHOTO_FILES)))
    groups = dict(zip(ds.classes, ds.groups, strict=True))
    assert groups["chelsea"] == "colour" and groups["camera"] == "grey"
    img = photo("chelsea")
    assert img.shape == (300, 451, 3) and img.dtype == np.uint8


def test_patches_are_seeded_and_are_the_recorded_boxes():
    from PIL import Image

    a = photo_patches(12, size=32, seed=4)
    b = photo_patches(12, size=32, seed=4)
    c = photo_patches(12, size=32, seed=5)
    assert np.array_equal(a.inputs, b.inputs) and a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.inputs, c.inputs)
    assert {round(float(s), 3) for s in a.extra["scale"]} <= {0.2, 0.35, 0.6, 1.0}
    for i in range(3):  # each patch is its box of its photo, resized (a reference crop by hand)
        top, left, side = (int(v) for v in a.extra["box"][i])
        img = photo(a.classes[a.labels[i]])
        assert 0 <= top and top + side <= img.shape[0] and left + side <= img.shape[1]
        assert side == max(8, round(a.extra["scale"][i] * min(img.shape[:2])))
        ref = Image.fromarray(np.ascontiguousarray(img[top:top + side, left:left + side])).resize(
            (32, 32), Image.Resampling.BILINEAR)
        diff = np.abs(np.asarray(ref, np.float32).transpose(2, 0, 1) / 255 - a.inputs[i])
        # PIL's box resize may read a pixel beyond the box at the edges: small differences only
        assert diff.mean() < 0.01 and diff.max() < 0.1


def test_load_by_name_and_errors():
    train, test = load("photo_patches", n=6, size=24)
    assert train is test and len(train) == 6 and train.name == "photo_patches:6x24:seed0"
    ds, _ = load("photos", size=32, names=["coffee"])
    assert ds.classes == ["coffee"]
    with pytest.raises(DataError, match="Unknown photo"):
        photos(32, names=["cofee"])
    with pytest.raises(DataError, match="scales"):
        photo_patches(4, 32, scales=(1.5,))
    with pytest.raises(DataError, match="not read from files"):
        load("photos", path="/tmp")
