"""Readable graphs of big models: identical consecutive blocks shown once (×N), and a depth limit.

A transformer is six (or 48) copies of one block; an EfficientNet a few stages of repeated
MBConv blocks. Drawn in full, their graphs are hundreds of boxes. Two views make them
readable, both keeping every name exactly as ``named_modules()`` gives it:

* **repeats**: a run of consecutive sibling containers with the same structure (same types,
  parameter counts and relative names of everything inside, each called once, one after the
  other) is drawn once: the first block's nodes stand for all of them, labelled with the
  run (``encoder.layer.0–5 ×6``). Edges into and out of the run are kept; edges between its
  blocks are dropped.
* **depth**: modules nested deeper than ``depth`` dotted name segments are merged into their
  ancestor at that depth (one box per block, its parameters and MACs summed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from neuralatlas.errors import AnalysisError

if TYPE_CHECKING:
    from neuralatlas.architecture.graph import ArchitectureGraph, Node


def _inside(name: str, container: str) -> bool:
    return name == container or name.startswith(container + ".")


def _owner(node: Node) -> str:
    """The module a node belongs to: its own name (modules), its enclosing module (functions)."""
    return node.name if node.kind == "module" else node.parent


def _span(names: Sequence[str]) -> str:
    first, last = names[0], names[-1]
    head, _, a = first.rpartition(".")
    head2, _, b = last.rpartition(".")
    if head == head2 and a.isdigit() and b.isdigit():
        return f"{head + '.' if head else ''}{a}–{b}"
    return f"{first} … {last}"


def _signature(rows_by_name: dict[str, dict[str, Any]], children: dict[str, list[str]], name: str) -> tuple:
    row = rows_by_name[name]
    inner = []
    stack = list(children.get(name, []))
    while stack:
        child = stack.pop(0)
        r = rows_by_name[child]
        inner.append((child[len(name):], r["type"], r["params_total"], r["calls"]))
        stack[:0] = children.get(child, [])
    return (row["type"], row["params_total"], tuple(inner))


def repeated_runs(graph: ArchitectureGraph, min_repeat: int = 2) -> list[list[str]]:
    """Runs of identical consecutive sibling containers, outermost first (each a list of names).

    Example
    -------
    >>> repeated_runs(architecture(bert))[0][:2]         # doctest: +SKIP
    ['encoder.layer.0', 'encoder.layer.1']
    """
    rows = graph.modules
    rows_by_name = {r["name"]: r for r in rows}
    children: dict[str, list[str]] = {}
    for r in rows:
        children.setdefault(r["parent"], []).append(r["name"])
    first_node: dict[str, int] = {}
    last_node: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        owner = _owner(n)
        if n.kind not in ("module", "function") or not owner:
            continue
        parts = owner.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            first_node.setdefault(prefix, i)
            last_node[prefix] = i
    runs: list[list[str]] = []
    taken: set[str] = set()
    for names in children.values():
        containers = [c for c in names if not rows_by_name[c]["is_leaf"] and rows_by_name[c]["calls"] == 1
                      and c in first_node]
        i = 0
        while i < len(containers):
            sig = _signature(rows_by_name, children, containers[i])
            j = i + 1
            while (j < len(containers) and _signature(rows_by_name, children, containers[j]) == sig
                   and last_node[containers[j - 1]] < first_node[containers[j]]):
                j += 1
            if j - i >= min_repeat:
                runs.append(containers[i:j])
            i = j
    runs.sort(key=lambda run: run[0].count("."))
    kept = []
    for run in runs:  # a run inside a repeated block is seen once, in the block that stays
        if any(_inside(run[0], t) for t in taken):
            continue
        kept.append(run)
        taken.update(run[1:])
    return kept


def collapse_repeats(graph: ArchitectureGraph, min_repeat: int = 2) -> ArchitectureGraph:
    """The graph with each run of identical consecutive blocks drawn once (see the module doc)."""
    nodes = list(graph.nodes)
    edges = list(graph.edges)
    runs = repeated_runs(graph, min_repeat)
    done = []
    for run in runs:
        span, n_run = _span(run), len(run)
        blocks = [[n for n in nodes if n.kind in ("module", "function") and _owner(n) and _inside(_owner(n), c)]
                  for c in run]
        if any(len(b) != len(blocks[0]) or [x.type for x in b] != [x.type for x in blocks[0]] for b in blocks):
            continue  # same modules but another wiring (a function more or less): keep it all
        mapping: dict[str, str] = {}
        block_of: dict[str, int] = {}
        for k, block in enumerate(blocks):
            for node, rep in zip(block, blocks[0], strict=True):
                mapping[node.id] = rep.id
                block_of[node.id] = k
        dropped = {n.id for b in blocks[1:] for n in b}
        new_edges = []
        for s, t in edges:
            if s in block_of and t in block_of and block_of[s] != block_of[t]:
                continue  # from one block to the next: the ×N says it
            e = (mapping.get(s, s), mapping.get(t, t))
            if e[0] != e[1] and e not in new_edges:
                new_edges.append(e)
        rep_ids = {n.id for n in blocks[0]}
        nodes = [replace(n, repeat=n.repeat * n_run, span=span) if n.id in rep_ids else n
                 for n in nodes if n.id not in dropped]
        edges = new_edges
        done.append(run)
    out = replace(graph, nodes=nodes, edges=edges)
    out.extra = {**graph.extra, "repeats": done}
    return out


def collapse_depth(graph: ArchitectureGraph, depth: int) -> ArchitectureGraph:
    """Modules deeper than ``depth`` name segments merged into their ancestor at that depth."""
    from neuralatlas.architecture.nodes import Node

    if int(depth) < 1:
        raise AnalysisError(f"depth={depth!r}; pass an int >= 1 (1: only the model's top-level modules).")
    depth = int(depth)
    rows = {r["name"]: r for r in graph.modules}
    group: dict[str, str] = {}
    for n in graph.nodes:
        owner = _owner(n) if n.kind in ("module", "function") else ""
        parts = owner.split(".") if owner else []
        if len(parts) > depth or (n.kind == "function" and len(parts) == depth):
            group[n.id] = ".".join(parts[:depth])
    runs = graph.extra.get("repeats", [])
    merged: dict[str, Node] = {}
    nodes: list[Node] = []
    for n in graph.nodes:
        g = group.get(n.id)
        if g is None:
            nodes.append(n)
            continue
        if g in merged:
            if g not in rows:
                merged[g].macs += n.macs
            continue
        row = rows.get(g, {})
        # the module table's count: complete (functions run inside hooks-traced modules too)
        macs = int(row["macs"]) if "macs" in row else n.macs
        m = Node(g, g, "module", row.get("type", "?"), row.get("output_shape"), int(row.get("params_total", 0)),
                 macs, 1, 1, row.get("parent", ""))
        # the box stands for N blocks when it lies in a repeated block (not when it holds the run)
        for run in runs:
            if _inside(g, run[0]):
                m.repeat, m.span = m.repeat * len(run), _span(run)
        merged[g] = m
        nodes.append(m)
    edges: list[tuple[str, str]] = []
    for s, t in graph.edges:
        e = (group.get(s, s), group.get(t, t))
        if e[0] != e[1] and e not in edges:
            edges.append(e)
    return replace(graph, nodes=nodes, edges=edges)


def auto_depth(graph: ArchitectureGraph, max_nodes: int = 40) -> int | None:
    """The deepest ``depth`` whose collapsed view (repeats drawn once) has at most ``max_nodes`` nodes.

    ``None`` when the full graph is already that small.
    """
    base = collapse_repeats(graph)
    if len(base.nodes) <= max_nodes:
        return None
    deepest = max((n.name.count(".") + 1 for n in graph.nodes if n.kind == "module"), default=1)
    for d in range(deepest, 0, -1):
        if len(collapse_depth(base, d).nodes) <= max_nodes:
            return d
    return 1
