"""The report in a real browser: headless Chromium opens the file offline, with no errors.

Chromium runs with name resolution disabled, so a page that tried to load anything from the
network would log a failed request. The page's script records its own state on ``<html>``
(``data-na-ready``, ``data-na-errors``, ``data-na-plots``) and, with ``#na-selftest`` in the
URL, hovers a projection point with a real mouse event and moves the layer slider.
"""

from __future__ import annotations

import re
from pathlib import Path

import _na_browser  # tests/report/ (on sys.path through its conftest)
import pytest

pytestmark = pytest.mark.browser


CHROMIUM, needs_chromium, _run_chromium = _na_browser.CHROMIUM, _na_browser.needs_chromium, _na_browser.run_chromium


def _payloads(path: Path) -> list[dict]:
    import json

    text = path.read_text()
    return [json.loads(m) for m in re.findall(r'<script type="application/json" class="na-proj-data">(.*?)</script>',
                                              text, flags=re.S)]


@needs_chromium
def test_report_opens_offline_without_errors(report_run, tmp_path, artifacts_dir):
    url = report_run.report.resolve().as_uri() + "#na-selftest"
    done = _run_chromium(["--dump-dom", url], tmp_path / "profile")
    dom = done.stdout
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    (artifacts_dir / "report-console.log").write_text("\n".join(console) + "\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console == [], f"the page wrote to the console: {console}"

    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-na-ready="1"' in html_tag, f"the page's script did not finish: {html_tag}"
    assert "data-na-errors" not in html_tag, re.search(r'id="na-errors"[^>]*>([^<]*)', dom).group(1)

    # every section, and every plot drawn by the page's script (training curve + projection)
    from neuralatlas.report import read_run

    run = read_run(report_run.out)
    for name in ["run", *(f"sec-{a}" for a in run.analysis_names())]:
        assert f'id="{name}"' in dom, name
    n_plots = len(run.models) + len(run.outputs("projection"))
    assert f'data-na-plots="{n_plots}"' in html_tag
    assert dom.count('class="na-chart-svg"') == n_plots                  # each drawn as SVG
    [payload_n] = [len(p["labels"]) for p in _payloads(report_run.report)]
    assert f'data-na-proj-points="{payload_n}"' in html_tag              # every projected sample

    # hover shows the sample's image; the layer slider redraws the projection
    assert 'data-na-hover="image"' in html_tag
    assert 'data-na-slider="moved"' in html_tag
    # the layer picker moves the projection to its layer and hides what is about other layers
    assert 'data-na-picker="filtered"' in html_tag


@needs_chromium
def test_report_screenshot(report_run, tmp_path, artifacts_dir):
    shot = artifacts_dir / "report.png"
    shot.unlink(missing_ok=True)
    url = report_run.report.resolve().as_uri()
    done = _run_chromium(["--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", url],
                         tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        # not a blank page: the rendered report has many colours
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


@needs_chromium
def test_two_model_report_in_the_browser(report_run2, tmp_path, artifacts_dir):
    """Two models with the same layer names: the picker keeps them apart, the findings, the
    confusion matrices and the misclassified gallery are there, a gallery click rings the
    sample in its projection, the page is under 6 MB and no figure text is below 8 pt as shown."""
    url = report_run2.report.resolve().as_uri() + "#na-selftest"
    done = _run_chromium(["--window-size=1280,2400", "--dump-dom", url], tmp_path / "profile")
    dom = done.stdout
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert done.returncode == 0, done.stderr[-2000:]
    assert console == [], f"the page wrote to the console: {console}"
    html_tag = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-na-ready="1"' in html_tag and "data-na-errors" not in html_tag, html_tag
    assert 'data-na-picker="filtered"' in html_tag
    assert 'data-na-hover="image"' in html_tag and 'data-na-slider="moved"' in html_tag
    assert 'data-na-gallery="linked"' in html_tag
    assert dom.count('class="na-findings"') == 2 and "separate first at" in dom
    assert dom.count("na-table na-confusion") == 2
    assert dom.count('class="na-miss-item"') >= 2
    assert report_run2.report.stat().st_size <= 6_000_000  # 6 MB, as the issue counts
    smallest = re.search(r'data-na-min-font-pt="([^"]+)"', html_tag).group(1)
    assert smallest != "none" and float(smallest) >= 7.95, f"smallest figure text as shown: {smallest} pt"
    shot = artifacts_dir / "report-two-models.png"
    _run_chromium(["--hide-scrollbars", "--window-size=1200,3000", f"--screenshot={shot}",
                   report_run2.report.resolve().as_uri()], tmp_path / "profile2")
