"""Every third-party module that ``sspo_exp`` imports is a declared dependency (``pyproject.toml``), and the
floors of the libraries TRL also requires are no lower than TRL's own."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sspo_exp"
#: Import names whose distribution is named differently and is not installed here (optional extras).
NOT_INSTALLED = {"vllm": "vllm", "deepspeed": "deepspeed"}


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, Requirement]:
    """Declared requirements by normalized distribution name (core dependencies and every extra)."""
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {_norm(r.name): r for r in map(Requirement, reqs)}


def imported_modules() -> dict[str, list[str]]:
    """Top-level modules imported anywhere in ``sspo_exp`` (module level or inside functions) -> files."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                  == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    return found


def third_party(modules) -> list[str]:
    return sorted(m for m in modules if m not in sys.stdlib_module_names and m not in ("sspo_exp", "__future__"))


def distributions_of(module: str) -> list[str]:
    dists = md.packages_distributions().get(module) or [NOT_INSTALLED.get(module, module)]
    return sorted({_norm(d) for d in dists})


def test_scanner_finds_what_it_must():
    """The scan sees imports inside functions too (torch, vllm are imported lazily in places)."""
    mods = imported_modules()
    assert {"torch", "wandb", "omegaconf", "yaml", "numpy", "google", "vllm"} <= set(mods)
    assert "json" not in third_party(mods) and "sspo_exp" not in third_party(mods)


def test_every_directly_imported_module_is_declared():
    deps = declared()
    missing = []
    for module, files in imported_modules().items():
        if module not in third_party([module]):
            continue
        if not any(d in deps for d in distributions_of(module)):
            missing.append(f"{module} (distribution {'/'.join(distributions_of(module))}; imported in {files[0]})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_floors_are_at_least_trls_own():
    """datasets, accelerate, transformers (and anything else TRL requires that we declare too): our lower bound
    is never below the one in TRL's installed metadata, so pip cannot resolve a combination TRL refuses."""
    deps = declared()
    trl_reqs = [Requirement(r) for r in md.requires("trl") or [] if "extra ==" not in r]
    checked = []
    for req in trl_reqs:
        ours = deps.get(_norm(req.name))
        theirs = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=", ">")]
        if ours is None or not theirs:
            continue
        floor = [Version(s.version.rstrip(".*")) for s in ours.specifier if s.operator in (">=", "==", "~=")]
        assert floor and max(floor) >= max(theirs), f"{req.name}: ours {ours.specifier}, TRL needs {req.specifier}"
        checked.append(_norm(req.name))
    assert {"transformers", "accelerate", "datasets"} <= set(checked), checked
