"""The import rules of docs/ARCHITECTURE.md, checked on the source: no cycle, no upward import.

Every module of ``src/neuralatlas`` is parsed with :mod:`ast`; every import (module level and
inside functions; ``if TYPE_CHECKING:`` blocks excluded, they never run) becomes an edge.
The layers, bottom to top, follow the data flow of the architecture page::

    package root, errors, _moved < patterns, specs, results, vocabulary, palette, token_html < data
      < store < zoo < capture
      < analysis | architecture, attribution, featurevis, adversarial (beside each other)
      < plots < steps, photo_steps < toy, report < config < pipeline < cli

A module may import its own layer or below, with no exception, and there is no import cycle,
module- or function-level, with nothing left out (:data:`KNOWN_CYCLES` is empty; a new cycle
fails). The old paths of moved names (deprecated, until 0.3) do not import their new homes:
they resolve through the one root table ``neuralatlas._moved.MOVED``, which imports them by
name at run time (``tests/test_moved.py`` checks every entry). So that nobody launders an
upward import the same way, only the modules of :data:`BY_NAME` call ``importlib.import_module``
or ``__import__``, each for the reason given there.

The same, checked by a second parser (``graphlib`` raises ``CycleError`` on a cycle), from the
repository root::

    PYTHONPATH=tests python -c "
    import ast, graphlib, pathlib; from test_architecture_rules import RANK
    S = pathlib.Path('src'); M = {'.'.join(p.relative_to(S).with_suffix('').parts).removesuffix('.__init__'): p
                                  for p in S.glob('neuralatlas/**/*.py')}
    up = lambda m: m if m in M or not m else up(m.rpartition('.')[0])
    def deps(m, pkg):
        tree = ast.parse(M[m].read_text())
        [setattr(n, 'body', []) for n in ast.walk(tree)
         if isinstance(n, ast.If) and 'TYPE_CHECKING' in ast.unparse(n.test)]
        for n in ast.walk(tree):
            if isinstance(n, ast.Import): yield from (a.name for a in n.names)
            if isinstance(n, ast.ImportFrom):
                b = (n.module if not n.level else
                     '.'.join(pkg.split('.')[:len(pkg.split('.')) + 1 - n.level] + [n.module or '']).strip('.'))
                yield from (b + '.' + a.name if b + '.' + a.name in M else b for a in n.names)
    G = {m: {up(t) for t in deps(m, m if M[m].name == '__init__.py' else m.rpartition('.')[0])} - {'', m} for m in M}
    layer = lambda m: (m.split('.') + [''])[1]
    print(len(M), 'modules,', sum(map(len, G.values())), 'import edges; upward edges:',
          sorted((m, t) for m in G for t in G[m] if RANK[layer(t)] > RANK[layer(m)]))
    graphlib.TopologicalSorter(G).prepare()
    print('no import cycle (module- or function-level), nothing excluded')"

It prints ``upward edges: []`` and the last line; its edges are exactly those of
:func:`import_graph`, and none is left out of either check.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[set[str]] = [
    {"", "errors", "_moved"},
    {"patterns", "specs", "results", "vocabulary", "palette", "token_html"},
    {"data"},
    {"store"},
    {"zoo"},
    {"capture"},
    {"analysis", "architecture", "attribution", "featurevis", "adversarial"},
    {"plots"},
    {"steps", "photo_steps"},
    {"toy", "report"},
    {"config"},
    {"pipeline"},
    {"cli"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# The only modules that import by name (``importlib.import_module`` / ``__import__``), and why. A
# by-name import is no edge of the import graph, so each is allowed here or the rule below fails;
# those that can reach the package's own modules are checked below to reach only their layer or
# below (``_moved`` excepted: its targets are the new homes of moved names, tests/test_moved.py).
BY_NAME = {
    "neuralatlas": "the public names of _EXPORTS, resolved lazily so that `import neuralatlas` stays light",
    "neuralatlas._moved": "the new homes of moved names (MOVED), for their old paths until 0.3",
    "neuralatlas.steps": "its own step modules (MODULES), imported when first used",
    "neuralatlas.steps.registry": "the step modules of ANALYSES and STEP_MODULES, imported when first used",
    "neuralatlas.specs": "the module of a user's 'package.module:function' spec (model, data loader)",
    "neuralatlas.capture.foreign_base": "an optional framework (jax, flax, keras), naming its extra when missing",
    "neuralatlas.analysis._umap": "umap-learn's own modules, whose numba functions it re-declares cached",
}

# Import cycles inside one package that are still to be broken (function-level imports both
# ways). The list may only shrink: a cycle not listed fails, and so does a listed one that is gone.
KNOWN_CYCLES: list[set[str]] = []


def modules(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted((src / "neuralatlas").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, package)
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


@functools.cache  # parsed once per run (several tests read it; ~2 s a parse of every module); read-only
def import_graph(src: Path = SRC) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` of the package's own modules (under ``src``)."""
    mods = modules(src)
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for name, (path, package) in mods.items():
        here = name if package else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                while target and target not in mods:  # ``import a.b.c`` of a name: its module
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges[name].setdefault(target, node.lineno)
                elif target and target != name and name.startswith(target + ".") and target in mods:
                    # a module importing a name from its own package's __init__: a real edge
                    if isinstance(node, ast.ImportFrom) and f"{node.module}" == target and not all(
                            f"{target}.{a.name}" in mods for a in node.names):
                        edges[name].setdefault(target, node.lineno)
    return edges


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan): each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_package_has_a_layer():
    missing = sorted({layer_of(m) for m in modules()} - set(RANK))
    assert not missing, f"packages without a layer in this test (add them to LAYERS): {missing}"


def test_no_module_imports_a_layer_above_it():
    bad = []
    for module, targets in import_graph().items():
        for target, line in targets.items():
            if RANK[layer_of(target)] > RANK[layer_of(module)]:
                bad.append(f"{module} (layer {layer_of(module) or 'root'}) imports {target} "
                           f"(layer {layer_of(target)}) at line {line}")
    assert not bad, "upward imports:\n  " + "\n  ".join(bad)


def by_name_imports(src: Path = SRC) -> dict[str, list[int]]:
    """``{module: [line, ...]}`` of every call of ``importlib.import_module`` or ``__import__``."""
    found: dict[str, list[int]] = defaultdict(list)
    for name, (path, _) in modules(src).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "importlib" and any(
                    a.name in ("import_module", "__import__") for a in node.names):
                found[name].append(node.lineno)   # ``from importlib import import_module [as ...]``
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called in ("import_module", "__import__"):
                    found[name].append(node.lineno)
    return found


def test_only_the_listed_modules_import_by_name():
    found = by_name_imports()
    extra = [f"{m} (line {', '.join(map(str, lines))})" for m, lines in sorted(found.items()) if m not in BY_NAME]
    assert not extra, ("importing by name hides the edge from the import rules; import the module, or (an old path of "
                       "a moved name) add it to neuralatlas._moved.MOVED:\n  " + "\n  ".join(extra))
    gone = sorted(set(BY_NAME) - set(found))
    assert not gone, f"no longer import by name (remove them from BY_NAME): {gone}"


def test_by_name_imports_of_the_package_stay_in_their_layer():
    import neuralatlas
    import neuralatlas._moved as moved
    import neuralatlas.steps as steps
    import neuralatlas.steps.registry as registry

    mods = modules()
    reached = {
        "neuralatlas.steps": [f"neuralatlas.steps.{m}" for m in steps.MODULES],
        "neuralatlas.steps.registry": [spec.partition(":")[0] for spec in registry.ANALYSES.values()
                                       if isinstance(spec, str)] + list(registry.STEP_MODULES.values()),
    }
    assert {f"neuralatlas.steps.{m}" for m, _ in steps._HELPERS.values()} <= set(reached["neuralatlas.steps"])
    bad = [f"{m} -> {t}" for m, targets in reached.items() for t in targets
           if t not in mods or RANK[layer_of(t)] > RANK[layer_of(m)]]
    assert not bad, f"by-name imports of a missing module or of a layer above: {bad}"
    # the root's names and the moved names' homes (old and new) are modules of the package
    named = set(neuralatlas._EXPORTS.values()) | {p.partition(":")[0] for old, m in moved.MOVED.items()
                                                   for p in (old, m.new)}
    assert not sorted(named - set(mods)), f"names in modules that do not exist: {sorted(named - set(mods))}"


def _graph(level: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        for target in targets:
            if level == "package":
                a, b = layer_of(module), layer_of(target)
                if a != b:
                    graph[a].add(b)
            else:
                graph[module].add(target)
    return graph


def test_no_import_cycle_between_packages():
    cycle = find_cycle(_graph("package"))
    assert cycle is None, f"import cycle between packages: {' -> '.join(c or 'neuralatlas' for c in cycle)}"


def test_no_import_cycle_between_modules():
    graph = _graph("module")
    new, gone = [], [sorted(k) for k in KNOWN_CYCLES]
    for component in strongly_connected(graph):
        if component in KNOWN_CYCLES:
            gone.remove(sorted(component))
            continue
        sub = {m: graph[m] & component for m in component}
        new.append(" -> ".join(find_cycle(sub) or sorted(component)))
    assert not new, "import cycles between modules:\n  " + "\n  ".join(new)
    assert not gone, f"cycles broken since (remove them from KNOWN_CYCLES): {gone}"


def test_the_checker_finds_a_cycle_and_an_upward_edge():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert strongly_connected({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [{"a", "b"}]
    assert RANK["analysis"] < RANK["plots"] < RANK["steps"] < RANK["report"] < RANK["pipeline"] < RANK["cli"]


def test_the_parser_finds_a_function_level_cycle_and_skips_type_checking(tmp_path):
    # a made-up package: a imports b at module level, b imports a inside a function (the kind
    # of cycle capture.loop <-> capture.foreign was); c's import under TYPE_CHECKING never runs;
    # d imports plots inside a function (upward, relative import)
    files = {
        "__init__.py": "",
        "capture/__init__.py": "",
        "capture/a.py": "from neuralatlas.capture import b\n",
        "capture/b.py": "def f():\n    from neuralatlas.capture.a import x\n    return x\n",
        "capture/c.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from neuralatlas.plots import figs\n"),
        "capture/d.py": "def g():\n    from ..plots.figs import draw\n    return draw\n",
        "plots/__init__.py": "",
        "plots/figs.py": "from neuralatlas.capture import c\n",
    }
    for name, text in files.items():
        (tmp_path / "neuralatlas" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "neuralatlas" / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["neuralatlas.capture.b"] == {"neuralatlas.capture.a": 2}
    assert "neuralatlas.capture.c" not in graph
    assert graph["neuralatlas.capture.d"] == {"neuralatlas.plots.figs": 2}
    cycles = strongly_connected({m: set(t) for m, t in graph.items()})
    assert cycles == [{"neuralatlas.capture.a", "neuralatlas.capture.b"}]


def test_by_name_imports_are_found_however_spelled(tmp_path):
    files = {
        "__init__.py": "",
        "a.py": "import importlib\ndef f():\n    return importlib.import_module('neuralatlas.cli')\n",
        "b.py": "from importlib import import_module as im\n",
        "c.py": "x = __import__('neuralatlas.cli')\n",
        "d.py": "from importlib import resources, util\nutil.find_spec('numpy')\n",   # no import: not found
    }
    for name, text in files.items():
        (tmp_path / "neuralatlas" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "neuralatlas" / name).write_text(text)
    assert dict(by_name_imports(tmp_path)) == {"neuralatlas.a": [3], "neuralatlas.b": [1], "neuralatlas.c": [1]}
