"""Toy networks: each 2-D set is learned (restarting when needed), and every heat map is the
neuron's activation on the grid, checked against a forward pass written out by hand."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from neuralatlas.toy import TOY_SETTINGS, toy_network  # noqa: E402

RES = 24
_NETS: dict[str, object] = {}


@pytest.fixture(scope="module")
def nets():
    """Train each data set once for the whole module (a second or two each)."""
    def get(name):
        if name not in _NETS:
            _NETS[name] = toy_network(name, resolution=RES)
        return _NETS[name]
    return get


@pytest.mark.parametrize("data", sorted(TOY_SETTINGS))
def test_each_toy_set_is_learned(nets, data):
    net = nets(data)
    target = TOY_SETTINGS[data]["target_accuracy"]
    assert net.reached_target is True, net.status
    assert net.test_accuracy >= target and net.train_accuracy >= target - 0.05
    if net.tries > 1:  # a restart is said, with the reason
        assert len(net.restarted_because) == net.tries - 1 and "restarted" in net.status
    # the decision regions agree with the network on the test points nearest to grid points
    assert net.probabilities.shape == (len(net.classes), RES, RES)
    np.testing.assert_allclose(net.probabilities.sum(axis=0), 1.0, atol=1e-5)


def _by_hand(net, points):
    """The MLP's hidden layers computed from its weights, without hooks or the module."""
    import torch

    h = torch.from_numpy(points)
    acts = []
    modules = dict(net.model.named_children())
    i = 1
    with torch.no_grad():
        while f"fc{i}" in modules:
            fc = modules[f"fc{i}"]
            h = torch.tanh(h @ fc.weight.T + fc.bias)
            acts.append(h.numpy())
            i += 1
        logits = h @ modules["out"].weight.T + modules["out"].bias
    return acts, torch.softmax(logits, dim=1).numpy()


@pytest.mark.parametrize("data", ["spirals", "xor"])
def test_heat_maps_are_the_neurons_activations_on_the_grid(nets, data):
    net = nets(data)
    gx, gy = np.meshgrid(net.xs, net.ys)                # [i, j] is (xs[j], ys[i])
    points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    acts, probs = _by_hand(net, points)
    assert net.hidden_layers == [f"tanh{k + 1}" for k in range(len(acts))]
    for layer, expected in zip(net.hidden_layers, acts, strict=True):
        grid = net.activations[layer]
        assert grid.shape == (expected.shape[1], RES, RES)
        np.testing.assert_allclose(grid, expected.T.reshape(-1, RES, RES), atol=1e-5)
        # one point checked by its coordinates, so the orientation is right too
        i, j = 3, RES - 5
        np.testing.assert_allclose(grid[:, i, j], expected[i * RES + j], atol=1e-5)
        assert (gx[i, j], gy[i, j]) == (net.xs[j], net.ys[i])
    np.testing.assert_allclose(net.probabilities, probs.T.reshape(-1, RES, RES), atol=1e-5)


def test_one_heat_map_per_hidden_neuron_showing_its_values(nets):
    from matplotlib.image import AxesImage

    from neuralatlas.plots.toy import decision_regions, neuron_heatmaps

    net = nets("spirals")
    for layer in net.hidden_layers:
        fig = neuron_heatmaps(net, layer=layer)
        images = [a for ax in fig.axes for a in ax.get_children() if isinstance(a, AxesImage)]
        units = net.activations[layer].shape[0]
        assert len(images) == units
        for u, img in enumerate(images):
            np.testing.assert_array_equal(np.asarray(img.get_array()), net.activations[layer][u])
            assert img.get_extent() == [net.xs[0], net.xs[-1], net.ys[0], net.ys[-1]]
        # tanh is signed: one symmetric diverging scale for the whole layer
        lo, hi = images[0].get_clim()
        assert lo == -hi and all(im.get_clim() == (lo, hi) for im in images)
        assert hi >= np.abs(net.activations[layer]).max()
        plt.close(fig)
    fig = decision_regions(net)
    [img] = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)]
    assert np.asarray(img.get_array()).shape[:2] == (RES, RES)
    plt.close(fig)


def test_save_writes_png_and_pdf_and_a_summary(nets, tmp_path):
    import json

    net = nets("circles")
    written = net.save_run(tmp_path)
    names = {p.name for p in written}
    for stem in ("decision_regions", "neurons_tanh1"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    summary = json.loads((tmp_path / "results" / "toy" / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(net.test_accuracy)
    assert summary["hidden_layers"] == {"tanh1": 8}
    with np.load(tmp_path / "results" / "toy" / "grids.npz") as npz:
        np.testing.assert_array_equal(npz["act_tanh1"], net.activations["tanh1"])
    assert "<img" in net._repr_html_()


def test_a_missed_target_restarts_and_says_so():
    net = toy_network("xor", target_accuracy=0.999, restarts=2, epochs=3, resolution=4)
    assert net.tries == 3 and net.reached_target is False
    assert len(net.restarted_because) == 2 and "< target 0.999" in net.restarted_because[0]
    assert "restarted 2x" in net.status and "NOT reached" in net.status


def test_unknown_data_set_is_a_clear_error():
    from neuralatlas.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'moons'"):
        toy_network("moon")


@pytest.mark.slow  # the CLI end to end
def test_cli_toy(tmp_path):
    from typer.testing import CliRunner

    from neuralatlas.cli import app

    result = CliRunner().invoke(app, ["toy", "--data", "circles", "--out", str(tmp_path), "--resolution", "16"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    assert (tmp_path / "figures" / "toy" / "neurons_tanh1.pdf").exists()
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "checkpoints").is_dir()
