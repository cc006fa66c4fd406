"""Timing helpers shared by the benchmarks (each script puts this folder on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The shortest of ``repeat`` timed calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def race(fns: Mapping[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, Any]]:
    """Best time and value of each function, run in turns so that all see the same machine load."""
    results: dict[str, tuple[float, Any]] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            value = fn()
            took = time.perf_counter() - t
            if name not in results or took < results[name][0]:
                results[name] = (took, value)
    return results
