"""Every JSON file a full run writes parses with a strict parser (no NaN, Infinity or -Infinity).

Python's ``json`` reads and writes those constants by default, browsers and most other parsers
refuse them: the demo once wrote ``"trustworthiness": NaN`` into ``results/topomap/som/summary.json``.
The run is the report tests' one (every analysis the pipeline knows, on a tiny MLP).
"""

from __future__ import annotations

import json

import pytest


def _refuse(constant: str) -> None:
    raise ValueError(f"non-strict JSON constant {constant}")


@pytest.mark.slow
def test_every_json_file_of_a_run_parses_strictly(report_run):
    files = sorted(report_run.out.rglob("*.json"))  # the stores' zarr.json files too
    assert len(files) > 10, f"expected the results of every analysis, found {len(files)} JSON files"
    bad = []
    for path in files:
        try:
            json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse)
        except ValueError as err:
            bad.append(f"{path.relative_to(report_run.out)}: {err}")
    assert not bad, "JSON files that a strict parser refuses:\n" + "\n".join(bad)
    summaries = [p for p in files if p.name == "summary.json"]
    assert any("topomap" in p.parts for p in summaries)  # the file that once held NaN is among them
