"""The two-model report printed by headless Chromium, read back from the PDF; and an anchor
jump at 800 px that must land below the sticky header.

The PDF is read with the small reader in ``_na_pdf.py`` (text runs with their positions,
placed images, stroked rectangles), so the checks are about what is on paper: a section per
page starting with its heading, no heading left alone at the foot of a page, no page shrunk to
fit something too wide, wide figures and charts across the text width, no figure parted from
its caption, and no sticky header or controls printed over the content.
"""

from __future__ import annotations

import re
import unicodedata
from html import unescape

import _na_browser  # tests/report/ (on sys.path through its conftest)
import _na_pdf
import pytest

pytestmark = pytest.mark.browser

CM = 72 / 2.54
MARGIN_X, MARGIN_Y = 1.4 * CM, 1.5 * CM    # report.css: @page { margin: 1.5cm 1.4cm }
PT_PER_CSS_PX = 0.75           # printed at 100%: 96 CSS px per inch, 72 pt per inch
H2_PX = 1.35 * 16              # .na-section h2 { font-size: 1.35rem }
PLOT_STROKE = (0.776, 0.8, 0.831)   # .na-plotarea { stroke: #c6ccd4 }


def _squash(text: str) -> str:
    # Chromium places words (often glyphs) one by one, without space glyphs, and prints "fi"
    # as its ligature: compare unspaced and NFKC-normalised
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.fixture(scope="module")
def printed(report_run2, tmp_path_factory, artifacts_dir):
    pdf = tmp_path_factory.mktemp("print") / "report.pdf"
    done = _na_browser.run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                                     report_run2.report.resolve().as_uri()], pdf.parent / "profile")
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    (artifacts_dir / "report-two-models.pdf").write_bytes(pdf.read_bytes())
    html = report_run2.report.read_text()
    return _na_pdf.read_pages(pdf), html


def _headings(html: str, tag: str) -> list[str]:
    return [_squash(unescape(re.sub(r"<[^>]+>", "", t))) for t in re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", html, re.S)]


@_na_browser.needs_chromium
def test_each_section_starts_a_page_with_its_heading(printed):
    pages, html = printed
    sections = _headings(html, "h2")
    tops = [_squash(p.lines()[0][1]) if p.texts else "" for p in pages]
    assert len(sections) >= 8
    for title in sections[1:]:  # the first section follows the run's one-line header
        assert tops.count(title) == 1, (title, [t[:30] for t in tops])
    # in order, each on a later page than the one before
    starts = [tops.index(title) for title in sections[1:]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


@_na_browser.needs_chromium
def test_no_heading_is_left_at_the_foot_of_a_page_and_no_figure_loses_its_caption(printed):
    pages, html = printed
    headings = set(_headings(html, "h2")) | set(_headings(html, "h3"))
    captions = {_squash(unescape(c))[:40]
                for c in re.findall(r"<figcaption>(?:<span[^>]*>[^<]*</span> )?([^<]+)", html)}
    for number, page in enumerate(pages):
        lines = [_squash(t) for _, t in page.lines()]
        assert lines, f"page {number + 1} has no text: a figure printed apart from its caption"
        assert lines[-1] not in headings, f"page {number + 1} ends with the heading {lines[-1]!r}"
    # every figure's caption is printed (none lost off a page)
    text = "".join(_squash(t) for p in pages for _, t in p.lines())
    missing = [c for c in captions if c not in text]
    assert not missing, missing[:5]


@_na_browser.needs_chromium
def test_pages_print_at_full_size_with_wide_figures_and_charts_across_the_text_width(printed):
    pages, html = printed
    width = pages[0].width - 2 * MARGIN_X
    # not shrunk to fit: a section heading is printed at its CSS size (Chromium scales the
    # whole page down when anything is wider than the paper, as a wide table was)
    sizes = {round(run.size, 1) for p in pages for run in p.texts
             if _squash(p.lines()[0][1]) in _headings(html, "h2") and abs(run.y - p.lines()[0][0]) < 2}
    assert sizes and all(abs(s - H2_PX * PT_PER_CSS_PX) < 0.3 for s in sizes), sizes
    for page in pages:
        xs = [run.x for run in page.texts]
        assert min(xs) >= MARGIN_X - 1 and max(xs) <= page.width - MARGIN_X + 1
    # figures drawn for the figure column span the text width, unless that would make them
    # taller than 80% of the page (then their caption would go to the next page)
    height = pages[0].height - 2 * MARGIN_Y
    wide = [(int(w), int(h)) for w, h in
            re.findall(r'<img [^>]*width="(\d+)" height="(\d+)"[^>]*data-print="wide"', html)]
    assert len(wide) >= 4
    placed = [im for p in pages for im in p.images]
    for w, h in wide:
        expected = min(width, 0.8 * height * w / h)
        match = [im for im in placed if abs(im.width - expected) < 1.5 and abs(im.height - expected * h / w) < 3]
        assert match, (w, h, round(expected), sorted({(round(im.width), round(im.height)) for im in placed}))
        placed.remove(match[0])
    # the report's own charts (training curves, models side by side): plot areas ≥ 75% of the width
    plots = [r for p in pages for r in p.rects if r.paint in ("S", "B") and r.stroke == PLOT_STROKE
             and r.width > 50]
    assert len(plots) >= 4
    assert all(r.width >= 0.75 * width for r in plots), sorted(round(r.width / width, 2) for r in plots)


@_na_browser.needs_chromium
def test_no_header_or_control_is_printed(printed):
    pages, html = printed
    text = ["".join(_squash(t) for _, t in p.lines()) for p in pages]
    title = _squash(re.search(r'<div class="na-brand"><b>neuralatlas</b> · ([^<]+)</div>', html).group(1))
    assert not any(f"neuralatlas·{title}" in t for t in text)      # the sticky header
    assert not any("allmodels" in t for t in text)                  # the layer picker
    assert not any("dragtopan" in t for t in text)                  # the pan/zoom bar


@_na_browser.needs_chromium
def test_anchor_jump_at_800px_lands_below_the_sticky_header(report_run2, tmp_path, artifacts_dir):
    """The self-test clicks the header's link to the last section (a real fragment jump) and
    records whether its heading is below the sticky header; a screenshot shows it (through an
    iframe: headless Chromium paints a scrolled top-level page blank)."""
    url = report_run2.report.resolve().as_uri() + "#na-selftest"
    done = _na_browser.run_chromium(["--hide-scrollbars", "--window-size=800,1000", "--dump-dom", url],
                                    tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", done.stdout).group(0)
    assert 'data-na-ready="1"' in html_tag, html_tag
    assert 'data-na-anchor="clear"' in html_tag, html_tag
    gap = int(re.search(r'data-na-anchor-gap="(-?\d+)"', html_tag).group(1))
    assert 0 <= gap < 80, gap   # just below the header: not hidden, not far down
    frame = tmp_path / "frame.html"
    frame.write_text(f'<!DOCTYPE html><body style="margin:0"><iframe src="{url}" '
                     'style="border:0;width:800px;height:1000px"></iframe></body>')
    shot = artifacts_dir / "report-800px-anchor.png"
    _na_browser.run_chromium(["--hide-scrollbars", "--window-size=800,1000", f"--screenshot={shot}",
                              frame.as_uri()], tmp_path / "profile2")
