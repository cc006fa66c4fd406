"""LaTeX export: tables hold the JSON's numbers, every figure comes as PDF, main.tex compiles."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

FAKE = "fake_probe"


def numbers_in(text: str) -> list[float]:
    """Every number of a LaTeX table row, ``$1.2\\times10^{-5}$`` included."""
    out = []
    for m in re.finditer(r"(-?\d+(?:\.\d+)?)(?:\\times10\^\{(-?\d+)\}|e([+-]?\d+))?", text):
        value = float(m.group(1))
        if m.group(2) or m.group(3):
            value *= 10.0 ** int(m.group(2) or m.group(3))
        out.append(value)
    return out


def rows_of(tex: str) -> list[list[str]]:
    """The body rows of a booktabs tabular, as cells."""
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [[c.strip() for c in line.rstrip("\\ ").split(" & ")] for line in body.strip().splitlines()]


@pytest.fixture(scope="module")
def export(report_run, tmp_path_factory):
    from neuralatlas.report import export_latex

    out = tmp_path_factory.mktemp("latex")
    main = export_latex(report_run.out, out)
    return out, main


def test_accuracy_table_equals_metrics_json(report_run, export):
    out, _ = export
    tex = (out / "tables" / "accuracy_mlp.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    header = tex.split(r"\toprule", 1)[1].split(r"\midrule", 1)[0]
    assert "train accuracy" in header and "test accuracy" in header
    metrics = json.loads((report_run.model_dir / "metrics.json").read_text())["epochs"]
    rows = rows_of(tex)
    assert len(rows) == len(metrics)
    for row, entry in zip(rows, metrics, strict=True):
        values = [float(numbers_in(c)[0]) for c in row]
        expected = [entry["epoch"], entry["loss"], entry["train_accuracy"], entry["test_accuracy"], entry["test_loss"]]
        np.testing.assert_allclose(values, expected, rtol=6e-4)


def test_neighbourhood_hit_per_layer_and_epoch_equals_summary_json(report_run, export):
    out, _ = export
    summary = json.loads((report_run.model_dir / "results" / "projection" / "summary.json").read_text())
    expected = {(s["layer"], s["epoch"]): s["neighborhood_hit"] for s in summary["scores"]}
    tables = [p.read_text() for p in sorted((out / "tables").glob("mlp_projection_*.tex"))]
    tex = next(t for t in tables if "neighborhood hit" in t.splitlines()[0])
    header = tex.split(r"\toprule", 1)[1].split(r"\midrule", 1)[0].strip().rstrip("\\ ").split(" & ")
    epochs = [int(h.strip("{}").split()[-1]) for h in header[1:]]
    seen = 0
    for row in rows_of(tex):
        layer = row[0].replace(r"\_", "_")
        for epoch, cell in zip(epochs, row[1:], strict=True):
            assert float(cell) == pytest.approx(expected[(layer, epoch)], rel=6e-4)
            seen += 1
    assert seen == len(expected)


def test_generic_summary_numbers_and_escaping(export):
    out, _ = export
    tables = "\n".join(p.read_text() for p in (out / "tables").glob(f"mlp_{FAKE}_*.tex"))
    rows = {r[0]: r[1:] for t in tables.split(r"\end{tabular}") if r"\midrule" in t for r in rows_of(t)}
    assert [float(v) for v in rows["fc1"]] == pytest.approx([0.5, 0.625, 0.8125])
    assert [float(v) for v in rows["fc2"]] == pytest.approx([0.25, 0.75, 0.9375])
    assert float(rows["overall"][0]) == pytest.approx(0.71875, rel=6e-4)
    assert rows["k"] == ["6"]
    assert rows["note"] == [r"probe\_v1 \& 50\% $<$check$>$"]


def test_every_figure_is_exported_as_pdf_and_included(report_run, export):
    out, main = export
    text = main.read_text()
    pdfs = sorted(
        p.relative_to(report_run.model_dir / "figures") for p in (report_run.model_dir / "figures").rglob("*.pdf")
    )
    assert pdfs
    for rel in pdfs:
        dest = out / "figures" / "mlp" / rel
        assert dest.read_bytes() == (report_run.model_dir / "figures" / rel).read_bytes()
        assert f"{{figures/mlp/{rel.as_posix()}}}" in text
    for table in (out / "tables").glob("*.tex"):
        assert rf"\input{{tables/{table.stem}}}" in text
    assert r"\usepackage{booktabs}" in text
    # text is escaped (file names inside \includegraphics keep their underscores)
    captions = re.findall(r"\\(?:caption|section|subsection\*?)\{((?:[^{}]|\{[^{}]*\})*)\}", text)
    assert any("Fake probe" in c for c in captions)       # an analysis nobody registered, in words
    for arg in captions:
        assert not re.search(r"(?<!\\)[_%&#]", arg), arg


@pytest.mark.latex
@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex not installed (Debian: apt-get install -y texlive-latex-base"
                           " texlive-latex-recommended); .ci/run installs it")
def test_main_tex_compiles_with_pdflatex(export):
    out, main = export
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", main.name],
                          cwd=out, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:]
    pdf = out / "main.pdf"
    assert pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-"
    log = (out / "main.log").read_text(errors="replace")
    assert "LaTeX Error" not in log and "Missing character" not in log


def _floats(text: str) -> list[str]:
    return re.findall(r"\\begin\{(figure|table|subfigure)\}(.*?)\\end\{\1\}", text, flags=re.S)


def test_every_float_has_a_described_caption_and_a_label(report_run, export):
    out, main = export
    text = main.read_text()
    floats = re.findall(r"\\begin\{(figure|table)\}(.*?)\\end\{\1\}", text, flags=re.S)
    assert len(floats) > 10
    stems = {p.stem for p in (report_run.model_dir / "figures").rglob("*.pdf")}
    labels = []
    for _kind, body in floats:
        captions = re.findall(r"\\caption\{(.*?)\}\\label\{([^}]+)\}", body)
        subs = body.count(r"\begin{subfigure}")
        assert len(captions) == 1 + subs, body[:300]   # each panel and the float itself
        for caption, label in captions:
            labels.append(label)
            words = caption.replace(r"\_", "_")
            assert len(words.split()) >= 4, caption
            # not the file name, nor the old "model, analysis: file" caption
            assert not any(words.strip(". ") == stem or words.strip(". ").endswith(f": {stem}") for stem in stems), (
                caption
            )
    assert len(labels) == len(set(labels)), "labels are unique"
    # column headers are words, not key paths
    headers = [p.read_text().split(r"\toprule", 1)[1].split(r"\midrule", 1)[0] for p in (out / "tables").glob("*.tex")]
    assert headers and not [h for h in headers if r"$\cdot$" in h], "headers are words, not key paths"
    assert r"\usepackage{siunitx}" in text and "S[table-format=" in (out / "tables" / "accuracy_mlp.tex").read_text()


def test_only_exports_the_chosen_analyses(report_run, tmp_path):
    from neuralatlas.report import ReportError, export_latex

    main = export_latex(report_run.out, tmp_path / "only", only="naps,projection")
    text = main.read_text()
    assert r"\label{sec:naps}" in text and r"\label{sec:projection}" in text
    assert r"\label{sec:attribution}" not in text and "figures/mlp/attribution" not in text
    assert r"\label{tab:models}" in text                         # the run overview always comes
    with pytest.raises(ReportError, match="napz.*naps"):
        export_latex(report_run.out, tmp_path / "bad", only=["napz"])


def test_readable_columns():
    from neuralatlas.report.latex import readable_columns

    assert readable_columns(["layer", "layers · dead_fraction", "layers · neighborhood_hit"]) == \
        ["layer", "dead fraction", "neighbourhood hit"]
    assert readable_columns(["a · value", "b · value"]) == ["a: value", "b: value"]
    assert readable_columns(["layer", "relu_fc1", "x · unit_shape"], ["relu_fc1"]) == [
        "layer",
        "relu_fc1",
        "unit shape",
    ]
