"""The run-folder steps: PNG by default, PDFs on request, the LaTeX export drawing its PDFs from the
results, the old names still working (with a DeprecationWarning), and the registry's checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neuralatlas.errors import ConfigError
from neuralatlas.store import ActivationStore


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    labels = np.repeat(np.arange(3), n // 3)
    fc1 = rng.normal(size=(n, 12)).astype(np.float32)
    fc1[np.arange(n), labels] += 4.0  # unit c answers to class c
    fc2 = rng.normal(size=(n, 6)).astype(np.float32)
    folder = tmp_path / "run"
    ActivationStore.from_arrays(folder / "acts.zarr", {"fc1": fc1, "fc2": fc2}, labels=labels)
    return folder


def _files(folder, suffix):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(f"*{suffix}"))


def test_a_step_saves_png_only_by_default_and_pdf_on_request(run):
    from neuralatlas.steps import figure_formats, naps

    result = naps.step(run)
    figures = run / "figures" / "naps"
    pngs = _files(figures, ".png")
    assert pngs == ["fc1_heatmap.png", "fc2_heatmap.png", "unit_statistics.png"]
    assert _files(figures, ".pdf") == []
    assert result.equals(naps.load(run / "results" / "naps"))       # what load reads is what step saved
    with figure_formats(["png", "pdf"]):
        naps.step(run)
    assert _files(figures, ".pdf") == [p.replace(".png", ".pdf") for p in pngs]
    with pytest.raises(ConfigError, match="'jpeg'"), figure_formats(["jpeg"]):
        pass


def test_figures_redraws_the_saved_result_in_any_format(run, tmp_path):
    from neuralatlas.steps import naps

    naps.step(run, figures=False)
    assert not (run / "figures" / "naps").exists() or _files(run / "figures" / "naps", ".png") == []
    written = naps.figures(naps.load(run / "results" / "naps"), tmp_path / "pdf", ("pdf",))
    assert written == 3 and _files(tmp_path / "pdf", ".pdf") == ["fc1_heatmap.pdf", "fc2_heatmap.pdf",
                                                                 "unit_statistics.pdf"]


def test_latex_export_draws_the_pdfs_a_png_only_run_lacks(run, tmp_path):
    from neuralatlas.report import export_latex
    from neuralatlas.steps import naps

    naps.step(run)
    main = export_latex(run, tmp_path / "tex", only="naps")
    exported = _files(tmp_path / "tex" / "figures", ".pdf")
    assert [p.rpartition("/")[2] for p in exported] == ["fc1_heatmap.pdf", "fc2_heatmap.pdf", "unit_statistics.pdf"]
    for rel in exported:
        assert (tmp_path / "tex" / "figures" / rel).read_bytes()[:5] == b"%PDF-"
        assert f"{{figures/{rel}}}" in main.read_text()
    assert not any(p.endswith(".png") for p in _files(tmp_path / "tex" / "figures", ".png"))
    assert _files(run / "figures", ".pdf") == []                       # the run folder is left as it was


def test_latex_export_keeps_the_png_of_a_result_that_does_not_load(run, tmp_path):
    from neuralatlas.report import export_latex
    from neuralatlas.steps import naps

    naps.step(run)
    (run / "results" / "naps" / "naps.json").write_text("{ not json")
    export_latex(run, tmp_path / "tex", only="naps")
    assert len(_files(tmp_path / "tex" / "figures", ".png")) == 3 and _files(tmp_path / "tex" / "figures", ".pdf") == []


def test_old_names_warn_and_still_work(run):
    from neuralatlas import steps

    with pytest.warns(DeprecationWarning, match=r"steps\.naps\.step"):
        result, summary = steps.naps(run, figures=False)
    assert summary == result.summary()
    with pytest.warns(DeprecationWarning, match="steps.naps.run"):
        assert steps.run_naps is steps.naps.run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert steps.auto_alignment(steps.run_store(run)) is None      # helpers that stay: no warning
    with pytest.warns(DeprecationWarning, match="steps.attribution"):
        from neuralatlas.attribution.runfolder import attribute_run
    assert attribute_run is steps.attribution.attribute_run
    with pytest.warns(DeprecationWarning, match="steps.similarity"):
        from neuralatlas.analysis.similarity import save_figures  # noqa: F401
    with pytest.warns(DeprecationWarning, match="steps.unit_cards"):
        from neuralatlas.photo_steps import run_unit_cards
    assert run_unit_cards is steps.unit_cards.run


def test_registry_refuses_a_typo_in_any_analysis():
    from neuralatlas.steps.registry import ANALYSES, resolve, validate_params

    for name in ANALYSES:
        assert callable(resolve(name))
    validate_params("projection", {"n_samples": 300, "n": 300})   # the old name is still accepted here
    for name, typo in [("naps", "bye"), ("projection", "n_sample"), ("similarity", "rbff"), ("topomap", "layot"),
                       ("attribution", "method"), ("featurevis", "step")]:
        with pytest.raises(ConfigError, match=f"{typo!r}"):
            validate_params(name, {typo: 1})


def test_config_reads_registry_and_n_samples(tmp_path):
    from neuralatlas.config import load_config

    base = {"models": [{"name": "m", "model": "mlp"}]}
    assert load_config({**base, "capture": {"n_samples": "all"}}).capture.n_samples is None
    assert load_config({**base, "capture": {"n_samples": 50}}).capture.n_samples == 50
    with pytest.warns(DeprecationWarning, match="n_samples"):
        assert load_config({**base, "capture": {"n": 50}}).capture.n_samples == 50
    with pytest.raises(ConfigError, match="capture.n_samples"):
        load_config({**base, "capture": {"n_samples": 0}})
    with pytest.raises(ConfigError, match="unknown analysis 'napz'"):
        load_config({**base, "analyses": {"napz": {}}})
    assert load_config({**base, "report": {"pdf": True}}).report.pdf is True


def test_latex_redraw_uses_the_runs_figure_settings(run, tmp_path):
    """A run drawn with raw class means is redrawn with raw class means, not the default contrast."""
    from neuralatlas.report import export_latex
    from neuralatlas.steps import naps
    from neuralatlas.steps._common import read_figure_settings

    naps.step(run, heatmap="raw")
    assert read_figure_settings(run / "results" / "naps") == {"heatmap": "raw"}
    export_latex(run, tmp_path / "raw", only="naps")
    naps.step(run)                                            # contrastive (the default)
    export_latex(run, tmp_path / "contrastive", only="naps")
    raw = next((tmp_path / "raw" / "figures").rglob("fc1_heatmap.pdf")).read_bytes()
    contrast = next((tmp_path / "contrastive" / "figures").rglob("fc1_heatmap.pdf")).read_bytes()
    assert len(raw) != len(contrast)
