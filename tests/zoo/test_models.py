"""Zoo models: shapes, layer names, seeding, the registry, VGG16's torchvision layout."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from neuralatlas.errors import NeuralAtlasError
from neuralatlas.zoo import BUILTIN_MODELS, ModelError, build, cnn, layer_table, mlp, vgg, vgg16
from neuralatlas.zoo.models import SPEC_ATTR, VGG16

# torchvision's VGG16 (configuration "D") parameter names and shapes, written out by hand.
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
               14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
               26: (512, 512), 28: (512, 512)}
VGG16_LINEARS = {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}
VGG16_KEYS = (
    [f"features.{i}.{p}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) for p in ("weight", "bias")]
    + [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
)


def names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("builder, shape", [
    (mlp, (1, 8, 8)), (mlp, (2,)), (mlp, (1, 28, 28)),
    (cnn, (1, 8, 8)), (cnn, (1, 28, 28)), (cnn, (3, 32, 32)),
    (vgg, (1, 8, 8)), (vgg, (3, 32, 32)),
])
def test_forward_shapes(builder, shape):
    model = builder(input_shape=shape, n_classes=7)
    assert model(torch.zeros(3, *shape)).shape == (3, 7)


def test_cnn_and_vgg_survive_more_pools_than_an_8x8_image_allows():
    assert cnn((1, 8, 8), channels=(4, 4, 4, 4, 4))(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert vgg((1, 8, 8), widths=(4, 4, 4, 4), convs_per_block=1)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_vgg16_shape_on_a_small_input():
    with torch.device("meta"):  # shape logic only: no 138 M parameters allocated
        model = VGG16(n_classes=5)
    assert model(torch.zeros(1, 3, 32, 32, device="meta")).shape == (1, 5)


# --- names ------------------------------------------------------------------------------

def test_mlp_names():
    assert names(mlp()) == ["flatten", "fc1", "relu1", "fc2", "relu2", "out"]
    assert names(mlp((2,), hidden=(5, 5, 5), activation="tanh")) == [
        "flatten", "fc1", "tanh1", "fc2", "tanh2", "fc3", "tanh3", "out"]
    assert names(mlp(hidden=())) == ["flatten", "out"]


def test_cnn_names():
    assert names(cnn()) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
                            "flatten", "fc1", "relu_fc1", "out"]
    assert names(cnn(channels=(4,), hidden=None)) == ["conv1", "relu1", "pool1", "flatten", "out"]


def test_vgg_names():
    model = vgg(widths=(8, 16), convs_per_block=2, hidden=32)
    assert names(model) == [
        "block1", "block1.conv1", "block1.relu1", "block1.conv2", "block1.relu2", "block1.pool",
        "block2", "block2.conv1", "block2.relu1", "block2.conv2", "block2.relu2", "block2.pool",
        "flatten", "classifier", "classifier.fc1", "classifier.relu1", "classifier.dropout1",
        "classifier.out"]
    assert "classifier.dropout1" not in names(vgg(widths=(8,), dropout=0.0))
    assert isinstance(model.get_submodule("block2.conv1"), nn.Conv2d)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ModelError, match=r"'rleu'.*Did you mean 'relu'"):
        mlp(activation="rleu")


# --- seeding ----------------------------------------------------------------------------

@pytest.mark.parametrize("builder", [mlp, cnn, lambda seed: vgg(widths=(8, 16), hidden=32, seed=seed)])
def test_seeded_construction(builder):
    assert same_weights(builder(seed=3), builder(seed=3))
    assert not same_weights(builder(seed=3), builder(seed=4))


def test_construction_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    mlp(seed=9)
    assert torch.equal(torch.rand(3), expected)


# --- registry ---------------------------------------------------------------------------

def test_builtin_models_listed():
    assert set(BUILTIN_MODELS) == {"mlp", "cnn", "vgg", "vgg16"}


def test_build_builtin_matches_direct_call_and_remembers_its_spec():
    model = build("mlp", hidden=(16,), seed=2)
    assert same_weights(model, mlp(hidden=(16,), seed=2))
    assert getattr(model, SPEC_ATTR) == {
        "builder": "mlp", "seed": 2,
        "kwargs": {"input_shape": [1, 8, 8], "n_classes": 10, "hidden": [16], "activation": "relu"}}


def test_build_unknown_name_lists_builtins():
    with pytest.raises(ModelError) as info:
        build("mpl")
    message = str(info.value)
    assert isinstance(info.value, NeuralAtlasError)
    assert "Did you mean 'mlp'" in message and "'vgg16'" in message and "module:function" in message


def test_build_bad_arguments_name_them():
    with pytest.raises(ModelError, match=r"hiden.*Did you mean 'hidden'"):
        build("mlp", hiden=(3,))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = "neuralatlas_zoo_test_user_models"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def tiny(width=4):
            return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 3))

        def tiny_seeded(width=4, seed=0):
            torch.manual_seed(seed + 100)
            return nn.Linear(2, width)

        def not_a_model():
            return 42

        CONSTANT = 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_build_user_spec(user_module):
    model = build(f"{user_module}:tiny", width=5, seed=1)
    assert model(torch.zeros(2, 2)).shape == (2, 3)
    assert same_weights(model, build(f"{user_module}:tiny", width=5, seed=1))
    assert not same_weights(model, build(f"{user_module}:tiny", width=5, seed=2))
    assert getattr(model, SPEC_ATTR) == {"builder": f"{user_module}:tiny", "kwargs": {"width": 5}, "seed": 1}
    # A builder that takes `seed` gets it passed through.
    assert same_weights(build(f"{user_module}:tiny_seeded", seed=7), build(f"{user_module}:tiny_seeded", seed=7))


@pytest.mark.parametrize("spec, pattern", [
    ("no_such_package_xyz.models:net", r"Cannot import module 'no_such_package_xyz.models'"),
    ("{mod}:tiyn", r"has no attribute 'tiyn'.*Did you mean 'tiny'"),
    ("{mod}:CONSTANT", r"names an object of type int, not a function"),
    ("{mod}:not_a_model", r"returned an object of type int, not a torch.nn.Module"),
    ("{mod}:", r"must look like 'package.module:function'"),
])
def test_build_bad_spec_is_a_clear_error(user_module, spec, pattern):
    with pytest.raises(ModelError, match=pattern):
        build(spec.format(mod=user_module))


# --- layer table ------------------------------------------------------------------------

def test_layer_table_rows():
    model = mlp()
    rows = layer_table(model, (1, 8, 8))
    assert [r["name"] for r in rows] == names(model)
    assert rows[0] == {"name": "flatten", "type": "Flatten", "output_shape": (64,), "n_params": 0}
    assert rows[1] == {"name": "fc1", "type": "Linear", "output_shape": (64,), "n_params": 64 * 64 + 64}
    assert rows[-1]["output_shape"] == (10,)
    assert sum(r["n_params"] for r in rows) == sum(p.numel() for p in model.parameters())
    vgg_rows = {r["name"]: r for r in layer_table(vgg(widths=(8, 16)))}  # input shape from the spec
    assert vgg_rows["block2.pool"]["output_shape"] == (16, 8, 8)
    assert vgg_rows["block1"]["n_params"] == 0  # containers own no parameters themselves


def test_layer_table_leaves_the_model_as_found():
    model = vgg(widths=(8,), hidden=16)
    model.train()
    model.classifier.eval()  # a mixed state must survive too
    before = [(n, m.training) for n, m in model.named_modules()]
    layer_table(model, (3, 32, 32))
    assert [(n, m.training) for n, m in model.named_modules()] == before
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ModelError, match=r"input_shape=\(3, 5\)"):
        layer_table(model, (3, 5))
    assert [(n, m.training) for n, m in model.named_modules()] == before
    assert all(not m._forward_hooks for m in model.modules())


def test_layer_table_needs_a_shape_for_foreign_models():
    with pytest.raises(ModelError, match="pass input_shape"):
        layer_table(nn.Linear(2, 2))


# --- VGG16 ------------------------------------------------------------------------------

def test_vgg16_layout_matches_torchvision():
    with torch.device("meta"):
        model = VGG16()
    state = model.state_dict()
    assert list(state) == VGG16_KEYS
    for i, (out_c, in_c) in VGG16_CONVS.items():
        assert state[f"features.{i}.weight"].shape == (out_c, in_c, 3, 3)
        assert state[f"features.{i}.bias"].shape == (out_c,)
    for i, shape in VGG16_LINEARS.items():
        assert state[f"classifier.{i}.weight"].shape == shape
        assert state[f"classifier.{i}.bias"].shape == (shape[0],)
    assert [n for n, _ in model.named_children()] == ["features", "avgpool", "classifier"]
    assert len(model.features) == 31
    assert all(isinstance(model.features[i], nn.MaxPool2d) for i in (4, 9, 16, 23, 30))
    assert all(model.features[i + 1].inplace for i in VGG16_CONVS)
    assert model.avgpool.output_size == (7, 7)
    assert [type(m).__name__ for m in model.classifier] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    model = vgg16(seed=0)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.slow  # builds VGG16 (138 M parameters)
def test_vgg16_weights_round_trip(vgg16_file):
    original, path = vgg16_file
    loaded = vgg16(weights=path).eval()
    assert same_weights(loaded, original)
    assert loaded(torch.rand(1, 3, 32, 32)).shape == (1, 1000)
    # torchvision's init: zero biases, small linear weights.
    assert torch.count_nonzero(loaded.features[0].bias) == 0
    assert loaded.classifier[6].weight.std() < 0.02


def test_vgg16_bad_weights_are_clear_errors(vgg16_file, tmp_path):
    original, _ = vgg16_file
    with pytest.raises(ModelError, match="does not exist"):
        vgg16(weights=tmp_path / "missing.pth")
    with pytest.raises(ModelError, match=r"classifier\.6\.weight: \(1000, 4096\) vs model \(10, 4096\).*n_classes"):
        vgg16(n_classes=10, weights=original.state_dict())
    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(ModelError, match="not a state_dict"):
        vgg16(weights=not_a_state_dict)
