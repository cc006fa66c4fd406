"""Run every benchmark in this folder, one after the other, and print what each measured.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only naps,scale]

Each benchmark is its own script (run it alone for its options); this runner runs them in a
fixed order in fresh processes, so that one's memory and threads do not colour the next, and
prints a one-line summary of the ratios at the end (the lines each script marks with "->").
``--quick`` passes ``--quick`` to each: small sizes, a smoke run (CI runs it), not figures to
quote. A full run writes its headlines into ``benchmarks/README.md`` (between its
``make-bench`` markers), so ``make bench`` refreshes the table there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["capture", "naps", "scale", "projection", "similarity", "attribution", "featurevis", "report"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", default=None, help="comma-separated subset, e.g. naps,scale")
    parser.add_argument("--no-readme", action="store_true",
                        help="do not write this run's headlines into README.md (a full run does by default)")
    args = parser.parse_args()
    chosen = ORDER if args.only is None else [name.strip() for name in args.only.split(",")]
    unknown = [name for name in chosen if name not in ORDER]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ORDER)}")
    headlines: list[tuple[str, str]] = []
    failed = []
    for name in chosen:
        command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.strip().startswith("->"):
                headlines.append((name, line.strip()[2:].strip()))
        if proc.wait():
            failed.append(name)
        print(f"=== {name}: {time.perf_counter() - start:.0f} s{' (FAILED)' if proc.returncode else ''}")
    print("\nSummary (ratios measured side by side within each benchmark):")
    for name, line in headlines:
        print(f"  {name:<12s} {line}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    if not args.quick and not args.no_readme:
        refresh_readme(headlines, failed)
    return 1 if failed else 0


def refresh_readme(headlines: list[tuple[str, str]], failed: list[str]) -> None:
    """Put the headline lines of this run in README.md between its result markers."""
    import datetime
    import os

    readme = HERE / "README.md"
    start, end = "<!-- make-bench:start -->", "<!-- make-bench:end -->"
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text += f"\n{start}\n{end}\n"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [f"| {name} | {line.replace('|', '/')} | `python benchmarks/{name}.py` |" for name, line in headlines]
    block = "\n".join([
        start,
        (f"Headlines of the last full `make bench` ({stamp}, {os.cpu_count()} cores, load average at the end"
         f" {os.getloadavg()[0]:.1f}{'; failed: ' + ', '.join(failed) if failed else ''}):"),
        "",
        "| benchmark | headline (ratio of minima, median, load) | command |",
        "|---|---|---|",
        *rows,
        end,
    ])
    head, rest = text.split(start, 1)
    readme.write_text(head + block + rest.split(end, 1)[1])
    print(f"headlines written to {readme}")


if __name__ == "__main__":
    sys.exit(main())
