"""The architecture graph: every named module, shapes checked against hooks, residuals, shared
modules, the fx and hook tracers, MACs by hand, summary, drawing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn

from neuralatlas.architecture import ArchitectureGraph, GraphvizMissing, architecture, dot_available, summary
from neuralatlas.errors import AnalysisError
from neuralatlas.zoo import cnn, vgg

needs_dot = pytest.mark.skipif(not dot_available(), reason="Graphviz 'dot' is not installed (apt-get install graphviz);"
                               " the built-in SVG is tested instead")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")


class BasicBlock(nn.Module):
    """ResNet's block: the ReLU module runs twice (a shared module), the shortcut adds."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        if x.sum() > 1e9:
            x = x * 0
        return self.head(torch.cat([self.a(x), torch.relu(self.b(x))], 1))


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x):
        return self.out(self.fc(torch.tanh(self.fc(x))))


def _hook_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple]]:
    """Reference: every named module's output shapes (per sample), call by call."""
    shapes: dict[str, list[tuple]] = {}
    handles = [m.register_forward_hook(lambda m, a, o, n=n: shapes.setdefault(n, []).append(tuple(o.shape[1:])))
               for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _check_names_and_shapes(graph: ArchitectureGraph, model: nn.Module, x: torch.Tensor) -> None:
    named = [n for n, _ in model.named_modules() if n]
    assert graph.module_names == named
    ref = _hook_shapes(model, x)
    for row in graph.modules:
        assert row["output_shape"] == ref[row["name"]][0], row["name"]
        assert row["calls"] == len(ref[row["name"]])
    for node in (n for n in graph.nodes if n.kind == "module"):
        assert node.output_shape == ref[node.name][node.call - 1], node.id
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    assert {n.name for n in graph.nodes if n.kind == "module"} == set(leaves)


def test_vgg_graph_lists_every_module_with_its_shape():
    model = vgg((3, 32, 32), widths=(8, 16), hidden=32, seed=0)
    x = torch.zeros(2, 3, 32, 32)
    graph = architecture(model, x)
    assert graph.method == "fx"
    _check_names_and_shapes(graph, model, x)
    assert graph.node("block2.pool").output_shape == (16, 8, 8)
    # A plain chain: every module node has exactly one predecessor, the one before it.
    chain = [n.id for n in graph.nodes]
    for before, after in pairwise(chain):
        assert graph.predecessors(after) == [before]
    assert graph.total_params == sum(p.numel() for p in model.parameters())


def test_default_input_comes_from_the_zoo_spec():
    graph = architecture(cnn())
    assert graph.input_shape == (1, 8, 8) and graph.node("conv2").output_shape == (32, 4, 4)
    with pytest.raises(AnalysisError, match="input_shape"):
        architecture(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(AnalysisError, match="failed on the example input"):
        architecture(cnn(), torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_residual_net_branches_join_and_shared_relus_are_two_calls(method):
    model = SmallResNet()
    x = torch.randn(2, 3, 16, 16)
    graph = architecture(model, x, method=method)
    assert graph.method == method
    _check_names_and_shapes(graph, model, x)
    # Block 2's output joins the main path (bn2) and the shortcut (downsample.1).
    join = "add_1" if method == "fx" else "layer1.1.relu#2"
    assert set(graph.predecessors(join)) == {"layer1.1.bn2", "layer1.1.downsample.1"}
    # Block 1 has an identity shortcut: the stem's output feeds conv1 and the join.
    join0 = "add" if method == "fx" else "layer1.0.relu#2"
    assert set(graph.predecessors(join0)) == {"layer1.0.bn2", "stem"}
    assert set(graph.successors("stem")) == {"layer1.0.conv1", join0}
    relu = [n for n in graph.nodes if n.name == "layer1.0.relu"]
    assert [(n.id, n.call, n.calls) for n in relu] == [("layer1.0.relu", 1, 2), ("layer1.0.relu#2", 2, 2)]
    if method == "fx":
        assert graph.node("add").parent == "layer1.0"  # drawn inside its block
    dot = graph.to_dot()
    assert 'label="shared"' in dot and '"layer1.0.relu" -> "layer1.0.relu#2"' in dot
    assert "layer1.1.downsample (Sequential)" in dot


def test_untraceable_model_falls_back_to_hooks_with_correct_edges():
    model = Branchy()
    graph = architecture(model, torch.randn(3, 4))
    assert graph.method == "hooks" and graph.fx_error
    assert set(graph.predecessors("head")) == {"a", "b"}  # through cat and relu
    assert graph.predecessors("a") == ["input"] and graph.successors("head") == ["output"]
    assert graph.node("head").output_shape == (2,)
    with pytest.raises(AnalysisError, match="method='hooks'"):
        architecture(model, torch.randn(3, 4), method="fx")


def test_shared_module_counts_its_parameters_once():
    model = Shared()
    graph = architecture(model, torch.randn(2, 5))
    assert [n.id for n in graph.nodes if n.kind == "module"] == ["fc", "fc#2", "out"]
    assert graph.predecessors("fc#2") == ["tanh"]  # the functional tanh between the calls
    assert graph.node("fc#2").call == 2
    assert graph.total_params == 30 + 12
    table = graph.summary().table
    assert int(table.params.sum()) == graph.total_params
    assert int(table.loc[table.name == "fc", "calls"].iloc[0]) == 2
    assert int(table.loc[table.name == "fc", "macs"].iloc[0]) == 2 * 25  # both calls


def test_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, groups=2),
                          nn.Flatten(), nn.Linear(6 * 3 * 3, 5))
    s = summary(model, torch.zeros(1, 3, 8, 8))
    macs = dict(zip(s.table.name, s.table.macs, strict=True))
    assert macs["0"] == 8 * 8 * 4 * 3 * 9
    assert macs["2"] == 3 * 3 * 6 * 2 * 9
    assert macs["4"] == 54 * 5
    assert macs["1"] == 0
    assert s.total_macs == macs["0"] + macs["2"] + macs["4"]
    up = summary(nn.Sequential(nn.ConvTranspose2d(5, 2, 2, stride=2)), torch.zeros(1, 5, 3, 3))
    assert int(up.table.macs.iloc[0]) == 5 * 3 * 3 * 2 * 4


def test_summary_text_and_frame():
    model = SmallResNet()
    s = summary(model, torch.zeros(1, 3, 16, 16))
    text = str(s)
    for name, _ in model.named_modules():
        if name:
            assert name in text
    assert f"Total params: {s.total_params:,}" in text
    frame = s.to_frame()
    assert list(frame.columns[:3]) == ["name", "type", "depth"]
    assert int(frame.params.sum()) == s.total_params
    assert int(frame.loc[frame.name == "layer1", "params_total"].iloc[0]) == sum(
        p.numel() for p in model.layer1.parameters())
    assert int(frame.loc[frame.name == "layer1", "macs"].iloc[0]) == int(
        frame.loc[frame.name.str.startswith("layer1.") & frame.is_leaf, "macs"].sum())


def test_model_left_as_found():
    model = SmallResNet().train()
    model.stem.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    architecture(model, torch.randn(2, 3, 16, 16), method="hooks")
    architecture(model, torch.randn(2, 3, 16, 16))
    assert all(m.training for m in model.modules())
    assert not model.stem.weight.requires_grad and model.fc.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # batch-norm running stats untouched (eval forward)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_builtin_svg_and_html_name_every_layer():
    graph = architecture(SmallResNet(), torch.zeros(1, 3, 16, 16))
    svg = graph.to_svg(engine="builtin")
    root = ET.fromstring(svg)
    layers = {g.get("data-layer") for g in root.iter("{http://www.w3.org/2000/svg}g")
              if "na-layer" in (g.get("class") or "")}
    assert layers == {n.name for n in graph.nodes if n.kind == "module"}
    html = graph.to_html(engine="builtin")
    assert "navigator.clipboard" in html and '"layer1.1.downsample.0"' in html


@needs_dot
def test_graphviz_svg_parses_and_png_is_written(tmp_path):
    graph = architecture(vgg((3, 32, 32), widths=(8, 16), hidden=32), torch.zeros(1, 3, 32, 32))
    root = ET.fromstring(graph.to_svg(engine="dot"))
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert set(graph.module_names) - {"block1", "block2", "classifier"} <= titles
    assert any("block1 (Sequential)" in (t.text or "") for t in root.iter("{http://www.w3.org/2000/svg}text"))
    png = graph.to_png(tmp_path / "g.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert graph.render(tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"
    html = graph.to_html()
    assert "na-layer" in html and "block2.conv1" in html


def test_without_graphviz_the_error_says_how_to_install(monkeypatch):
    import neuralatlas.architecture.render as render

    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    graph = architecture(cnn())
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        graph.to_png("never.png")
    ET.fromstring(graph.to_svg())  # "auto" falls back to the built-in drawing


def test_save_load_round_trip(tmp_path):
    graph = architecture(SmallResNet(), torch.zeros(1, 3, 16, 16))
    assert graph.save(tmp_path) == tmp_path
    assert {p.name for p in tmp_path.iterdir()} >= {"graph.json", "summary.csv", "summary.txt", "architecture.svg"}
    back = ArchitectureGraph.load(tmp_path)
    assert back.module_names == graph.module_names and back.edges == graph.edges
    assert back.node("layer1.1.conv2").output_shape == (16, 8, 8)
    assert str(back.summary()) == str(graph.summary())


def test_top_level_name_is_the_function_even_after_the_package_is_imported():
    import neuralatlas
    import neuralatlas.architecture  # noqa: F401  (binds the package to the same name)

    graph = neuralatlas.architecture(cnn(), torch.zeros(1, 1, 8, 8))
    assert isinstance(graph, ArchitectureGraph)
    assert int(neuralatlas.summary(cnn()).total_params) == sum(p.numel() for p in cnn().parameters())


@pytest.mark.gpu
@cuda
def test_cuda_forward_gives_the_same_graph():
    model = SmallResNet()
    cpu = architecture(model, torch.zeros(2, 3, 16, 16))
    gpu = architecture(model, torch.zeros(2, 3, 16, 16), device="cuda")
    assert [(n.id, n.output_shape) for n in gpu.nodes] == [(n.id, n.output_shape) for n in cpu.nodes]
    assert next(model.parameters()).device.type == "cpu"


def test_layer_costs_figure():
    import matplotlib.pyplot as plt

    from neuralatlas.plots import layer_costs

    fig = layer_costs(summary(vgg((3, 32, 32), widths=(8, 16), hidden=32)))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "block1.conv1" in labels and "block1.relu1" not in labels
    plt.close(fig)
    assert np.isfinite(summary(cnn()).total_macs)


def test_example_from_dataset_takes_n_samples_and_its_old_n_warns():
    import numpy as np

    from neuralatlas.architecture.graph import example_from_dataset
    from neuralatlas.data.dataset import ArrayDataset

    data = ArrayDataset(np.arange(40, dtype=np.float32).reshape(10, 4), np.zeros(10, dtype=np.int64), ["a"])
    batch = example_from_dataset(data, n_samples=3)
    with pytest.warns(DeprecationWarning, match="use n_samples="):
        old = example_from_dataset(data, n=3)
    assert batch.shape == (3, 4) and np.array_equal(old.numpy(), batch.numpy())
