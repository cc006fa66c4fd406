"""tools/check_mypy.py on fake mypy outputs: the baseline may only shrink."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "check_mypy.py"


@pytest.fixture(scope="module")
def cm():
    spec = importlib.util.spec_from_file_location("check_mypy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_A = """\
src/neuralatlas/a.py:10: error: Incompatible types in assignment (expression has type "int")  [assignment]
src/neuralatlas/a.py:10: note: See https://mypy.readthedocs.io/en/stable/_refs.html
src/neuralatlas/a.py:40:12: error: Item "None" of "X | None" has no attribute "y"  [union-attr]
src/neuralatlas/a.py:55:12: error: Item "None" of "X | None" has no attribute "y"  [union-attr]
src/neuralatlas/b.py:7: error: Name "f" already defined on line 3  [no-redef]
Found 4 errors in 2 files (checked 3 source files)
"""


def _check(cm, tmp_path, output: str, baseline: str | None, *args: str) -> int:
    out = tmp_path / "mypy.txt"
    out.write_text(output)
    base = tmp_path / "baseline.txt"
    if baseline is not None:
        base.write_text(baseline)
    return cm.main(["--mypy-output", str(out), "--baseline", str(base), *args])


def test_normalise_drops_line_numbers_everywhere(cm):
    assert cm.normalise("src/x.py:3:7: error: Bad  [misc]") == "src/x.py: Bad  [misc]"
    assert cm.normalise("src/x.py:3:7:3:9: error: Bad  [misc]") == "src/x.py: Bad  [misc]"
    # the same error moved by an unrelated edit normalises to the same line
    assert cm.normalise("./src/x.py:99: error: Name \"f\" already defined on line 41  [no-redef]") == \
        cm.normalise("src/x.py:12: error: Name \"f\" already defined on line 3  [no-redef]")
    assert cm.normalise("src/x.py:3: note: hint") is None
    assert cm.normalise("Found 1 error in 1 file (checked 1 source file)") is None
    assert cm.normalise("src/x.py:3: error: No code here") == "src/x.py: No code here"


def test_parse_counts_repeated_errors(cm):
    errors = cm.parse_errors(RUN_A, 1)
    assert sum(errors.values()) == 4
    assert errors['src/neuralatlas/a.py: Item "None" of "X | None" has no attribute "y"  [union-attr]'] == 2


def test_write_then_check_is_clean_and_survives_moved_lines(cm, tmp_path, capsys):
    assert _check(cm, tmp_path, RUN_A, None, "--write") == 0
    written = (tmp_path / "baseline.txt").read_text()
    assert written.startswith("#") and ":10:" not in written and written.count("[union-attr]") == 2
    moved = RUN_A.replace(":10:", ":14:").replace(":40:12:", ":48:1:")
    assert _check(cm, tmp_path, moved, written) == 0
    assert "ok (4 errors" in capsys.readouterr().out


def test_new_error_fails_and_is_shown_with_its_line(cm, tmp_path, capsys):
    baseline = "".join(f"{e}\n" for e in sorted(cm.parse_errors(RUN_A, 1).elements()))
    extra = RUN_A.replace("Found 4", "src/neuralatlas/c.py:2: error: Missing return statement  [return]\nFound 5")
    assert _check(cm, tmp_path, extra, baseline) == 1
    err = capsys.readouterr().err
    assert "1 mypy errors not in the baseline" in err and "src/neuralatlas/c.py:2: error: Missing return" in err


def test_one_more_occurrence_of_a_known_error_is_new(cm, tmp_path):
    baseline = "".join(f"{e}\n" for e in sorted(cm.parse_errors(RUN_A, 1).elements()))
    third = RUN_A.replace("Found 4", 'src/neuralatlas/a.py:70:1: error: Item "None" of "X | None" has no '
                                     'attribute "y"  [union-attr]\nFound 5')
    assert _check(cm, tmp_path, third, baseline) == 1


def test_fixed_error_asks_to_delete_the_line_and_update_deletes_only(cm, tmp_path, capsys):
    baseline = "# header\n" + "".join(f"{e}\n" for e in sorted(cm.parse_errors(RUN_A, 1).elements()))
    fixed = "\n".join(line for line in RUN_A.splitlines() if "b.py" not in line) + "\n"
    assert _check(cm, tmp_path, fixed, baseline) == 2
    err = capsys.readouterr().err
    assert "baseline errors are fixed; delete these lines" in err and "b.py: Name" in err

    assert _check(cm, tmp_path, fixed, baseline, "--update") == 0
    after = cm.read_baseline(tmp_path / "baseline.txt")
    assert sum(after.values()) == 3 and not any("b.py" in e for e in after)
    # --update never adds: a new error still fails after it and stays out of the baseline
    worse = fixed.replace("Found", "src/neuralatlas/d.py:1: error: Oops  [misc]\nFound")
    assert _check(cm, tmp_path, worse, None, "--update") == 1
    assert "d.py" not in (tmp_path / "baseline.txt").read_text()


def test_unreadable_or_failed_mypy_is_not_a_pass(cm, tmp_path, monkeypatch):
    # says it found errors, but prints none we can read (e.g. a changed output format)
    assert _check(cm, tmp_path, "Found 3 errors in 1 file (checked 1 source file)\n", "") == 3
    with pytest.raises(cm.MypyOutputError, match="exit status 2"):
        cm.parse_errors("pyproject.toml: error: unknown option\n", 2)
    with pytest.raises(cm.MypyOutputError, match="none could be read"):
        cm.parse_errors("something else\n", 1)
    # a real run that crashes, through main()
    monkeypatch.setattr(cm, "run_mypy", lambda args=(): ("mypy: can't read file 'x'\n", 2))
    assert cm.main(["--baseline", str(tmp_path / "b.txt")]) == 3


def test_clean_run_with_empty_baseline(cm, tmp_path):
    assert cm.parse_errors("Success: no issues found in 3 source files\n", 0) == Counter()
    assert _check(cm, tmp_path, "Success: no issues found in 3 source files\n", "# nothing\n") == 0


def test_checked_in_baseline_is_normalised_and_sorted(cm):
    path = SCRIPT.parent / "mypy-baseline.txt"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == sorted(lines)
    for line in lines:
        assert line.startswith("src/neuralatlas/") and re.search(r"\.py:\d", line) is None
