"""Timing helpers shared by the benchmarks (each script puts this folder on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


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


def pin_threads(n: int = 1) -> int:
    """Use ``n`` threads in every library that reads the usual variables (and torch), so that
    every side of a comparison runs on the same cores; returns ``n`` for the printout."""
    import os

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover
        pass
    return n


class Timing:
    """The times of one side of a comparison: min, median, and the machine's load meanwhile."""

    def __init__(self, times: list[float], loads: list[float], value: Any = None):
        import statistics

        self.times, self.loads, self.value = times, loads, value
        self.min = min(times)
        self.median = statistics.median(times)
        self.load = sum(loads) / len(loads)

    def __str__(self) -> str:
        return f"min {self.min:8.4f} s  median {self.median:8.4f} s  (n={len(self.times)}, load {self.load:.1f})"


def host_returns_free_memory() -> bool:
    """Whether this (virtual) machine hands free memory back to its host (virtio free page reporting).

    There, a page freed a few seconds ago is no longer backed by the host, and the next first
    touch of it costs a host page fault: measured here, writing 284 MiB of new files took
    390-920 ms after 4 s idle and 80-150 ms right after 600 MiB had been touched and freed.
    """
    try:
        with open("/sys/module/page_reporting/parameters/reported_kib") as f:
            return int(f.read().strip() or 0) > 0
    except (OSError, ValueError):
        return False


def fresh_pages(nbytes: int) -> None:
    """Touch ``nbytes`` of new memory and free it again, untimed, before a timed call.

    The pages the call then allocates (new arrays, the page cache of new files) are ones
    the host backs, whatever the call before it left behind. Without it, a side that writes
    new files right after another side freed its own ran at the warm speed and a side after
    a pause at the host's page-fault speed (:func:`host_returns_free_memory`): the same
    capture measured 1.5x and 2.8x a bare forward in one run, from its place in the order.
    """
    if nbytes > 0:
        import numpy as np

        block = np.ones(int(nbytes), np.uint8)  # np.ones writes every page
        del block


def round_order(names: Sequence[T], round_index: int) -> list[T]:
    """The order of the sides in round ``round_index``: a shuffle seeded by the round.

    Not a rotation: rotating keeps every side's neighbours, so one side always ran right
    after the same other (the capture's default side after the bare forward, itself after
    284 MiB of new files), and two sides running the same code measured 1.76x and 1.48x a
    bare forward in one run. The seed keeps a run's orders reproducible.
    """
    import random

    order = list(names)
    random.Random(round_index).shuffle(order)
    return order


def interleaved(fns: Mapping[str, Callable[[], Any]], repeat: int,
                setup: Callable[[], Any] | Mapping[str, Callable[[], Any]] | None = None,
                memory: int = 0) -> dict[str, Timing]:
    """Run every side once per round, ``repeat`` rounds, in a new order each round
    (:func:`round_order`), so that load spikes and what the side before left behind hit all
    sides alike; ``setup`` (one callable, or one per side name) runs before each call,
    untimed, then ``memory`` bytes of fresh pages (:func:`fresh_pages`) are touched and
    freed, so every side starts with the same memory at hand."""
    import os

    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    loads: dict[str, list[float]] = {k: [] for k in names}
    values: dict[str, Any] = {}
    for r in range(repeat):
        for name in round_order(names, r):
            prepare = setup.get(name) if isinstance(setup, Mapping) else setup
            if prepare is not None:
                prepare()
            fresh_pages(memory)
            t = time.perf_counter()
            values[name] = fns[name]()
            times[name].append(time.perf_counter() - t)
            loads[name].append(os.getloadavg()[0])
    return {k: Timing(times[k], loads[k], values.get(k)) for k in names}


def ratio_line(label: str, ours: Timing, peer: Timing, goal: str = "") -> str:
    """A headline line ("-> ..."): ratio of minima, and of medians, with the load."""
    return (f"-> {label}: {ours.min / peer.min:.2f}x (min), {ours.median / peer.median:.2f}x (median)"
            f"{'; goal ' + goal if goal else ''}  [load {max(ours.load, peer.load):.1f}]")
