"""Export M3ToolEval's tasks from an upstream checkout into the ``codeact`` benchmark's file format.

Upstream (``xingyaoww/code-act``, ``scripts/eval/m3tooleval/``) defines its 82 tasks as Python objects: ``tasks/
base.py`` holds ``Task(name, tools, instruction, expected_output, is_single_tool_task)`` and ``ToolType(name,
description, function, fn_signature)``, and every module of ``tasks/impl/`` (``message_decoder``,
``dna_sequencer``, ``trade_calculator``, ``travel_itinerary_planning``, the ``web_browsing`` package with its
``web_pages.jsonl`` and ``metadata.json``) builds a list of tasks and registers it. This exporter imports those
modules from the directory a user points it at (their own checkout: the code is upstream's, we ship none of it),
and writes one JSON line per task in the order upstream runs them::

    {"name", "instruction", "expected_output", "expected_output_repr", "is_single_tool_task",
     "tools": [{"name", "description", "fn_signature"}], "tool_code"}

``tool_code`` is the sandbox setup that gives the episode the task's tools: the task's own module source, its
``from ..base import …`` line replaced by a stand-in for ``Task``/``ToolType``/``register_task_iterator``, run in a
namespace of its own (as a module is: a tool's globals are not the episode's, so upstream's ``"sum"`` tool,
``lambda *args: sum(args)``, still calls the builtin), its data files (the web pages) written to a private
temporary directory that ``__file__`` points into; then the task's tools (the mapping it was built with, or a
fresh one from the factory it was given — web browsing's ``create_tools()``, one browser per episode, as upstream
resets a task before running it) are bound by name into the episode's globals, as upstream's REPL namespace holds
them. ``expected_output_repr`` keeps the gold's Python type (a tuple, a float) that JSON cannot.

Usage: ``python -m sspo_exp.data.m3tooleval UPSTREAM/scripts/eval/m3tooleval OUT.jsonl`` (prints the task count per
family; upstream's released tasks give 82). Running it executes upstream's task modules on this machine.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sspo_exp.data.schema import DataError

_PKG = "_m3tooleval_upstream"  #: the name upstream's ``tasks`` package is imported under (no clash with ours)
#: the stand-in for ``from ..base import Task, register_task_iterator, ToolType`` inside the sandbox
BASE_STANDIN = (
    "from collections import namedtuple as _namedtuple\n"
    "ToolType = _namedtuple('ToolType', ['name', 'description', 'function', 'fn_signature'])\n"
    "class Task:\n    def __init__(self, *args, **kwargs):\n        pass\n"
    "def register_task_iterator(*args, **kwargs):\n    pass\n"
)
SETUP = """def _m3tooleval_tools():
    import json, os, tempfile
    folder = os.path.join(tempfile.mkdtemp(), {package!r})
    os.makedirs(folder)
    for name, text in json.loads({files!r}).items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    namespace = {{"__name__": {module!r}, "__file__": os.path.join(folder, {filename!r})}}
    exec(compile({source!r}, {module!r}, "exec"), namespace)
    tools = namespace[{tools!r}]
    return tools() if callable(tools) else tools
globals().update({{_name: _tool.function for _name, _tool in _m3tooleval_tools().items()}})
del _m3tooleval_tools
"""

def _package(name: str, path: Path) -> types.ModuleType:
    """A package module for ``path`` without running its ``__init__`` (upstream's imports its task modules)."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module
    return module


@contextlib.contextmanager
def _stub_ipython():
    """Upstream's ``repl.py`` imports IPython at module level; the export never runs a cell, so a stand-in does, for
    the export only: it is taken out of ``sys.modules`` afterwards (matplotlib, for one, reads IPython's version when
    a module of that name is loaded)."""
    added = []
    try:
        importlib.import_module("IPython.core.interactiveshell")
    except ImportError:
        for name in ("IPython", "IPython.core", "IPython.core.interactiveshell", "IPython.utils"):
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        sys.modules["IPython.core.interactiveshell"].InteractiveShell = object
        sys.modules["IPython.utils"].io = None
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def module_order(tasks_dir: Path) -> list[str]:
    """The ``impl`` modules in the order upstream's ``tasks/__init__.py`` imports them (else alphabetical)."""
    init = tasks_dir / "__init__.py"
    if init.is_file():
        for node in ast.walk(ast.parse(init.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "impl" and node.level == 1:
                return [a.name for a in node.names]
    impl = tasks_dir / "impl"
    return sorted(p.stem if p.suffix == ".py" else p.name for p in impl.iterdir()
                  if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file())


def _module_file(impl: Path, name: str) -> Path:
    return impl / name / "__init__.py" if (impl / name).is_dir() else impl / f"{name}.py"


def sandbox_source(path: Path) -> str:
    """The module's source with its ``from ..base import …`` replaced by :data:`BASE_STANDIN` (same line count)."""
    lines = path.read_text().splitlines(keepends=True)
    for node in ast.parse("".join(lines)).body:
        if isinstance(node, ast.ImportFrom) and node.module == "base" and node.level >= 1:
            start, end = node.lineno - 1, node.end_lineno
            return "".join(lines[:start]) + BASE_STANDIN + "".join(lines[end:])
    raise DataError(f"{path}: no 'from ..base import ...' line; is this upstream's M3ToolEval task module?")


def _data_files(path: Path) -> dict[str, str]:
    """The data files beside a package module (web browsing's pages and metadata), by name."""
    if path.name != "__init__.py":
        return {}
    return {p.name: p.read_text() for p in sorted(path.parent.iterdir()) if p.is_file() and p.suffix in (".json", ".jsonl")}


def _tools_name(module: types.ModuleType, tools: Any, task_name: str) -> str:
    """The module-level name bound to the task's ``tools`` argument (a mapping or a factory)."""
    for name, value in vars(module).items():
        if value is tools and not name.startswith("__"):
            return name
    raise DataError(f"M3ToolEval task {task_name!r}: its tools are not a module-level name of {module.__name__}")


def _row(task: Any, tools_arg: Any, module: types.ModuleType, path: Path, package: str) -> dict[str, Any]:
    name = _tools_name(module, tools_arg, task.name)
    tools = task.tools  # upstream's Task.reset() already called a factory: the mapping it returned
    setup = SETUP.format(package=package, files=json.dumps(_data_files(path)), module=f"m3tooleval.{package}",
                         filename=path.name, source=sandbox_source(path), tools=name)
    expected = task.expected_output
    try:
        json.dumps(expected)
    except TypeError:
        expected = repr(expected)
    return {"name": task.name, "instruction": task.instruction, "expected_output": expected,
            "expected_output_repr": repr(task.expected_output), "is_single_tool_task": bool(task.is_single_tool_task),
            "tools": [{"name": n, "description": t.description, "fn_signature": t.fn_signature} for n, t in tools.items()],
            "tool_code": setup}


def export(upstream_dir: str | Path) -> list[dict[str, Any]]:
    """The tasks of an upstream ``scripts/eval/m3tooleval`` directory, as benchmark rows (see the module docstring)."""
    root = Path(upstream_dir).expanduser()
    tasks_dir = root / "tasks" if (root / "tasks").is_dir() else root
    if not (tasks_dir / "base.py").is_file() or not (tasks_dir / "impl").is_dir():
        raise DataError(f"{root}: expected upstream's layout, scripts/eval/m3tooleval/tasks/{{base.py, impl/}}")
    for name in [m for m in sys.modules if m == _PKG or m.startswith(_PKG + ".")]:
        del sys.modules[name]
    _package(_PKG, tasks_dir)
    _package(f"{_PKG}.impl", tasks_dir / "impl")
    try:
        with _stub_ipython():
            return _export(tasks_dir)
    except ImportError as e:
        raise DataError(f"{tasks_dir}: importing upstream's task modules failed ({e}); install what they import "
                        "(tqdm; IPython is stubbed)") from e


def _export(tasks_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with contextlib.redirect_stdout(io.StringIO()):  # upstream prints every task as it builds it
        base = importlib.import_module(f"{_PKG}.base")
        tools_args: dict[int, Any] = {}
        original_init = base.Task.__init__

        def init(self, name, tools, *args, **kwargs):  # remember the tools argument before reset() replaces it
            tools_args[id(self)] = tools
            original_init(self, name, tools, *args, **kwargs)

        base.Task.__init__ = init
        for package in module_order(tasks_dir):
            path = _module_file(tasks_dir / "impl", package)
            seen = len(base.task_iterators)
            module = importlib.import_module(f"{_PKG}.impl.{package}")
            for task_list, _length in base.task_iterators[seen:]:
                rows += [_row(t, tools_args[id(t)], module, path, package) for t in task_list]
    return rows


def families(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Task count per family (the name's prefix before ``/``)."""
    out: dict[str, int] = {}
    for r in rows:
        family = r["name"].split("/")[0]
        out[family] = out.get(family, 0) + 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m sspo_exp.data.m3tooleval UPSTREAM/scripts/eval/m3tooleval OUT.jsonl", file=sys.stderr)
        return 2
    try:
        rows = export(args[0])
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    Path(args[1]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    single = sum(r["is_single_tool_task"] for r in rows)
    print(f"{len(rows)} tasks -> {args[1]}: " + ", ".join(f"{k}={v}" for k, v in families(rows).items())
          + (f"; WARNING: {single} set is_single_tool_task, which the episode loop does not honour" if single else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
