"""Run mypy and compare its errors with a checked-in baseline that may only shrink.

The baseline (``tools/mypy-baseline.txt``) holds one normalised error per line: the file, the
message and the error code, without line or column numbers, so an edit elsewhere in a file
does not churn it. An error that occurs twice in a file is listed twice.

Exit status:

- 0: mypy's errors are exactly the baseline's.
- 1: an error not in the baseline appeared (fix it; the baseline does not grow by hand).
- 2: errors listed in the baseline are gone (delete those lines, or run ``--update``), so
  that the list only ever shrinks.
- 3: mypy could not run or its output could not be read (a configuration error, a crash).

Usage::

    python tools/check_mypy.py                      # run mypy (config in pyproject.toml)
    python tools/check_mypy.py --mypy-output out.txt  # check a saved mypy output instead
    python tools/check_mypy.py --update             # delete fixed errors from the baseline
    python tools/check_mypy.py --write              # regenerate the baseline (after a sweep)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tools" / "mypy-baseline.txt"
HEADER = (
    "# mypy errors tolerated today; this list may only shrink (tools/check_mypy.py).\n"
    "# One error per line: path: message  [code], without line numbers.\n"
)

# path:line[:col][:end_line:end_col]: error: message  [code]
_ERROR = re.compile(
    r"^(?P<path>[^:\n]+?):(?P<line>\d+)(?::\d+)*: error: (?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
# Messages that quote a line number of their own ("already defined on line 42").
_LINE_IN_MESSAGE = re.compile(r"\b(on line|at line|line) \d+\b")
_SUMMARY = re.compile(r"^(Found \d+ errors? in \d+ files?|Success: no issues found)")


class MypyOutputError(RuntimeError):
    """mypy's output held no error lines where its exit status said there were errors."""


def normalise(line: str) -> str | None:
    r"""The baseline form of one line of mypy output, or None when it is not an error.

    Parameters
    ----------
    line : str
        One line as mypy prints it, e.g. ``src/a.py:12:5: error: Bad thing  [misc]``.

    Returns
    -------
    str or None
        ``src/a.py: Bad thing  [misc]``: posix path, message, code; line and column numbers
        (including those quoted inside the message) removed. None for notes, summaries and
        blank lines.

    Examples
    --------
    >>> normalise('src\\pkg\\a.py:12:5: error: Name "x" already defined on line 3  [no-redef]')
    'src/pkg/a.py: Name "x" already defined on line N  [no-redef]'
    >>> normalise("src/a.py:3: note: See https://mypy.readthedocs.io") is None
    True
    """
    match = _ERROR.match(line.rstrip("\r\n"))
    if match is None:
        return None
    path = match["path"].replace("\\", "/")
    if path.startswith("./"):
        path = path[2:]
    message = _LINE_IN_MESSAGE.sub(lambda m: f"{m[1]} N", match["message"].strip())
    code = f"  [{match['code']}]" if match["code"] else ""
    return f"{path}: {message}{code}"


def parse_errors(output: str, returncode: int | None = None) -> Counter[str]:
    """The normalised errors of a mypy run, counted.

    Parameters
    ----------
    output : str
        mypy's stdout (and stderr).
    returncode : int, optional
        mypy's exit status, when known: 0 no errors, 1 errors, 2 a fatal error.

    Returns
    -------
    collections.Counter
        Normalised error -> number of occurrences.

    Raises
    ------
    MypyOutputError
        When mypy failed fatally (status 2 or more), or said it found errors (status 1 or a
        ``Found N errors`` line) and none could be read: comparing such output with the
        baseline would report a clean run that never happened.
    """
    errors = Counter(e for e in map(normalise, output.splitlines()) if e is not None)
    tail = output.strip().splitlines()[-1:] if output.strip() else []
    if returncode is not None and returncode >= 2:
        raise MypyOutputError(f"mypy failed (exit status {returncode}):\n{output.strip()}")
    if not errors and (returncode == 1 or (tail and tail[0].startswith("Found "))):
        raise MypyOutputError(f"mypy reported errors but none could be read:\n{output.strip()}")
    if returncode == 0 and errors:
        raise MypyOutputError("mypy exited 0 yet printed error lines; is this its output?")
    return errors


def read_baseline(path: Path) -> Counter[str]:
    """The baseline's errors, counted; lines starting with ``#`` and blank lines are skipped."""
    if not path.exists():
        return Counter()
    lines = (line.rstrip() for line in path.read_text(encoding="utf-8").splitlines())
    return Counter(line for line in lines if line and not line.startswith("#"))


def write_baseline(path: Path, errors: Counter[str]) -> None:
    """Write ``errors`` sorted, one line per occurrence, under the explanatory header."""
    body = "".join(f"{error}\n" for error in sorted(errors.elements()))
    path.write_text(HEADER + body, encoding="utf-8")


def compare(current: Counter[str], baseline: Counter[str]) -> tuple[Counter[str], Counter[str]]:
    """Errors new since the baseline, and baseline errors that are gone.

    Examples
    --------
    >>> new, fixed = compare(Counter({"a.py: x  [misc]": 2}), Counter({"a.py: x  [misc]": 1, "b.py: y": 1}))
    >>> dict(new), dict(fixed)
    ({'a.py: x  [misc]': 1}, {'b.py: y': 1})
    """
    return current - baseline, baseline - current


def run_mypy(args: Sequence[str] = ()) -> tuple[str, int]:
    """Run mypy from the repository root (its configuration is in pyproject.toml)."""
    proc = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout + proc.stderr, proc.returncode


def _located(output: str, wanted: Iterable[str]) -> list[str]:
    """The raw mypy lines (with line numbers) of the normalised errors in ``wanted``."""
    wanted = set(wanted)
    return [line for line in output.splitlines() if normalise(line) in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status described in the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--mypy-output", type=Path, help="read this saved mypy output instead of running mypy")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--update", action="store_true",
                       help="delete fixed errors from the baseline (never adds any)")
    group.add_argument("--write", action="store_true",
                       help="regenerate the baseline from this run (new errors included: use deliberately)")
    opts = parser.parse_args(argv)

    if opts.mypy_output is not None:
        output, returncode = opts.mypy_output.read_text(encoding="utf-8"), None
    else:
        output, returncode = run_mypy()
    try:
        current = parse_errors(output, returncode)
    except MypyOutputError as err:
        print(f"check_mypy: {err}", file=sys.stderr)
        return 3
    baseline = read_baseline(opts.baseline)

    if opts.write:
        write_baseline(opts.baseline, current)
        print(f"check_mypy: wrote {sum(current.values())} errors to {opts.baseline}")
        return 0

    new, fixed = compare(current, baseline)
    if opts.update and fixed:
        write_baseline(opts.baseline, baseline - fixed)
        print(f"check_mypy: deleted {sum(fixed.values())} fixed errors from {opts.baseline}")
        fixed = Counter()

    status = 0
    if new:
        print(f"check_mypy: {sum(new.values())} mypy errors not in the baseline; fix them:", file=sys.stderr)
        for line in _located(output, new):
            print(f"  {line}", file=sys.stderr)
        status = 1
    if fixed:
        print(f"check_mypy: {sum(fixed.values())} baseline errors are fixed; delete these lines from "
              f"{opts.baseline} (or run tools/check_mypy.py --update) so the baseline only shrinks:",
              file=sys.stderr)
        for error in sorted(fixed.elements()):
            print(f"  {error}", file=sys.stderr)
        status = status or 2
    if status == 0:
        print(f"check_mypy: ok ({sum(current.values())} errors, all in the baseline)")
    return status


if __name__ == "__main__":
    sys.exit(main())
