"""Activation maximisation on the trained digits CNN: classes, channels, seeds, the model as found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.capture import hooks
from neuralatlas.errors import AnalysisError, LayerError
from neuralatlas.featurevis import FeatureVisResult, visualize_feature
from neuralatlas.featurevis import objectives as O
from neuralatlas.zoo import vgg

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")


def _channel_means(model: nn.Module, layer: str, images: np.ndarray) -> np.ndarray:
    """Reference: each image's mean activation per channel, read by plain hooks."""
    with hooks(model, [layer]) as rec, torch.no_grad():
        model.eval()
        model(torch.from_numpy(np.asarray(images, dtype=np.float32)))
    return rec.outputs[layer].flatten(2).mean(2).numpy()


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: p.grad for n, p in model.named_parameters()})


def _assert_as_found(model: nn.Module, snap) -> None:
    weights, modes, grads, grad_values = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert all(p.grad is grad_values[n] for n, p in model.named_parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_class_logit_images_are_classified_as_their_class(trained_cnn_run):
    model = trained_cnn_run.model
    res = visualize_feature(model, O.class_logit(range(10)), steps=128, seed=0)
    assert res.images.shape == (10, 1, 8, 8)
    assert res.trace.shape == (128, 10)
    assert res.labels == [f"class {k}" for k in range(10)]
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(res.images)), 1).numpy()
    assert (probs.argmax(1) == np.arange(10)).all()
    assert probs[np.arange(10), np.arange(10)].min() >= 0.9, probs.max(1)
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_each_channel_image_beats_every_data_set_image(trained_cnn_run):
    model, store = trained_cnn_run.model, trained_cnn_run.store
    n_channels = store.unit_shape("conv2")[0]
    res = visualize_feature(model, O.channel("conv2", range(n_channels)), steps=128, seed=0)
    optimised = _channel_means(model, "conv2", res.images)
    # The data set's best, per channel: the test split from the store (no recomputation) and
    # the train split through the model.
    test_acts = np.asarray(store.activations("conv2")).reshape(store.n_samples, n_channels, -1).mean(2)
    train_acts = _channel_means(model, "conv2", trained_cnn_run.train.inputs)
    best_data = np.maximum(test_acts.max(0), train_acts.max(0))
    own = optimised[np.arange(n_channels), np.arange(n_channels)]
    assert (own > best_data).all(), np.flatnonzero(own <= best_data)
    # The reported final values are the channels' own activations on the final images.
    np.testing.assert_allclose(res.values, own, rtol=1e-4, atol=1e-5)


def test_same_seed_same_images_other_seed_other_images(trained_cnn_run):
    model = trained_cnn_run.model
    a = visualize_feature(model, "conv2:3", steps=20, seed=11)
    b = visualize_feature(model, "conv2:3", steps=20, seed=11)
    c = visualize_feature(model, "conv2:3", steps=20, seed=12)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.trace, b.trace)
    assert not np.array_equal(a.images, c.images)


def test_model_left_as_found_even_after_an_error(trained_cnn_run):
    model = trained_cnn_run.model
    model.train()
    model.conv1.weight.requires_grad_(False)
    try:
        snap = _snapshot(model)
        visualize_feature(model, O.channel("conv1", 0) + O.class_logit(2), steps=5, param="pixel")
        _assert_as_found(model, snap)
        with pytest.raises(AnalysisError, match=r"0\.\.31"):
            visualize_feature(model, O.channel("conv2", 99), steps=5)
        _assert_as_found(model, snap)
    finally:
        model.conv1.weight.requires_grad_(True)
        model.eval()


def test_several_images_of_one_unit_with_diversity(trained_cnn_run):
    model = trained_cnn_run.model
    plain = visualize_feature(model, O.channel("conv2", 5), n_images=4, steps=60, seed=0)
    diverse = visualize_feature(model, O.channel("conv2", 5) + 2.0 * O.diversity("conv2"),
                                n_images=4, steps=60, seed=0)
    assert plain.images.shape == diverse.images.shape == (4, 1, 8, 8)

    def mean_correlation(images: np.ndarray) -> float:
        c = np.corrcoef(images.reshape(len(images), -1))
        return float(c[~np.eye(len(c), dtype=bool)].mean())

    assert mean_correlation(diverse.images) < mean_correlation(plain.images)
    with pytest.raises(AnalysisError, match="asks for 3 images"):
        visualize_feature(model, O.channel("conv2", [1, 2, 3]), n_images=2, steps=2)


def test_penalties_smooth_the_images(trained_cnn_run):
    model = trained_cnn_run.model

    def tv(images: np.ndarray) -> float:
        return float(np.abs(np.diff(images, axis=-1)).mean() + np.abs(np.diff(images, axis=-2)).mean())

    free = visualize_feature(model, "conv1:4", steps=60, param="pixel", transforms=None)
    smooth = visualize_feature(model, "conv1:4", steps=60, param="pixel", transforms=None, tv=5.0)
    assert tv(smooth.images) < tv(free.images)
    assert smooth.settings["tv"] == 5.0


def test_rgb_images_on_a_vgg_with_default_transforms():
    model = vgg((3, 32, 32), widths=(8, 16), hidden=32, seed=0).eval()
    res = visualize_feature(model, O.channel("block2.conv1", range(4)), steps=25, seed=0)
    assert res.images.shape == (4, 3, 32, 32)
    assert "rotate" in res.settings["transforms"]
    assert (res.trace[-5:].mean(0) > res.trace[:5].mean(0)).all()


def test_results_save_and_load(tmp_path, trained_cnn_run):
    res = visualize_feature(trained_cnn_run.model, "logit:4", steps=3)
    assert res.save(tmp_path / "logit4") == tmp_path / "logit4"
    back = FeatureVisResult.load(tmp_path / "logit4")
    assert np.array_equal(back.images, res.images) and back.labels == res.labels
    assert back.settings["steps"] == 3
    with pytest.raises(AnalysisError, match="missing"):
        FeatureVisResult.load(tmp_path / "nothing")
    with pytest.warns(DeprecationWarning, match="own"):  # the old (directory, name) call still reads it
        assert FeatureVisResult.load(tmp_path, "logit4").equals(back)


def test_bad_layer_and_missing_shape_are_explained(trained_cnn_run):
    with pytest.raises(LayerError, match="conv1, relu1"):
        visualize_feature(trained_cnn_run.model, "conv3:0", steps=2)
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with pytest.raises(AnalysisError, match="input_shape"):
        visualize_feature(plain, "0:1", steps=2)
    res = visualize_feature(plain, "0:1", steps=2, input_shape=(1, 8, 8), transforms=None)
    assert res.images.shape == (1, 1, 8, 8)


@pytest.mark.gpu
@cuda
def test_cuda_path_gives_images_and_leaves_the_model_on_cpu(trained_cnn_run):
    model = trained_cnn_run.model
    snap = _snapshot(model)
    res = visualize_feature(model, O.class_logit(range(10)), steps=128, device="cuda")
    assert res.settings["device"].startswith("cuda")
    assert next(model.parameters()).device.type == "cpu"
    _assert_as_found(model, snap)
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(res.images)), 1).numpy()
    assert (probs.argmax(1) == np.arange(10)).all()
    again = visualize_feature(model, O.channel("conv2", range(8)), steps=30, device=None)
    assert again.settings["device"].startswith("cuda")
