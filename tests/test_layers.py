"""The project's import graph, built from the source with `ast`: no cycles, and no import from a
layer above the importer's own (house style 7; issue 21).

Every import counts: module level, inside functions, and under `if TYPE_CHECKING:`. An import of
`pkg.mod` is an edge to `pkg.mod`; `from pkg import name` is an edge to `pkg.name` when that is a
module, else to `pkg` (its `__init__`).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("t2core", "t2ops", "catalog", "flows", "t2api", "t2cli")

# Bottom to top. A module may import its own layer and the ones below, never one above. The operations
# return records; the catalog (its executor the only writer) sits above them with the flows and the CLI.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("t2core", "t2core.errors", "t2core.hashing", "t2core.paths", "t2core.artifacts", "t2core.registry",
                "t2core.safe_text", "t2core.faults", "t2core.settings", "t2core.threads", "t2core.precision",
                "t2core.memory")),
    ("models, tasks, scoring, svd, svf, sampling and what applies them",
     ("t2core.models", "t2core.tasks", "t2core.scoring", "t2core.svd", "t2core.svf", "t2core.sampling", "t2core.sandbox", "t2core.methods",
      "t2core.serving", "t2core.logprobs", "t2core.adapters", "t2core.experts", "t2core.export", "t2core.variants")),
    ("training, evaluation, adaptation, transfer, and the plan of what they need",
     ("t2core.training", "t2core.evaluate", "t2core.adapt", "t2core.transfer", "t2core.inspect_expert", "t2core.plan")),
    ("profiles", ("t2core.profiles",)),
    ("operations", ("t2ops",)),
    ("catalog, flows, the HTTP server and CLI", ("catalog", "flows", "t2api", "t2cli")),
)


def modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def _known(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the project modules it imports}."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(a.name, mods) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package
                    pkg = m if f.name == "__init__.py" else m.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else _known(base, mods)
                           for a in node.names]
            graph[m].update(t for t in targets if t and t != m)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def layer_of(module: str) -> int | None:
    best = None  # the longest prefix wins: "t2core" is a leaf, "t2core.models" is not
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return best[0] if best else None


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}, "f": {"d"}}
    assert cycles(g) == [["a", "b", "c"], ["e", "e2"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions_and_type_checking(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p.a import f\n")
    g = import_graph(modules(tmp_path, ("p",)))
    assert g["p.a"] == {"p.b"} and g["p.b"] == {"p.a"}
    assert cycles(g) == [["p.a", "p.b"]]


def test_the_project_has_no_import_cycles():
    found = cycles(import_graph(modules()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer_of(m) is None] == []


def test_no_module_imports_from_a_layer_above_its_own():
    graph = import_graph(modules())
    up = [f"{m} ({LAYERS[layer_of(m)][0]}) -> {d} ({LAYERS[layer_of(d)][0]})"
          for m in sorted(graph) for d in sorted(graph[m]) if layer_of(d) > layer_of(m)]
    assert not up, "imports from a layer above: " + "; ".join(up)


def test_the_layer_check_catches_an_upward_import():
    assert layer_of("t2core.models.hub") == 1 and layer_of("t2core") == 0 and layer_of("t2cli.main") == len(LAYERS) - 1
    assert layer_of("t2core.training.reinforce") > layer_of("t2core.sampling.base")


def test_every_module_imports_first_without_a_cycle_at_run_time():
    """Each project module imported first, into an interpreter that holds none of the project's modules: an
    import cycle the graph above cannot see (a package that imports its submodules by name,
    `import_submodules`) fails here. A Dask worker that imported `t2core.svf` first died on one: svf ->
    sampling -> (every sampler module) vllm_lora -> export -> experts -> svf, half initialised."""
    import subprocess
    import sys

    script = (
        f"import importlib, sys\nPACKAGES = {PACKAGES!r}\n"
        "names = sys.argv[1:]\n"
        "bad = []\n"
        "for n in names:\n"
        "    for k in [k for k in sys.modules if k.split('.')[0] in PACKAGES]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n")
    names = sorted(modules())
    r = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "", r.stdout
