"""The package's layers (docs/architecture.md): imports run downwards only, no module imports itself back through
others, and an import of our own code inside a function is the exception it says it is.

Read from the source with ``ast`` (every ``import`` / ``from … import``, at module level and inside functions), so it
sees the imports Python would only make when a function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sspo_exp

PACKAGE = Path(sspo_exp.__file__).parent

#: Floors, bottom up (the longest matching prefix decides). A module may import only from its own floor or below.
FLOORS: dict[str, int] = {
    # 0 - leaves: they know nothing of the rest
    "sspo_exp": 0, "sspo_exp.errors": 0, "sspo_exp.keys": 0, "sspo_exp.plain": 0, "sspo_exp.objectives": 0,
    "sspo_exp.rewards": 0, "sspo_exp.sandbox": 0, "sspo_exp.rundir": 0, "sspo_exp.data": 0, "sspo_exp.identity": 0,
    "sspo_exp.cli_help": 0,
    # 1 - the CodeAct environment (episodes in the sandbox) and the Hydra glue
    "sspo_exp.codeact": 1, "sspo_exp.hydra_cli": 1, "sspo_exp.output_root": 1,
    # 2 - what a task is (loader, prompt, scorer) and the one model loader
    "sspo_exp.tasks": 2, "sspo_exp.models": 2,
    # 3 - cold starts as stages, evaluation; reports beside them, reading stored results only
    "sspo_exp.stages": 3, "sspo_exp.evaluation": 3, "sspo_exp.report": 3,
    # 4 - training
    "sspo_exp.train": 4,
    # 5 - sweeps, launchers, other engines
    "sspo_exp.sweeps": 5, "sspo_exp.integrations": 5,
    # 6 - the commands
    "sspo_exp.cli": 6, "sspo_exp.train.cli": 6, "sspo_exp.train.cold_start_cli": 6, "sspo_exp.evaluation.cli": 6,
    "sspo_exp.report.cli": 6, "sspo_exp.sandbox.cli": 6, "sspo_exp.objectives.table": 6, "sspo_exp.env_cli": 6,
}  # fmt: skip

#: Most own-package imports a function may make (each keeps torch, transformers, TRL or W&B out of a light path).
MAX_FUNCTION_IMPORTS = 10


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len)
    return FLOORS[best]


def _imports(path: Path, module: str) -> list[tuple[str, int, bool, str]]:
    """``(imported module, line, inside a function, the line's text)`` for every import of our own package."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                # `from pkg import sub` imports the submodule sub when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            for target in targets:
                if target == "sspo_exp" or target.startswith("sspo_exp."):
                    found.append((target, child.lineno, in_function, lines[child.lineno - 1]))
            visit(child, inner)

    visit(tree, False)
    return found


EDGES = {m: _imports(p, m) for m, p in MODULES.items()}


def test_every_module_has_a_floor():
    assert all(floor(m) >= 0 for m in MODULES)


def test_imports_run_downwards_only():
    up = [f"{m}:{line} (floor {floor(m)}) imports {t} (floor {floor(t)})"
          for m, edges in EDGES.items() for t, line, _, _ in edges if floor(t) > floor(m)]
    assert not up, "arrows that run back up a layer:\n" + "\n".join(up)


def _cycles() -> list[list[str]]:
    graph = {m: sorted({t for t, *_ in edges if t in MODULES and t != m}) for m, edges in EDGES.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_circles():
    # a package's __init__ that hands on its submodules' names is not a circle with them
    cycles = [c for c in _cycles() if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not cycles, "modules importing each other in a loop:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_inside_functions_are_few_and_say_why():
    inside = sorted({(m, line, text) for m, edges in EDGES.items() for _, line, inner, text in edges
                     if inner})  # one per import statement
    unexplained = [f"{m}:{line}: {text.strip()}" for m, line, text in inside if "#" not in text]
    assert not unexplained, ("an import of our own code inside a function must say on its line why it is not at the "
                             "top (it keeps torch/transformers/TRL/W&B out of a light path):\n" + "\n".join(unexplained))
    assert len(inside) <= MAX_FUNCTION_IMPORTS, f"{len(inside)} own-package imports inside functions: {inside}"


def test_the_reader_sees_every_import_and_the_rule_catches_an_upward_one(tmp_path):
    """The checks above can fail: a leaf with an import of training inside a function is seen, placed above it and
    counted as an import inside a function."""
    leaf = tmp_path / "leaf.py"
    leaf.write_text("from sspo_exp import keys\n\ndef f():\n    from sspo_exp.train import run\n    return run\n")
    found = [(target, inner) for target, _, inner, _ in _imports(leaf, "sspo_exp.rewards")]
    assert found == [("sspo_exp.keys", False), ("sspo_exp.train.run", True)]
    assert floor("sspo_exp.train.run") > floor("sspo_exp.rewards")


def test_the_launcher_plugin_sits_above_the_package():
    """hydra_plugins/sspo_exp_launcher (Hydra finds launcher classes only there) imports the package; no module of the
    package imports it: Hydra loads it by its name in conf/launcher/submitit_slurm.yaml."""
    plugin = "hydra_plugins.sspo_exp_launcher"
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            targets += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(t == plugin or t.startswith(plugin + ".") for t in targets), f"{name} imports {plugin}"
    assert (PACKAGE.parent / "hydra_plugins" / "sspo_exp_launcher" / "slurm.py").is_file()
    assert not (PACKAGE.parent / "hydra_plugins" / "__init__.py").exists()  # a namespace, shared with other plugins
