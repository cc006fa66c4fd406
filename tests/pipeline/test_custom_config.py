"""Your own model, data and checkpoint from a YAML beside them: run end to end, and every bad
input stopped with the file:line and the fix."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from neuralatlas.config import load_config
from neuralatlas.errors import ConfigError
from neuralatlas.pipeline import Pipeline, run

MODELS = textwrap.dedent("""\
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.fc1 = nn.Linear(6, width)
            self.act = nn.Tanh()
            self.out = nn.Linear(width, 3)

        def forward(self, x):
            return self.out(self.act(self.fc1(x)))
""")

DATA = textwrap.dedent("""\
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset


    def _set(n, seed):
        g = np.random.default_rng(seed)
        x = torch.tensor(g.normal(size=(n, 6)), dtype=torch.float32)
        y = torch.tensor(np.arange(n) % 3)
        return TensorDataset(x, y)


    def load(n=30, seed=0):
        return _set(n, seed), _set(n, seed + 1)


    def only_test(n=30):
        return _set(n, 5)


    def arrays(n=30):
        return np.zeros((n, 6)), np.zeros(n)
""")

YAML = textwrap.dedent("""\
    name: custom
    out: {out}
    data:
      name: "mydata:load"
      options: {{n: 30}}
    models:
      - name: net
        model: "mymodels:Net"
        kwargs: {{width: 8}}
        checkpoint: net.pt
        layers: [fc1, act]
    capture:
      gradients: false
      per_epoch: true
      batch_size: 16
    analyses:
      naps: {{figures: false}}
      projection: {{method: pca, n: 30, neurons: [], bundle: false}}
    report:
      html: false
""")


@pytest.fixture()
def project(tmp_path):
    """A user's folder: a model module, a data module and a DDP-style checkpoint beside the YAML."""
    (tmp_path / "mymodels.py").write_text(MODELS)
    (tmp_path / "mydata.py").write_text(DATA)
    sys.path.insert(0, str(tmp_path))
    try:
        import mymodels

        torch.manual_seed(3)
        net = mymodels.Net(width=8)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mymodels", None)
    # saved as a DDP training script does: nested, with the wrapper's module. prefix
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"model_state_dict": state, "epoch": 7, "optimizer": {}}, tmp_path / "net.pt")
    config = tmp_path / "run.yaml"
    config.write_text(YAML.format(out=tmp_path / "out"))
    return tmp_path, net, config


def _load_data_module(folder):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mydata_check", folder / "mydata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_model_data_and_ddp_checkpoint_run_end_to_end(project):
    from neuralatlas.store import ActivationStore

    folder, net, config = project
    result = run(config)
    assert {"net/capture", "net/naps", "net/projection"} <= set(result.ran)
    acts = ActivationStore.open(result.out / "net" / "acts.zarr")
    # per_epoch: true with a loaded checkpoint has no epochs: the projection followed, not aborted
    assert not acts.epochs
    # the activations are the checkpoint's own (DDP prefix, nested dict): fc1 of the test split by hand
    _, test = _load_data_module(folder).load(n=30)
    x = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        expected = net.fc1(x).numpy()
    np.testing.assert_allclose(np.asarray(acts.activations("fc1")[:]), expected, rtol=1e-5, atol=1e-6)
    # the config's folder was on sys.path only during the run, and its modules are gone again
    assert str(folder) not in sys.path and str(folder.resolve()) not in sys.path
    assert "mymodels" not in sys.modules and "mydata" not in sys.modules
    # nothing changed: everything cached
    again = run(config)
    assert not again.ran


@pytest.mark.slow  # the same run as the test above, through the CLI
def test_cli_runs_the_config(project):
    from typer.testing import CliRunner

    from neuralatlas.cli import app

    folder, _, config = project
    res = CliRunner().invoke(app, ["run", str(config)])
    assert res.exit_code == 0, res.output
    assert (folder / "out" / "net" / "acts.zarr").is_dir()


def _with(config, old, new):
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))
    return config


def test_loader_returning_arrays_names_the_line_and_the_fix(project):
    folder, _, config = project
    _with(config, '"mydata:load"', '"mydata:arrays"')
    with pytest.raises(ConfigError) as err:
        Pipeline(load_config(config)).validate()
    msg = str(err.value)
    assert "run.yaml:4" in msg and "ArrayDataset" in msg and "TensorDataset" in msg


def test_missing_loader_module_names_the_line(project):
    folder, _, config = project
    _with(config, '"mydata:load"', '"nodata:load"')
    with pytest.raises(ConfigError, match=r"run\.yaml:4: .*Cannot import module 'nodata'"):
        Pipeline(load_config(config)).validate()


def test_one_data_set_cannot_train(project):
    folder, _, config = project
    _with(config, '"mydata:load"', '"mydata:only_test"')
    _with(config, "    checkpoint: net.pt\n", "")
    with pytest.raises(ConfigError, match=r"run\.yaml:7: .*returned one data set.*checkpoint"):
        Pipeline(load_config(config)).validate()
    # with the checkpoint it is fine: the one set is captured
    _with(config, "    kwargs: {width: 8}\n", "    kwargs: {width: 8}\n    checkpoint: net.pt\n")
    result = run(config)
    assert "net/capture" in result.ran


def test_pickled_whole_model_is_refused_with_the_fix(project):
    folder, net, config = project
    sys.path.insert(0, str(folder))
    try:
        import mymodels

        whole = mymodels.Net(width=8)
        whole.load_state_dict(net.state_dict())
        torch.save(whole, folder / "net.pt")  # the whole module, pickled
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("mymodels", None)
    _with(config, "  naps: {figures: false}\n  projection: {method: pca, n: 30, neurons: [], bundle: false}\n",
          "  naps: {figures: false}\n")
    with pytest.raises(ConfigError) as err:
        run(config)
    msg = str(err.value)
    assert "run.yaml:10" in msg and "state_dict()" in msg and "trust_pickle" in msg
    # asked for by name, it loads (the class imports from the config's folder)
    _with(config, "    checkpoint: net.pt\n", "    checkpoint: net.pt\n    trust_pickle: true\n")
    assert "net/capture" in run(config).ran


def test_unknown_capture_option_lists_the_new_keys(project):
    folder, _, config = project
    _with(config, "  batch_size: 16\n", "  batch_size: 16\n  row: tokens\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "Did you mean 'rows'" in str(err.value) and "layer_output" in str(err.value)


def test_capture_section_goes_to_capture_as_written():
    cfg = load_config({"models": [{"name": "m", "model": "mlp"}],
                       "capture": {"output": "logits", "layer_output": {"lstm": [1, 0], "attn": 0},
                                   "repeated": "first", "reduce": "token_mean"}})
    kwargs = cfg.capture.capture_kwargs()
    assert kwargs == {"output": "logits", "repeated": "first", "layer_output": {"lstm": (1, 0), "attn": 0}}
    assert "rows" not in kwargs  # passed only when set
    assert load_config({"models": [{"name": "m", "model": "mlp"}],
                        "capture": {"rows": "tokens"}}).capture.capture_kwargs()["rows"] == "tokens"


def test_data_shorthand_and_hf_model_schema(tmp_path):
    (tmp_path / "c.yaml").write_text(
        'data: "mydata:load"\nmodels:\n  - {name: m, model: {hf: hf_dir, task: causal-lm}}\n'
    )
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.data.name == "mydata:load"
    assert cfg.models[0].model.hf == tmp_path / "hf_dir" and cfg.models[0].model.task == "causal-lm"
    assert cfg.base_dir == tmp_path


TOKENS = textwrap.dedent("""\
    import torch
    from torch.utils.data import Dataset


    class Tokens(Dataset):
        def __init__(self, n, t):
            self.ids = torch.randint(1, 101, (n, t), generator=torch.Generator().manual_seed(0))

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i])}, int(i % 2)


    def load(n=6, t=8):
        return Tokens(n, t)
""")


@pytest.mark.slow
def test_hugging_face_folder_in_a_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=64)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    (tmp_path / "tokdata.py").write_text(TOKENS)
    (tmp_path / "run.yaml").write_text(textwrap.dedent(f"""\
        out: {tmp_path / "out"}
        data: "tokdata:load"
        models:
          - name: gpt2
            model: {{hf: gpt2, task: causal-lm}}
            layers: [transformer.h.0]
        capture: {{gradients: false, output: logits, rows: tokens}}
        analyses:
          architecture: {{}}
        report: {{html: false}}
    """))
    # pretrained: loaded, not trained (one data set is enough); the architecture runs on two real
    # samples of the user's data (dict inputs, integer ids)
    result = run(tmp_path / "run.yaml")
    summary = result.summaries["gpt2"]
    assert summary["train"] == {"loaded": str(tmp_path / "gpt2")}
    t, d, vocab = 8, 32, 101
    block = t * d * 3 * d + 2 * t * t * d + t * d * d + 2 * t * d * 4 * d
    assert summary["architecture"]["total_macs"] == 2 * block + t * d * vocab
    # capture: one row per token (rows: tokens from the YAML), equal to the model's own hidden states
    from neuralatlas.store import ActivationStore
    from neuralatlas.zoo.hf import hf_model

    acts = np.asarray(ActivationStore.open(result.out / "gpt2" / "acts.zarr").activations("transformer.h.0")[:])
    sys.path.insert(0, str(tmp_path))
    try:
        import tokdata

        data = tokdata.load()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tokdata", None)
    ids = torch.stack([data[i][0]["input_ids"] for i in range(len(data))])
    with torch.no_grad():
        hidden = hf_model(tmp_path / "gpt2", task="causal-lm")(input_ids=ids, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(acts, hidden[1].reshape(-1, d).numpy(), rtol=1e-4, atol=1e-5)
    # a wrong task names the line
    text = (tmp_path / "run.yaml").read_text().replace("causal-lm", "causal-llm")
    (tmp_path / "run.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"run\.yaml:5: .*Unknown Hugging Face task 'causal-llm'"):
        Pipeline(load_config(tmp_path / "run.yaml")).validate()
