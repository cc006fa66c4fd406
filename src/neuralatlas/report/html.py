"""``write_report``: one self-contained HTML page for a run folder.

Everything the page needs is inside the file: the report's own script (which draws the
plots as SVG itself: no plotly.js, whose 4.8 MB the page would carry for a few scatter
plots) and styles, every figure as a data URI (or, with ``images="files"``, as side files
beside the page) and every plot as inline JSON. It opens from disk, offline, with no server.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from neuralatlas.report.collect import ReportError, RunInfo, read_run
from neuralatlas.report.components import _SINK, ImageSink, esc, json_script
from neuralatlas.report.sections import SectionContext, render_run_summary, section_for
from neuralatlas.report.thumbnails import SampleImages

# imported for its side effect: registers the interactive projection section
from neuralatlas.report import projection as _projection  # noqa: E402,F401  isort: skip


def write_report(out_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None, *,
                 data: Any = None, title: str | None = None, images: str = "inline") -> Path:
    """Write the HTML report of a run folder.

    Parameters
    ----------
    out_dir : path
        A run folder: a pipeline run (``config.yaml`` and one folder per model) or one
        model's run folder (``acts.zarr``, ``metrics.json``, ``results/`` inside).
    path : path, optional
        Where to write; default ``out_dir/report.html``.
    data : ArrayDataset or (train, test), optional
        The data set the samples come from, for hover thumbnails; default: the one the
        run's ``config.yaml`` names.
    title : str, optional
        Page title; default: the run's name.
    images : {"inline", "files"}
        ``"inline"`` (default): every figure inside the page as a data URI, one file to
        send. ``"files"``: figures written beside the page in ``<page name>_files/`` and
        referenced from it: a light page that loads its images lazily (keep the folder
        with the page).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ReportError
        When ``out_dir`` is not a run folder.

    Example
    -------
    >>> from neuralatlas.report import write_report
    >>> write_report("runs/demo")                               # doctest: +SKIP
    PosixPath('runs/demo/report.html')
    """
    if images not in ("inline", "files"):
        raise ReportError(f"images={images!r} is not known; choose 'inline' (one self-contained file)"
                          " or 'files' (figures beside the page).")
    run = read_run(out_dir)
    target = Path(path) if path is not None else run.dir / "report.html"
    sink = ImageSink()
    if images == "files":
        folder = target.parent / f"{target.stem}_files"
        if folder.is_dir():  # images of an earlier report: named by content, stale ones go
            for old in folder.iterdir():
                if old.is_file() and old.suffix in (".png", ".svg"):
                    old.unlink()
        sink = ImageSink(folder, prefix=f"{target.stem}_files")
    _SINK.append(sink)
    try:
        page = render_report(run, data=data, title=title)
    finally:
        _SINK.pop()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)  # a reader never sees half a report
    return target


def render_report(run: RunInfo, *, data: Any = None, title: str | None = None) -> str:
    """The report of ``run`` as one HTML string (what :func:`write_report` writes)."""
    images = SampleImages(run, data)
    notes: list[str] = []
    sections = [{"id": "run", "title": "Run", "html": render_run_summary(run), "error": None}]
    sections += _overview_sections(run, images)
    names = run.analysis_names()
    ordered = sorted(names, key=lambda n: (section_for(n).order, names.index(n)))
    for name in ordered:
        section = section_for(name)
        ctx = SectionContext(name, section.title, run, run.outputs(name), images, notes)
        try:
            body, error = section.render(ctx), None
        except Exception as err:  # noqa: BLE001 - one broken section must not cost the whole report
            body, error = "", f"{type(err).__name__}: {err}"
            warnings.warn(f"report section {name!r} failed: {error}", RuntimeWarning, stacklevel=2)
        sections.append({"id": f"sec-{name}", "title": section.title, "html": body, "error": error,
                         "analysis": name})
    picker = {m.name: m.layers for m in run.models}
    env = _environment()
    template = env.get_template("report.html.j2")
    return template.render(
        title=title or run.name,
        run=run,
        sections=sections,
        notes=list(dict.fromkeys(notes)),
        picker=json_script(picker, id="na-picker-data"),
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=_version(),
        css=_static("report.css"),
        script=_static("report.js"),
        esc=esc,
    )


def _overview_sections(run: RunInfo, images: SampleImages) -> list[dict[str, Any]]:
    """Findings in words, per-class results and (for several models) the models side by side."""
    from neuralatlas.report.findings import render_comparison, render_findings, render_per_class

    out = []
    for sid, title, fn in (("findings", "Findings", lambda: render_findings(run)),
                           ("classes", "Per-class results", lambda: render_per_class(run, images)),
                           ("compare", "Models side by side", lambda: render_comparison(run))):
        try:
            body, error = fn(), None
        except Exception as err:  # noqa: BLE001 - one broken section must not cost the whole report
            body, error = "", f"{type(err).__name__}: {err}"
            warnings.warn(f"report section {sid!r} failed: {error}", RuntimeWarning, stacklevel=3)
        if body or error:
            out.append({"id": sid, "title": title, "html": body, "error": error})
    return out


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("neuralatlas.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True,
    )


def _static(name: str) -> Any:
    from markupsafe import Markup

    text = (resources.files("neuralatlas.report") / "static" / name).read_text(encoding="utf-8")
    return Markup(_safe_in_script(text) if name.endswith(".js") else text)


def _safe_in_script(js: str) -> str:
    # "</script" inside a script element would end it early; "<\/" means the same in JS strings.
    return js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _version() -> str:
    from neuralatlas import __version__

    return __version__
