"""DeepDream, filters and feature maps (store and model agree), and their figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.featurevis import DreamResult, deepdream, feature_maps, filters, octave_sizes
from neuralatlas.featurevis import objectives as O
from neuralatlas.featurevis.images import read_image, write_image
from neuralatlas.plots import dream_comparison, feature_map_grid, filter_grid, objective_trace, optimized_images
from neuralatlas.zoo import vgg

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")


def _layer_energy(model: nn.Module, layer: str, images: np.ndarray) -> np.ndarray:
    out = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, a, o: out.setdefault("t", o))
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.asarray(images, dtype=np.float32)))
    finally:
        handle.remove()
    return out["t"].flatten(1).pow(2).mean(1).numpy()


def test_octave_sizes():
    assert octave_sizes(64, 64, 3, 1.4, 8) == [(33, 33), (46, 46), (64, 64)]
    assert octave_sizes(8, 8, 4, 1.4, 8) == [(8, 8)]
    assert octave_sizes(8, 8, 3, 2.0, 4) == [(4, 4), (8, 8)]
    with pytest.raises(AnalysisError, match="above 1"):
        octave_sizes(8, 8, 2, 1.0, 4)


def test_dream_amplifies_the_layer_on_a_digit(trained_cnn_run):
    model, test = trained_cnn_run.model, trained_cnn_run.test
    image = test.inputs[3]
    res = deepdream(model, image, "conv2", octaves=1, steps=30, seed=0)
    assert res.images.shape == (1, 1, 8, 8) and res.image.shape == (1, 8, 8)
    assert res.images.min() >= 0 and res.images.max() <= 1
    before, after = _layer_energy(model, "conv2", test.inputs[3:4]), _layer_energy(model, "conv2", res.images)
    assert after[0] > 1.5 * before[0]
    np.testing.assert_allclose(res.original[0], image)
    again = deepdream(model, image, "conv2", octaves=1, steps=30, seed=0)
    assert np.array_equal(again.images, res.images)


def test_small_octaves_pass_a_dense_head_when_only_conv_layers_are_read(trained_cnn_run):
    model, test = trained_cnn_run.model, trained_cnn_run.test
    # The forward stops after conv2, so 4x4 inputs never reach the 8x8-only dense head...
    res = deepdream(model, test.inputs[:2], ["conv1", "conv2"], octaves=2, octave_scale=2.0,
                    min_size=4, steps=5)
    assert res.octave_sizes == [(4, 4), (8, 8)] and res.trace.shape == (10, 2)
    # ...while a class objective needs the whole model, and says why it fails.
    with pytest.raises(AnalysisError, match="min_size"):
        deepdream(model, test.inputs[0], objective=O.class_logit(3), octaves=2, octave_scale=2.0,
                  min_size=4, steps=2)


def test_dream_on_rgb_with_octaves_and_save_load(tmp_path):
    model = vgg((3, 32, 32), widths=(8, 16), hidden=32, seed=0).eval()
    image = np.random.default_rng(0).uniform(0.2, 0.8, (3, 32, 32)).astype(np.float32)
    res = deepdream(model, image, "block2.conv1", octaves=3, steps=4)
    assert res.octave_sizes == [(16, 16), (23, 23), (32, 32)]
    assert res.trace.shape == (12, 1)
    res.save(tmp_path)
    back = DreamResult.load(tmp_path)
    assert np.array_equal(back.images, res.images) and back.octave_sizes == res.octave_sizes


def test_dream_checks_its_inputs(trained_cnn_run):
    model = trained_cnn_run.model
    with pytest.raises(AnalysisError, match="value_range"):
        deepdream(model, np.full((1, 8, 8), 3.0, np.float32), "conv1")
    with pytest.raises(AnalysisError, match="layer"):
        deepdream(model, np.zeros((1, 8, 8), np.float32))
    with pytest.raises(LayerError, match="conv1"):
        deepdream(model, np.zeros((1, 8, 8), np.float32), "conv7")


def test_filters_are_the_weights(trained_cnn_run):
    model = trained_cnn_run.model
    f = filters(model)
    assert f.layer == "conv1" and f.is_image_like
    np.testing.assert_array_equal(f.weights, model.conv1.weight.detach().numpy())
    pics = f.as_images()
    assert pics.shape == (16, 3, 3, 1) and pics.min() >= 0 and pics.max() <= 1
    m = np.abs(f.weights).max()
    np.testing.assert_allclose(pics[..., 0], 0.5 + 0.5 * f.weights[:, 0] / m)
    assert filters(model, "conv2").weights.shape == (32, 16, 3, 3)
    with pytest.raises(LayerError, match="conv1, conv2|conv1', 'conv2"):
        filters(model, "fc1")
    up = nn.Sequential(nn.ConvTranspose2d(4, 3, 2))
    assert filters(up).weights.shape == (3, 4, 2, 2)


def test_feature_maps_from_the_store_equal_a_recomputation(trained_cnn_run):
    model, store, test = trained_cnn_run.model, trained_cnn_run.store, trained_cnn_run.test
    from_store = feature_maps(store, layers=["conv1", "relu2"], sample=7, data=test)
    from_model = feature_maps(model, test.inputs, layers=["conv1", "relu2"], sample=7)
    assert from_store.layers == ["conv1", "relu2"] and from_store.source == "store"
    for layer in from_store.layers:
        np.testing.assert_allclose(from_store.maps[layer], from_model.maps[layer], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(from_store.input, test.inputs[7])
    assert from_store.label == test.classes[test.labels[7]]
    default = feature_maps(trained_cnn_run.run_dir, sample=0)  # a run folder works too
    assert set(default.layers) == {"conv1", "relu1", "pool1", "conv2", "relu2", "pool2"}
    assert feature_maps(model, test.inputs[0]).layers == ["conv1", "conv2"]
    with pytest.raises(LayerError, match="not \\[C, H, W\\]"):
        feature_maps(store, layers="fc1")
    with pytest.raises(AnalysisError, match="out of range"):
        feature_maps(store, sample=10**6)


def test_figures_are_figures(trained_cnn_run, tmp_path):
    import matplotlib.pyplot as plt

    model, test = trained_cnn_run.model, trained_cnn_run.test
    res = __import__("neuralatlas").visualize_feature(model, O.channel("conv2", range(5)), steps=3)
    dream = deepdream(model, test.inputs[0], "conv2", octaves=1, steps=3)
    fm = feature_maps(trained_cnn_run.store, sample=2, data=test)
    rgb = filters(nn.Sequential(nn.Conv2d(3, 6, 3)))
    figs = [optimized_images(res), objective_trace(res), objective_trace(dream), dream_comparison(dream),
            filter_grid(filters(model)), filter_grid(filters(model, "conv2"), max_out=4, max_in=4), filter_grid(rgb),
            feature_map_grid(fm, "conv2"), feature_map_grid(feature_maps(model, test.inputs[0]))]
    assert all(isinstance(f, Figure) for f in figs)
    assert sum(1 for ax in figs[0].axes if ax.images) == 5
    assert sum(1 for ax in figs[7].axes if ax.images) == 32 + 1  # every channel and the input
    for f in figs:
        plt.close(f)


def test_image_files_round_trip(tmp_path):
    img = np.random.default_rng(0).uniform(0, 1, (3, 5, 7)).astype(np.float32)
    write_image(tmp_path / "a.png", img)
    back = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(back, img, atol=1 / 255)
    assert read_image(tmp_path / "a.png", channels=1).shape == (1, 5, 7)
    np.save(tmp_path / "b.npy", img)
    assert read_image(tmp_path / "b.npy", size=(10, 14)).shape == (3, 10, 14)


@pytest.mark.gpu
@cuda
def test_dream_on_cuda(trained_cnn_run):
    model = trained_cnn_run.model
    res = deepdream(model, trained_cnn_run.test.inputs[:4], "conv2", octaves=1, steps=10, device="cuda")
    assert res.settings["device"].startswith("cuda") and res.images.shape == (4, 1, 8, 8)
    assert next(model.parameters()).device.type == "cpu"
    fm = feature_maps(model, trained_cnn_run.test.inputs[0], device="cuda")
    assert fm.maps["conv1"].shape == (16, 8, 8)
