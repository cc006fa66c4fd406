"""A small run for the report tests: digits, an MLP for 2 epochs, 200 captured samples.

Every analysis the pipeline knows runs on it; a projection (PCA, fast) and a fake analysis
nobody registered (summary.json, PNG, SVG, PDF) are added, so the generic section, the
interactive projection and the LaTeX export all have something to show.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# the helpers beside the tests (_na_pdf, _na_browser) import by name under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).resolve().parent))

FAKE = "fake_probe"
FAKE_SUMMARY = {
    "k": 6,
    "accuracy": {"fc1": [0.5, 0.625, 0.8125], "fc2": [0.25, 0.75, 0.9375]},
    "overall": 0.71875,
    "note": "probe_v1 & 50% <check>",
}


PHOTO_ONLY = ("unit_cards", "photo_attribution", "deepdream")


@dataclass
class ReportRun:
    out: Path            # the pipeline's run folder
    model_dir: Path      # out / "mlp"
    report: Path         # out / "report.html"
    seconds: float       # time write_report took


def _fake_analysis(model_dir: Path) -> None:
    import matplotlib.pyplot as plt

    from neuralatlas.plots.style import save_figure

    results, figures = model_dir / "results" / FAKE, model_dir / "figures" / FAKE
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.json").write_text(json.dumps(FAKE_SUMMARY))
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0.5, 0.625, 0.8125])
    save_figure(fig, figures / "probe_fc1", formats=("png", "pdf"))
    save_figure(fig, figures / "overview", formats=("svg", "pdf"))
    plt.close(fig)


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> ReportRun:
    import time

    from neuralatlas.pipeline import ANALYSES
    from neuralatlas.pipeline import run as run_pipeline
    from neuralatlas.report import write_report

    out = tmp_path_factory.mktemp("report_run") / "tiny"
    config = {
        "name": "tiny",
        "out": str(out),
        "data": {"name": "digits"},
        "models": [{"name": "mlp", "model": "mlp", "train": {"epochs": 2, "batch_size": 128}}],
        "capture": {"n": 200, "per_epoch": True},
        # every analysis but those for pretrained ImageNet models (unit cards, photo
        # attribution, deep dream need a model with a class card and named units)
        # Sized to what the report tests assert (sections, payloads and figures exist and agree
        # with the results): the projection by PCA without trail bundling, whose figure alone
        # took ~25 s to save; t-SNE and bundling are tested in tests/analysis.
        "analyses": {**{name: {} for name in ANALYSES if name not in PHOTO_ONLY},
                     "projection": {"method": "pca", "bundle": False}},
        "report": {"html": False},
    }
    run_pipeline(config)
    model_dir = out / "mlp"
    if not (model_dir / "results" / "projection" / "projection.json").exists():
        from neuralatlas.analysis.projection import project

        project(model_dir / "acts.zarr", epochs="all", method="pca", n=150).save(model_dir / "results" / "projection")
    _fake_analysis(model_dir)
    start = time.perf_counter()
    report = write_report(out)
    return ReportRun(out, model_dir, report, time.perf_counter() - start)


@pytest.fixture(scope="session")
def report_run2(report_run, tmp_path_factory) -> ReportRun:
    """A two-model run: the tiny run's mlp and a copy of it as a second model, "mlp_b".

    Both models have the same layer names, the case in which the layer picker must keep the
    models apart; copying the folder keeps the fixture cheap (no second training).
    """
    import shutil
    import time

    import yaml

    from neuralatlas.report import write_report

    out = tmp_path_factory.mktemp("report_run2") / "two"
    shutil.copytree(report_run.out, out, ignore=shutil.ignore_patterns("report.html"))
    shutil.copytree(out / "mlp", out / "mlp_b")
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["models"].append({**config["models"][0], "name": "mlp_b"})
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    report = write_report(out)
    return ReportRun(out, out / "mlp", report, time.perf_counter() - start)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/ at the repository root (gitignored): screenshots and the like."""
    path = Path(__file__).resolve().parents[2] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
