"""The HTML report: one self-contained file, a section per analysis, numbers as in the JSON."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

FAKE = "fake_probe"


class _Refs(HTMLParser):
    """Every src/href/srcset value of every tag, and the tags seen (script contents are skipped)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        self.tags.append((tag, d))
        for key in ("src", "href", "srcset", "data", "poster", "action"):
            if d.get(key):
                self.refs.append((tag, key, d[key]))


def _parse(path: Path) -> tuple[str, _Refs]:
    text = path.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(text)
    return text, parser


def _json_blocks(text: str, cls: str) -> list[dict]:
    pattern = rf'<script type="application/json" class="{cls}">(.*?)</script>'
    return [json.loads(m) for m in re.findall(pattern, text, flags=re.S)]


# ---------------------------------------------------------------------------- one file
def test_report_is_one_self_contained_file(report_run):
    text, parsed = _parse(report_run.report)
    assert report_run.report == report_run.out / "report.html"
    external = [(tag, key, value[:60]) for tag, key, value in parsed.refs
                if not (value.startswith("data:") or value.startswith("#"))]
    assert external == [], f"references outside the file: {external}"
    assert not [t for t, a in parsed.tags if t == "link" or (t == "script" and a.get("src"))]
    # the page draws its plots itself: no plotly.js (4.8 MB) inside
    assert not re.search(r"\* plotly\.js v\d", text)


def test_report_is_light(report_run):
    # Its speed is printed, not asserted: a wall-clock bound fails on a loaded machine and
    # proves nothing on a quiet one (benchmarks/report.py measures it side by side).
    size = report_run.report.stat().st_size
    print(f"report written in {report_run.seconds:.2f} s; {size / 2**20:.2f} MiB")
    # every analysis' figures of a small run, encoded for the size they are shown at: under
    # the 6 MB (decimal, as the issue counts)
    assert size <= 6_000_000


def test_a_section_per_analysis_and_the_run_summary(report_run):
    from neuralatlas.report import read_run

    text, _ = _parse(report_run.report)
    run = read_run(report_run.out)
    names = run.analysis_names()
    assert FAKE in names and "projection" in names
    for name in names:
        assert f'id="sec-{name}"' in text, name
    assert 'id="run"' in text
    assert "na-training" in text                     # the training-curve plot
    assert 'id="na-pick-model"' in text and 'id="na-pick-layer"' in text
    assert 'class="na-error"' not in text.replace('id="na-errors" class="na-error"', "")


def test_training_curve_holds_metrics_json(report_run):
    text, _ = _parse(report_run.report)
    metrics = json.loads((report_run.model_dir / "metrics.json").read_text())["epochs"]
    specs = _json_blocks(text, "na-plot-spec")
    curve = next(s for s in specs if "training" in s["layout"]["title"]["text"])
    traces = {t["name"]: t for t in curve["data"]}
    assert traces["test accuracy"]["y"] == [e["test_accuracy"] for e in metrics]
    assert traces["train accuracy"]["x"] == [e["epoch"] for e in metrics]


def test_generic_section_shows_summary_numbers_and_figures(report_run):
    text, _ = _parse(report_run.report)
    section = text.split(f'id="sec-{FAKE}"')[1].split("</section>")[0]
    # the per-layer numbers become a layer × epoch table, rows tagged with their layer
    for layer, values in {"fc1": [0.5, 0.625, 0.8125], "fc2": [0.25, 0.75, 0.9375]}.items():
        row = re.search(rf'<tr data-layer="{layer}">(.*?)</tr>', section).group(1)
        cells = [float(c) for c in re.findall(r'<td class="num">([^<]+)</td>', row)]
        assert cells == pytest.approx(values, rel=5e-4)
    assert "0.7188" in section                                   # overall, 4 significant digits
    assert "probe_v1 &amp; 50% &lt;check&gt;" in section          # text is escaped
    # the PNG shown at its drawn size (inches x 96 px) with its layer, encoded at IMAGE_SCALE x that,
    # the SVG as a vector image
    png = re.search(r'<figure class="na-fig" data-model="mlp" data-layer="fc1"><img src="data:image/png;base64,'
                    r'([^"]+)" width="(\d+)" height="(\d+)"', section)
    assert png is not None
    from PIL import Image

    with Image.open(report_run.model_dir / "figures" / FAKE / "probe_fc1.png") as original:
        drawn_in = original.width / original.info["dpi"][0]
    w, h = Image.open(io.BytesIO(base64.b64decode(png.group(1)))).size
    shown = int(png.group(2))
    assert shown == math.ceil(drawn_in * 96 - 1e-6)
    from neuralatlas.report.components import IMAGE_SCALE

    assert w == min(original.width, round(IMAGE_SCALE * shown))
    assert int(png.group(3)) == pytest.approx(shown * h / w, abs=1)
    assert "data:image/svg+xml;base64," in section


def test_projection_payload_matches_the_saved_projection(report_run):
    from neuralatlas.analysis.projection import Projection

    text, _ = _parse(report_run.report)
    [payload] = _json_blocks(text, "na-proj-data")
    proj = Projection.load(report_run.model_dir / "results" / "projection")
    assert payload["model"] == "mlp"
    assert payload["layers"] == proj.layers
    assert payload["labels"] == proj.labels.tolist()
    assert payload["index"] == proj.index.tolist()
    from neuralatlas.report.projection import decode_xy

    for (layer, epoch), xy, quality in zip(payload["keys"], payload["xy"], payload["quality"], strict=True):
        coords = proj.coordinates[(layer, epoch)]
        extent = coords.max(0) - coords.min(0)
        # 16-bit codes on the plot's own box: off by at most half of 1/65534 of its extent
        assert (np.abs(decode_xy(xy) - coords) <= extent / 65534 / 2 * (1 + 1e-9) + 1e-12).all(), (layer, epoch)
        assert quality["neighborhood_hit"] == pytest.approx(proj.quality[(layer, epoch)]["neighborhood_hit"], abs=1e-4)
    for epoch, pred in proj.predictions.items():
        assert payload["pred"]["final" if epoch is None else str(epoch)] == pred.tolist()


def test_projection_coordinates_round_trip_with_their_missing_values():
    from neuralatlas.report.projection import XY_MISSING, decode_xy, encode_xy

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(300, 2)) * [40.0, 0.002] + [1e3, -5.0]   # axes of very different scales
    xy[7] = [np.nan, np.nan]
    xy[9, 1] = np.nan
    entry = encode_xy(xy)
    back = decode_xy(entry)
    assert np.isnan(back[7]).all() and np.isnan(back[9, 1]) and not np.isnan(back[9, 0])
    ok = np.isfinite(xy)
    half_step = np.asarray(entry["step"]) / 2
    assert (np.abs(back - xy)[ok] <= np.broadcast_to(half_step * (1 + 1e-9), xy.shape)[ok]).all()
    # the box's corners are codes 0 and XY_MISSING - 1, exactly
    assert np.nanmin(back, 0) == pytest.approx(np.nanmin(xy, 0))
    assert np.nanmax(back, 0) == pytest.approx(np.nanmax(xy, 0))
    codes = np.frombuffer(base64.b64decode(entry["q"]), "<u2")
    assert codes.max() == XY_MISSING and np.sort(np.unique(codes))[-2] == XY_MISSING - 1
    # a constant axis (every point on one line) decodes to that line
    flat = decode_xy(encode_xy(np.c_[np.arange(5.0), np.full(5, 3.5)]))
    assert (flat[:, 1] == 3.5).all()
    np.testing.assert_allclose(flat[:, 0], np.arange(5.0), rtol=0, atol=4 / 65534 / 2 * (1 + 1e-9))
    # two bytes a coordinate, as base64: 8 characters for every 3 points
    assert len(entry["q"]) == 4 * math.ceil(300 * 2 * 2 / 3)


def test_hover_thumbnails_are_the_samples_images(report_run):
    """Thumbnail i of the sprite is the digit whose data-set index is payload["index"][i]."""
    from PIL import Image

    from neuralatlas.data import digits

    text, _ = _parse(report_run.report)
    [payload] = _json_blocks(text, "na-proj-data")
    s = payload["sprite"]
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(s["uri"].split(",", 1)[1]))), np.float64) / 255
    _, test = digits()
    images = {int(i): img for i, img in zip(test.index, test.inputs, strict=True)}
    for i in (0, 7, len(payload["index"]) - 1):
        r, c = divmod(i, s["cols"])
        thumb = sheet[r * s["h"]:(r + 1) * s["h"], c * s["w"]:(c + 1) * s["w"]]
        np.testing.assert_allclose(thumb, images[payload["index"][i]][0], atol=1 / 255 + 1e-9)


def test_report_of_one_model_folder_and_errors(report_run, tmp_path):
    from neuralatlas.report import ReportError, write_report

    path = write_report(report_run.model_dir, tmp_path / "one.html")
    text = path.read_text()
    assert 'id="sec-projection"' in text and 'id="run"' in text
    with pytest.raises(ReportError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(ReportError, match="does not exist"):
        write_report(tmp_path / "nowhere")


@pytest.mark.slow  # writes the report three times
def test_registered_section_plugs_in_and_a_broken_one_is_contained(report_run, tmp_path):
    from neuralatlas.report import SECTIONS, analysis_block, register_section, write_report
    from neuralatlas.report.captions import REGISTERED_TITLES

    @register_section(FAKE, title="Fancy probes", order=1)
    def fancy(ctx):
        return '<p class="fancy">' + "".join(analysis_block(ctx, out) for out in ctx.outputs) + "</p>"

    try:
        text = write_report(report_run.out, tmp_path / "fancy.html").read_text()
        section = text.split(f'id="sec-{FAKE}"')[1].split("</section>")[0]
        assert "Fancy probes" in section and 'class="fancy"' in section
        # order 1 puts it before the architecture and projections
        assert text.index(f'id="sec-{FAKE}"') < text.index('id="sec-projection"')

        @register_section(FAKE)
        def broken(ctx):
            raise RuntimeError("probe exploded")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = write_report(report_run.out, tmp_path / "broken.html").read_text()
        assert any("probe exploded" in str(w.message) for w in caught)
        assert "could not be drawn: RuntimeError: probe exploded" in text
        assert 'id="sec-projection"' in text        # the rest of the report is still there
    finally:
        # both registries: a title left behind renamed the section in every later report and LaTeX
        # export of the process (seen under pytest-xdist, where test_latex ran after this test)
        SECTIONS.pop(FAKE, None)
        REGISTERED_TITLES.pop(FAKE, None)


# ---------------------------------------------------------------------------- building blocks
def test_layer_of_takes_whole_names_and_the_longest():
    from neuralatlas.report.collect import layer_of

    layers = ["fc1", "fc10", "block1.conv1", "relu1"]
    assert layer_of("naps_fc1", layers) == "fc1"
    assert layer_of("naps_fc10_epoch3", layers) == "fc10"
    assert layer_of("topomap_block1_conv1", layers) == "block1.conv1"
    assert layer_of("overview", layers) is None
    assert layer_of("fc1x", layers) is None


def test_summary_tables_pivot_layers_and_records():
    from neuralatlas.report.tables import summary_table

    summary = {
        "method": "tsne",
        "layers": ["a", "b"],
        "scores": [{"layer": layer, "epoch": e, "hit": 0.1 * i + e} for i, layer in enumerate("ab") for e in (0, 1)],
        "per_layer": {"b": {"x": 1.5}, "a": {"x": 2.5}},
    }
    tables = summary_table(summary, ["a", "b"])
    grid = next(t for t in tables if t.columns == ["layer", "epoch 0", "epoch 1"])
    assert grid.rows == [["a", 0.0, 1.0], ["b", 0.1, 1.1]] and grid.row_layers == ["a", "b"]
    pivot = next(t for t in tables if t.columns == ["layer", "per_layer · x"])
    assert pivot.rows == [["a", 2.5], ["b", 1.5]]                # model order, not file order
    plain = next(t for t in tables if t.columns == ["key", "value"])
    assert ["layers", "a, b"] in plain.rows and ["method", "tsne"] in plain.rows


def test_json_script_cannot_close_its_element():
    from neuralatlas.report.components import json_script

    html = json_script({"x": "</script><script>alert(1)</script>", "nan": float("nan")})
    assert html.count("</script>") == 1
    assert json.loads(html.split(">", 1)[1].rsplit("<", 1)[0]) == {
        "x": "</script><script>alert(1)</script>",
        "nan": None,
    }


def test_sprite_downsamples_large_images_by_box_mean():
    from PIL import Image

    from neuralatlas.report.thumbnails import sprite

    rng = np.random.default_rng(0)
    images = rng.random((5, 3, 64, 64)).astype(np.float32)
    s = sprite(images, max_side=32)
    assert (s["w"], s["h"], s["cols"]) == (32, 32, 3)
    sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(s["uri"].split(",", 1)[1]))), np.float64) / 255
    expected = images[4].reshape(3, 32, 2, 32, 2).mean(axis=(2, 4)).transpose(1, 2, 0)
    np.testing.assert_allclose(sheet[32:64, 32:64], expected, atol=1 / 255 + 1e-6)


# ---------------------------------------------------------------------------- readable figures
def _shown_figures(text: str) -> list[dict[str, float]]:
    out = []
    for tag in re.findall(r'<figure class="na-fig"[^>]*><img [^>]*>', text):
        if "data-font-pt" not in tag:
            continue
        def get(key: str, tag: str = tag) -> float:
            return float(re.search(rf'{key}="([\d.]+)"', tag).group(1))

        out.append({"width_px": get("width"), "width_in": get("data-width-in"), "font_pt": get("data-font-pt"),
                    "title": re.search(r'alt="([^"]*)"', tag).group(1)})
    return out


def test_every_figure_text_is_at_least_8pt_where_it_is_shown(report_run):
    """Font size at display size: the smallest text (pt, recorded at save time) times the ratio
    of the width the page shows the figure at (CSS px / 96 = inches) to its drawn width."""
    text, _ = _parse(report_run.report)
    shown = _shown_figures(text)
    saved = [p for p in (report_run.model_dir / "figures").rglob("*.png")]
    # every figure of the run's analyses carries what the check needs (the page shows each once)
    assert len(shown) >= 0.9 * len({p.with_suffix("") for p in saved}), (len(shown), len(saved))
    small = [(f["title"][:60], round(f["font_pt"] * (f["width_px"] / 96) / f["width_in"], 2)) for f in shown
             if f["font_pt"] * (f["width_px"] / 96) / f["width_in"] < 7.95]
    assert small == [], f"figure text below 8 pt as shown: {small}"


def test_images_as_side_files(report_run, tmp_path):
    from neuralatlas.report import write_report

    page = write_report(report_run.out, tmp_path / "page.html", images="files")
    text = page.read_text()
    files = sorted((tmp_path / "page_files").iterdir())
    assert files and not re.search(r'<figure class="na-fig"[^>]*><img src="data:', text)
    for f in files:
        assert f'src="page_files/{f.name}"' in text
    assert page.stat().st_size < report_run.report.stat().st_size / 2
    with pytest.raises(Exception, match="inline"):
        write_report(report_run.out, tmp_path / "x.html", images="bogus")


# ---------------------------------------------------------------------------- two models
def test_two_model_report_has_findings_per_class_results_and_comparison(report_run2):
    text, _ = _parse(report_run2.report)
    assert report_run2.report.stat().st_size < 6 * 2**20
    for sid in ("findings", "classes", "compare"):
        assert f'id="{sid}"' in text, sid
    findings = text.split('id="findings"')[1].split("</section>")[0]
    assert findings.count('class="na-findings"') == 2
    assert "separate first at" in findings and "Sanity check" in findings
    assert text.count('class="na-table na-confusion"') == 2
    # the gallery shows misclassified samples of each model, linked by data-set index
    from neuralatlas.store import ActivationStore

    samples = ActivationStore.open(report_run2.model_dir / "acts.zarr").samples
    wrong = samples[samples["label"] != samples["prediction"]]["index"].tolist()
    items = re.findall(r'class="na-miss-item" data-model="mlp" data-index="(\d+)"', text)
    assert [int(i) for i in items] == wrong[:len(items)] and items
    compare = text.split('id="compare"')[1].split("</section>")[0]
    specs = _json_blocks(compare, "na-plot-spec")
    assert specs and all({t["name"] for t in s["data"]} == {"mlp", "mlp_b"} for s in specs)


def test_attribution_section_says_where_the_methods_differ_from_captum(report_run):
    import html

    from neuralatlas.attribution.methods import CAPTUM_DIFFERENCES

    summary = json.loads((report_run.model_dir / "results" / "attribution" / "summary.json").read_text())
    methods = list(summary["methods"])
    expected = {m: CAPTUM_DIFFERENCES[m] for m in methods if m in CAPTUM_DIFFERENCES}
    assert "integrated_gradients" in expected and "saliency" in expected
    assert summary["captum_differences"] == expected
    text, _ = _parse(report_run.report)
    section = text.split('id="sec-attribution"')[1].split("</section>")[0]
    assert "differ from captum on purpose" in section
    for sentence in expected.values():
        assert html.escape(sentence, quote=True) in section
    # shown once, as the note: not also as a row of the summary table
    assert section.count(html.escape(expected["saliency"], quote=True)) == 1
    # the tables of the LaTeX export are the same summary tables: no prose rows there either
    from neuralatlas.report.tables import summary_table

    cells = [str(c) for t in summary_table(summary) for row in t.rows for c in row]
    assert cells and not any(c.startswith("captum_differences") or c in expected.values() for c in cells), cells


def test_figures_and_table_rows_follow_the_layers_depth_not_the_alphabet(report_run):
    from neuralatlas.report import read_run

    text, _ = _parse(report_run.report)
    layers = read_run(report_run.out).models[0].layers
    assert layers != sorted(layers)          # mlp: flatten, fc1, relu1, ... (alphabetical differs)
    for name in ("naps", "projection"):
        section = text.split(f'id="sec-{name}"')[1].split("</section>")[0]
        for pattern in (r'<figure class="na-fig" data-model="mlp" data-layer="([^"]+)"', r'<tr data-layer="([^"]+)"'):
            seen = list(dict.fromkeys(re.findall(pattern, section)))
            assert len(seen) >= 2, (name, pattern)
            assert seen == [layer for layer in layers if layer in seen], (name, seen)


def test_the_pipeline_projects_every_captured_epoch(report_run):
    from neuralatlas.analysis.projection import Projection
    from neuralatlas.store import ActivationStore

    store = ActivationStore.open(report_run.model_dir / "acts.zarr")
    proj = Projection.load(report_run.model_dir / "results" / "projection")
    assert len(store.epochs) >= 3 and proj.epochs == list(store.epochs)
    assert {(layer, e) for layer in proj.layers for e in store.epochs} <= set(proj.coordinates)


def test_metrics_of_one_epoch_only_are_one_table_not_grids_of_dashes():
    from neuralatlas.report.tables import records_tables

    def rec(layer, e):
        seeds = {"nh_min": 0.4, "nh_max": 0.6, "nh_seeds": 3} if e == 2 else {"nh_min": None, "nh_max": None,
                                                                               "nh_seeds": None}
        return {"layer": layer, "epoch": e, "neighborhood_hit": 0.5 + e / 10, **seeds}

    tables = records_tables([rec(layer, e) for layer in ("b", "a") for e in (0, 1, 2)], ["a", "b"], "scores")
    grid, once = tables
    assert grid.columns == ["layer", "epoch 0", "epoch 1", "epoch 2"] and grid.rows[0] == ["a", 0.5, 0.6, 0.7]
    assert once.columns == ["layer", "nh_min", "nh_max", "nh_seeds"] and once.title.endswith("(epoch 2 only)")
    assert once.rows == [["a", 0.4, 0.6, 3], ["b", 0.4, 0.6, 3]] and once.row_layers == ["a", "b"]
