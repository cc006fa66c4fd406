"""Example instances of every result class outside similarity/projection, for the conformance test.

Each example is small (built in milliseconds, no training) and hostile where it can be: layer,
group, class and photo names are :data:`HOSTILE` (HTML that would run if shown unescaped),
and numbers that a real run can leave undefined (a layout's trustworthiness, a ratio to a best
of 0, a standard deviation of one sample) are NaN, which strict JSON must write as ``null``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from neuralatlas.results import Result

HOSTILE = "<img src=x onerror=alert(1)>"
_rng = np.random.default_rng(0)


def _f32(*shape: int) -> np.ndarray:
    return _rng.normal(size=shape).astype(np.float32)


# ---------------------------------------------------------------------------- analysis
def unit_statistics() -> Result:
    from neuralatlas.analysis.naps import UnitStatistics

    mean = _f32(4, 2, 2)
    return UnitStatistics(HOSTILE, (4, 2, 2), 12, mean, mean - 1, mean + 1,
                          np.linspace(0, 1, 16).reshape(4, 2, 2), threshold=0.0)


def naps() -> Result:
    from neuralatlas.analysis.naps import NAPs

    stats = unit_statistics()
    values = {HOSTILE: _f32(2, 4, 2, 2), "fc": _f32(2, 3)}
    return NAPs([HOSTILE, "b"], np.array([5, 7]), values, std={"fc": np.abs(_f32(2, 3))},
                statistics={HOSTILE: stats}, by="label", aligned=[HOSTILE], epoch=1, source="acts.zarr")


def contrastive_naps() -> Result:
    from neuralatlas.analysis.naps import NAPs

    return NAPs([HOSTILE, "b"], np.array([5, 7]), {HOSTILE: _f32(2, 3)}, by="prediction", kind="contrastive",
                reference={"groups": [HOSTILE, "b"], "weights": [0.5, 0.5], "weight_by_size": False})


def topomaps() -> Result:
    from neuralatlas.analysis.topomap import Topomaps

    images = _f32(2, 8, 8)
    images[:, 0, 0] = np.nan  # outside the map
    # a degenerate layout's trustworthiness is NaN: the demo once wrote it as invalid JSON
    quality = {HOSTILE: {"trustworthiness": float("nan"), "continuity": 0.9, "map_similarity": 0.25}}
    return Topomaps("som", 0, [HOSTILE, "b"], "contrastive", {HOSTILE: _f32(16, 2)}, {HOSTILE: _f32(2, 16)},
                    {HOSTILE: images}, quality, skipped={"tiny": "3 unit(s); a topomap needs at least 16"},
                    options={"resolution": 8})


def discriminative() -> Result:
    from neuralatlas.analysis.discriminative import DiscriminativeNeurons

    imp = np.abs(_f32(5, 3)).astype(np.float64)
    return DiscriminativeNeurons(imp / imp.sum(0), classes=[HOSTILE, "b", "c"], layer=HOSTILE, epoch=2,
                                 method="anova", params={"n_samples": 10, "seed": 0, "pool": "mean"})


# ---------------------------------------------------------------------------- attribution
def attribution(layer: str | None = HOSTILE) -> Result:
    from neuralatlas.attribution.result import Attribution

    n = 3
    return Attribution("integrated_gradients", _f32(n, 1, 4, 4), targets=np.array([0, 1, 0]), inputs=_f32(n, 1, 4, 4),
                       labels=np.array([0, 1, 1]), predictions=np.array([0, 1, 0]), index=np.arange(n),
                       delta=_f32(n), completeness=np.array([1e-3, np.nan, 2e-3]), n_steps=np.array([8, 16, 8]),
                       layer=layer, params={"n_steps": 8, "baseline": "zeros", "internal_batch_size": 16})


def text_attribution() -> Result:
    from neuralatlas.attribution.result import Attribution

    tokens = np.array([["[CLS]", HOSTILE, "ok", ""], ["[CLS]", "fine", "", ""]])
    return Attribution("saliency", _f32(2, 4, 3), targets=np.array([1, 0]), signed=False,
                       inputs=np.array([[101, 7, 8, 0], [101, 9, 0, 0]]), mask=np.array([[1, 1, 1, 0], [1, 1, 0, 0]]),
                       tokens=tokens, layer="emb", params={"smooth": None})


def photo_attribution() -> Result:
    from neuralatlas.attribution.photos import PhotoAttribution

    return PhotoAttribution({"saliency": attribution(None), f"grad_cam@{HOSTILE}": attribution(HOSTILE)},
                            _f32(3, 1, 4, 4), [HOSTILE, "cat", "rocket"],
                            [[("tabby", 0.5), (HOSTILE, 0.25)], [("tabby", 0.75)], [("rocket", 0.875)]],
                            settings={"n_steps": 4, "top_k": 2})


def sanity() -> Result:
    from neuralatlas.attribution.sanity import SanityResult

    steps = pd.DataFrame({"mode": ["cascading", "cascading"], "layer": [HOSTILE, "fc"],
                          "spearman": [0.5, 0.125], "spearman_std": [0.25, np.nan],
                          "ssim": [0.375, 0.0625], "ssim_std": [0.1, 0.2]})
    return SanityResult("saliency", steps, 0.5, True, maps={"original": _f32(2, 4, 4), HOSTILE: _f32(2, 4, 4)},
                        inputs=_f32(2, 1, 4, 4), absolute=True)


def faithfulness() -> Result:
    from neuralatlas.attribution.faithfulness import FaithfulnessResult

    curves = {mode: {HOSTILE: np.abs(_f32(3, 5)), "random": np.abs(_f32(3, 5))} for mode in ("deletion", "insertion")}
    return FaithfulnessResult(np.linspace(0, 1, 5), curves, "probability",
                              {"baseline": "zeros", "rank_by": "abs", "n_samples": 3, "seed": 0})


# ---------------------------------------------------------------------------- adversarial
def attack() -> Result:
    from neuralatlas.adversarial.attacks import AttackResult

    clean = np.clip(_f32(4, 1, 3, 3), 0, 1)
    return AttackResult("pgd", "linf", 0.1, clean, np.clip(clean + 0.1, 0, 1), np.array([0, 1, 1, 0]),
                        np.array([0, 1, 0, 0]), np.array([1, 1, 0, 1]), np.arange(4), classes=[HOSTILE, "b"],
                        params={"steps": 5, "step_size": 0.025, "random_start": True, "seed": 0})


def robustness() -> Result:
    from neuralatlas.adversarial.attacks import RobustnessCurve

    table = pd.DataFrame({"eps": [0.0, 0.1], "accuracy": [0.75, 0.25], "clean_accuracy": [0.75, 0.75],
                          "success_rate": [0.0, 2 / 3], "mean_norm": [0.0, 0.1]})
    return RobustnessCurve("pgd", "linf", table, [attack()])


# ---------------------------------------------------------------------------- feature visualisation
def dream() -> Result:
    from neuralatlas.featurevis.dream import DreamResult

    return DreamResult(np.clip(_f32(1, 3, 8, 8), 0, 1), np.clip(_f32(1, 3, 8, 8), 0, 1), _f32(6, 1),
                       [(4, 4), (8, 8)], HOSTILE, {"steps": 3, "octaves": 2, "device": "cpu"})


def filters() -> Result:
    from neuralatlas.featurevis.kernels import Filters

    return Filters(HOSTILE, _f32(4, 1, 3, 3), "Conv2d")


def feature_maps() -> Result:
    from neuralatlas.featurevis.maps import FeatureMaps

    return FeatureMaps({HOSTILE: _f32(2, 3, 3), "conv2": _f32(4, 2, 2)}, _f32(1, 6, 6), sample=3, label=HOSTILE,
                       source="store")


def featurevis() -> Result:
    from neuralatlas.featurevis.optimize import FeatureVisResult

    return FeatureVisResult(np.clip(_f32(2, 3, 4, 4), 0, 1), _f32(5, 2), _f32(2), [f"{HOSTILE}:0", f"{HOSTILE}:1"],
                            "channel", [HOSTILE], {"steps": 5, "param": "fourier", "transforms": ["jitter"]})


def unit_card() -> Result:
    from neuralatlas.featurevis.units import UnitCard

    k = 2
    return UnitCard(HOSTILE, 3, np.clip(_f32(3, 8, 8), 0, 1), 1.5, _f32(6), 0.0, float("nan"),
                    np.array([4, 9]), _f32(k), np.clip(_f32(k, 3, 8, 8), 0, 1), np.array([[1, 2], [0, 3]]),
                    np.array([[0, 0, 4, 4], [1, 1, 8, 8]]), np.clip(_f32(k, 3, 4, 4), 0, 1),
                    np.array([3, 5, 2]), np.array([0.0, 0.5, 1.0, 1.5]), np.array([2, 0]), np.array([0.5, 0.25]),
                    class_names=[HOSTILE, "b"], settings={"k": k, "steps": 6})


# ---------------------------------------------------------------------------- architecture, toy
def _hostile_model():
    from torch import nn

    model = nn.Sequential()
    model.add_module(HOSTILE, nn.Linear(3, 4))  # module names are any text without a dot
    model.add_module("act", nn.ReLU())
    model.add_module("out", nn.Linear(4, 2))
    return model


def architecture_graph() -> Result:
    import torch

    from neuralatlas.architecture import architecture

    return architecture(_hostile_model(), torch.zeros(1, 3))


def model_summary() -> Result:
    return architecture_graph().summary()  # type: ignore[attr-defined]


def toy() -> Result:
    from neuralatlas.data.dataset import ArrayDataset
    from neuralatlas.toy import ToyNetwork
    from neuralatlas.zoo import build

    model = build("mlp", input_shape=(2,), n_classes=2, hidden=(3,), activation="tanh", seed=0).eval()
    train = ArrayDataset(_f32(8, 2), np.arange(8) % 2, [HOSTILE, "b"], name="xor")
    test = ArrayDataset(_f32(4, 2), np.arange(4) % 2, [HOSTILE, "b"], name="xor")
    xs = np.linspace(-1, 1, 5, dtype=np.float32)
    metrics = [{"epoch": 0, "loss": float("nan"), "train_accuracy": 0.5, "test_accuracy": 0.5},
               {"epoch": 1, "loss": 0.5, "train_accuracy": 0.75, "test_accuracy": 0.75}]
    return ToyNetwork(HOSTILE, model, train, test, xs, xs, {"tanh1": _f32(3, 5, 5)}, np.abs(_f32(2, 5, 5)),
                      metrics, tries=2, restarted_because=["stuck at 0.5"], target_accuracy=0.9, reached_target=False)


EXAMPLES: dict[str, Callable[[], Result]] = {
    "unit_statistics": unit_statistics, "naps": naps, "contrastive_naps": contrastive_naps, "topomaps": topomaps,
    "discriminative": discriminative, "attribution": attribution, "text_attribution": text_attribution,
    "photo_attribution": photo_attribution, "sanity": sanity, "faithfulness": faithfulness, "attack": attack,
    "robustness": robustness, "dream": dream, "filters": filters, "feature_maps": feature_maps,
    "featurevis": featurevis, "unit_card": unit_card, "architecture_graph": architecture_graph,
    "model_summary": model_summary, "toy": toy,
}
