"""Toy networks: a small MLP on a 2-D data set, and what each hidden neuron does over the plane.

The classic first look inside a network: train an MLP on xor, circles, moons or spirals,
then evaluate every hidden neuron on a grid over the input plane. Each neuron's activation
is a heat map (a tanh neuron is a soft half-plane in the first layer, a combination of
half-planes deeper down); the decision regions show what the layers add up to.

Training restarts from a new initialisation when the accuracy stays below a target (a poor
local solution, e.g. xor stuck at 75 %), and the result says so.

Example
-------
>>> from neuralatlas.toy import toy_network
>>> net = toy_network("xor")                                      # doctest: +SKIP
>>> net.test_accuracy, net.tries                                 # doctest: +SKIP
(0.94, 1)
>>> sorted(net.figures())                                         # doctest: +SKIP
['decision_regions', 'neurons_tanh1']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralatlas.errors import AnalysisError, ConfigError, did_you_mean
from neuralatlas.results import Result
from neuralatlas.vocabulary import renamed_parameter

#: Per data set: a network that learns it in seconds on a CPU, and the accuracy that counts
#: as learned (xor's noisy points straddle the axes, so ~95 % is its ceiling).
TOY_SETTINGS: dict[str, dict[str, Any]] = {
    "xor": {"hidden": (8,), "epochs": 60, "lr": 0.03, "target_accuracy": 0.9},
    "circles": {"hidden": (8,), "epochs": 60, "lr": 0.03, "target_accuracy": 0.95},
    "moons": {"hidden": (16,), "epochs": 80, "lr": 0.03, "target_accuracy": 0.95},
    "spirals": {"hidden": (32, 32), "epochs": 150, "lr": 0.01, "target_accuracy": 0.9},
}

#: The input plane drawn: the toy sets lie in [-1, 1]², with a margin around them.
EXTENT = (-1.25, 1.25)


@dataclass
class ToyNetwork(Result):
    """A trained toy MLP and its hidden neurons evaluated over the input plane.

    Attributes
    ----------
    data : str
        The toy set's name.
    model : torch.nn.Module
        The trained MLP (eval mode).
    train, test : ArrayDataset
    xs, ys : array [resolution]
        The grid's coordinates along x and y.
    activations : dict of str to array [units, resolution, resolution]
        Every hidden layer's output (after its nonlinearity) at each grid point;
        ``activations[layer][u, i, j]`` is neuron ``u`` at ``(xs[j], ys[i])``.
    probabilities : array [n_classes, resolution, resolution]
        Softmax of the output at each grid point.
    metrics : list of dict
        Per-epoch metrics of the kept try (epoch 0 = before training).
    tries : int
        Training tries (1 = no restart).
    restarted_because : list of str
        Why each restart happened.
    target_accuracy : float or None
    reached_target : bool or None
    run_dir : Path or None
    """

    data: str
    model: Any
    train: Any
    test: Any
    xs: np.ndarray
    ys: np.ndarray
    activations: dict[str, np.ndarray]
    probabilities: np.ndarray
    metrics: list[dict[str, Any]]
    tries: int = 1
    restarted_because: list[str] = field(default_factory=list)
    target_accuracy: float | None = None
    reached_target: bool | None = None
    run_dir: Path | None = None

    kind = "toy"

    @property
    def classes(self) -> list[str]:
        """The class names."""
        return list(self.train.classes)

    @property
    def hidden_layers(self) -> list[str]:
        """The hidden layers, in order."""
        return list(self.activations)

    @property
    def decision(self) -> np.ndarray:
        """Predicted class at each grid point ``[resolution, resolution]``."""
        return self.probabilities.argmax(axis=0)

    @property
    def test_accuracy(self) -> float:
        """Accuracy on the test set after training."""
        return float(self.metrics[-1]["test_accuracy"])

    @property
    def train_accuracy(self) -> float:
        """Accuracy on the training set after training."""
        return float(self.metrics[-1]["train_accuracy"])

    @property
    def status(self) -> str:
        """One line: accuracy, and how many restarts it took (or that the target was missed)."""
        text = f"{self.data}: test accuracy {self.test_accuracy:.3f}, train {self.train_accuracy:.3f}"
        if self.tries > 1:
            text += f"; restarted {self.tries - 1}x from a poor solution ({'; '.join(self.restarted_because)})"
        if self.reached_target is False:
            text += (f"; target {self.target_accuracy} NOT reached after {self.tries} tries"
                     " (try more restarts, epochs or hidden units)")
        return text

    def summary(self) -> dict[str, Any]:
        """Headline numbers (what ``results/toy/summary.json`` holds)."""
        return {
            "data": self.data, "test_accuracy": self.test_accuracy, "train_accuracy": self.train_accuracy,
            "tries": self.tries, "restarted_because": list(self.restarted_because),
            "target_accuracy": self.target_accuracy, "reached_target": self.reached_target,
            "hidden_layers": {name: int(a.shape[0]) for name, a in self.activations.items()},
            "resolution": int(len(self.xs)),
        }

    def figures(self) -> dict[str, Any]:
        """The figures: ``decision_regions`` and ``neurons_<layer>`` for every hidden layer."""
        from neuralatlas.plots.toy import decision_regions, neuron_heatmaps

        figs = {"decision_regions": decision_regions(self)}
        for layer in self.hidden_layers:
            figs[f"neurons_{layer}"] = neuron_heatmaps(self, layer=layer)
        return figs

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``summary.json``, ``grids.npz``, ``toy.json``, ``data.npz`` and ``model.pt`` into ``directory``.

        Everything :meth:`load` needs to give the network back (the model as its zoo spec and
        weights). Returns the directory. A run folder's ``results/toy/`` and figures:
        :meth:`save_run`.
        """
        import torch

        from neuralatlas.zoo.models import SPEC_ATTR

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.write_summary(d)
        acts: dict[str, Any] = {f"act_{k}": v for k, v in self.activations.items()}  # Any: savez's **kwds
        np.savez(d / "grids.npz", xs=self.xs, ys=self.ys, probabilities=self.probabilities, **acts)
        sets = {f"{part}_{k}": getattr(getattr(self, part), k) for part in ("train", "test")
                for k in ("inputs", "labels", "index")}
        np.savez(d / "data.npz", **sets)
        spec = getattr(self.model, SPEC_ATTR, None)
        torch.save(self.model.state_dict(), d / "model.pt")
        self.write_json(d / "toy.json", {
            "data": self.data, "spec": spec, "classes": self.classes, "layers": self.hidden_layers,
            "metrics": self.metrics, "tries": self.tries, "restarted_because": self.restarted_because,
            "target_accuracy": self.target_accuracy, "reached_target": self.reached_target,
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "train_name": self.train.name, "test_name": self.test.name})
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ToyNetwork:
        """Read what :meth:`save` wrote: the model rebuilt from its zoo spec, with its weights."""
        import torch

        from neuralatlas.data.dataset import ArrayDataset
        from neuralatlas.zoo import build

        d = Path(directory)
        meta = cls.read_json(cls._required(d, "toy.json", "model.pt", "data.npz", "grids.npz", what="toy network",
                                           fix="write one with toy_network(...).save(dir) (a folder written by an"
                                               " older save(run_dir) holds only the summary and grids)"))
        if not meta.get("spec"):
            raise AnalysisError(f"{d / 'toy.json'} does not say how the model was built (no zoo spec).")
        spec = meta["spec"]
        model = build(spec["builder"], **spec["kwargs"], seed=spec.get("seed", 0))
        model.load_state_dict(torch.load(d / "model.pt", weights_only=True))
        model.eval()
        with np.load(d / "data.npz") as f:
            sets = {part: ArrayDataset(f[f"{part}_inputs"], f[f"{part}_labels"], meta["classes"],
                                       index=f[f"{part}_index"], name=meta[f"{part}_name"])
                    for part in ("train", "test")}
        with np.load(d / "grids.npz") as g:
            acts = {layer: g[f"act_{layer}"] for layer in meta["layers"]}
            xs, ys, probs = g["xs"], g["ys"], g["probabilities"]
        return cls(meta["data"], model, sets["train"], sets["test"], xs, ys, acts, probs, meta["metrics"],
                   meta["tries"], meta["restarted_because"], meta["target_accuracy"], meta["reached_target"],
                   None if meta["run_dir"] is None else Path(meta["run_dir"]))

    def _equals_state(self) -> dict[str, Any]:
        # a module compares by its weights; metrics as written (NaN loss is null on disk)
        from neuralatlas.results import jsonable

        state = super()._equals_state()
        state["model"] = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        state["metrics"] = jsonable(self.metrics)
        return state

    def save_run(self, run_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``results/toy/`` (:meth:`save`) and ``figures/toy/`` (PNG + PDF) of a run folder.

        Returns the files written.
        """
        import matplotlib.pyplot as plt

        from neuralatlas.plots.style import save_figure

        run_dir = Path(run_dir)
        results, figures = run_dir / "results" / "toy", run_dir / "figures" / "toy"
        self.save(results)
        written = sorted(p for p in results.iterdir() if p.is_file())
        for name, fig in self.figures().items():
            written += save_figure(fig, figures / name)
            plt.close(fig)
        return written

    def _repr_html_(self) -> str:
        from neuralatlas.report.components import esc, matplotlib_html

        fig = self.figures()["decision_regions"]
        try:
            return f"<div><p>{esc(self.status)}</p>{matplotlib_html(fig, fmt='png')}</div>"
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)


def plane_grid(
    resolution: int = 150, extent: tuple[float, float] = EXTENT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``xs``, ``ys`` and the points ``[resolution², 2]`` of a square grid, row by row (y outer)."""
    xs = np.linspace(extent[0], extent[1], int(resolution), dtype=np.float32)
    ys = np.linspace(extent[0], extent[1], int(resolution), dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1)


def hidden_layer_names(model: Any) -> list[str]:
    """The outputs that are hidden neurons: every activation module (``relu1``, ``tanh2``, ...).

    The zoo's MLP names each nonlinearity after its kind and number; its output is what a
    hidden neuron "says". Models without such modules fall back to every Linear but the last.
    """
    from torch import nn

    from neuralatlas.zoo.models import ACTIVATIONS

    kinds = tuple(ACTIVATIONS.values())
    names = [name for name, m in model.named_modules() if name and isinstance(m, kinds)]
    if names:
        return names
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linear[:-1]


def evaluate_plane(model: Any, layers: list[str], points: np.ndarray, resolution: int,
                   batch_size: int = 65536) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every layer's output and the class probabilities at each grid point.

    Returns ``({layer: [units, R, R]}, [n_classes, R, R])``. One forward per batch of grid
    points with hooks on the layers (the model is left as found).
    """
    import torch

    from neuralatlas.capture import hooks

    outs: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    probs = []
    with hooks(model, layers) as recorded, torch.no_grad():
        model.eval()
        for start in range(0, len(points), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(points[start:start + batch_size]))
            logits = model(batch)
            probs.append(torch.softmax(logits, dim=1).numpy())
            for name in layers:
                outs[name].append(recorded.outputs[name].reshape(len(batch), -1).numpy())
    r = int(resolution)
    acts = {name: np.concatenate(v).T.reshape(-1, r, r) for name, v in outs.items()}
    return acts, np.concatenate(probs).T.reshape(-1, r, r)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread.

    Batches of 32 two-dimensional points are far too small to split, and on a shared machine extra threads
    only wait for each other (10x slower).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@renamed_parameter("n", "n_samples")
def toy_network(
    data: str = "xor",
    *,
    hidden: int | tuple[int, ...] | None = None,
    activation: str = "tanh",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
    restarts: int = 5,
    target_accuracy: float | None = None,
    n_samples: int = 400,
    noise: float | None = None,
    resolution: int = 150,
    run_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> ToyNetwork:
    """Train a small MLP on a toy 2-D set and evaluate its hidden neurons over the plane.

    Parameters
    ----------
    data : {"xor", "circles", "moons", "spirals"}
    hidden : int or tuple of int, optional
        Hidden widths; default from ``TOY_SETTINGS`` (one layer of 8 for xor, two of 32
        for spirals, ...).
    activation : str
        Nonlinearity of the hidden layers (``"tanh"``, ``"relu"``, ...).
    epochs, lr : optional
        Training length and Adam learning rate; defaults from ``TOY_SETTINGS``.
    batch_size, seed : int
    restarts : int
        Extra tries from a new initialisation while the test accuracy is below the target.
    target_accuracy : float, optional
        Accuracy that counts as learned; default from ``TOY_SETTINGS``.
    n_samples, noise : optional
        Size and noise of the generated set (75 % train, 25 % test); ``n`` is the old name of
        ``n_samples``.
    resolution : int
        Grid points per axis of the heat maps.
    run_dir : path, optional
        Also write the run folder (checkpoints, metrics.json, model.json) there; call
        :meth:`ToyNetwork.save` for the figures.
    progress : callable, optional
        ``progress(epoch, epochs, metrics)``, as :func:`neuralatlas.zoo.train`.

    Returns
    -------
    ToyNetwork

    Raises
    ------
    ConfigError
        For an unknown data set or settings.

    Example
    -------
    >>> net = toy_network("circles", resolution=50)                   # doctest: +SKIP
    >>> net.activations["tanh1"].shape                                # doctest: +SKIP
    (8, 50, 50)
    """
    from neuralatlas.data import load
    from neuralatlas.zoo import mlp, train

    if data not in TOY_SETTINGS:
        raise ConfigError(f"Unknown toy data set {data!r}.{did_you_mean(data, TOY_SETTINGS)}"
                          f" Choose one of: {', '.join(TOY_SETTINGS)}.")
    if int(resolution) < 2:
        raise ConfigError(f"resolution={resolution!r} must be at least 2 grid points per axis, e.g. 150.")
    defaults = TOY_SETTINGS[data]
    hidden = defaults["hidden"] if hidden is None else hidden
    epochs = defaults["epochs"] if epochs is None else int(epochs)
    lr = defaults["lr"] if lr is None else float(lr)
    target = defaults["target_accuracy"] if target_accuracy is None else float(target_accuracy)
    options: dict[str, Any] = {"n_samples": int(n_samples), "seed": int(seed)}
    if noise is not None:
        options["noise"] = float(noise)
    train_set, test_set = load(data, **options)
    model = mlp(input_shape=(2,), n_classes=train_set.n_classes, hidden=hidden, activation=activation, seed=seed)
    with _one_thread():
        result = train(model, train_set, test_set, epochs=epochs, run_dir=run_dir, lr=lr, batch_size=batch_size,
                       seed=seed, restarts=restarts, target_accuracy=target, progress=progress,
                       device="cpu")  # a few hundred 2-D points: a GPU only adds transfer time
        model = result.model.eval()
        xs, ys, points = plane_grid(resolution)
        acts, probs = evaluate_plane(model, hidden_layer_names(model), points, resolution)
    return ToyNetwork(data, model, train_set, test_set, xs, ys, acts, probs, list(result.metrics),
                      tries=result.tries, restarted_because=list(result.restarted_because),
                      target_accuracy=target, reached_target=result.reached_target,
                      run_dir=Path(run_dir) if run_dir is not None else None)
