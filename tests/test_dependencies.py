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
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sspo_exp"
#: Import names whose distribution is named differently and is not installed here (optional extras).
NOT_INSTALLED = {"vllm": "vllm", "deepspeed": "deepspeed"}
#: Modules only probed: the code runs without them (a stand-in replaces an absent one), so they are not requirements.
PROBED_ONLY = {"IPython"}  # sspo_exp/data/m3tooleval.py: upstream's repl.py imports it; the export never runs a cell
#: Modules of an engine installed beside the project by a script, not by an extra (whose pins would not resolve with
#: ours): module -> (script, the requirement it installs).
INSTALLED_BY_SCRIPT = {"verl": (".ci/verl.sh", "verl==0.9.1")}  # verl pins transformers <5.11, our floor is 5.16


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
        if module not in third_party([module]) or module in PROBED_ONLY:
            continue
        if module in INSTALLED_BY_SCRIPT:
            script, requirement = INSTALLED_BY_SCRIPT[module]
            assert requirement in (ROOT / script).read_text(), f"{script} does not install {requirement}"
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


def _core() -> dict[str, Requirement]:
    return {_norm(r.name): r for r in map(Requirement, _pyproject()["project"]["dependencies"])}


def _floor(spec) -> Version | None:
    lows = [Version(s.version.rstrip(".*")) for s in spec if s.operator in (">=", "==", "~=", ">")]
    return max(lows) if lows else None


def _installed(name: str):
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def test_requires_python_is_at_least_every_resolved_dependencys():
    """A Python our floor admits can install the set CI tests: no installed core dependency asks for a newer one
    (TRL 1.16 and accelerate 1.16 ask for 3.11; a 3.10 user would get 'No matching distribution')."""
    ours = _floor(SpecifierSet(_pyproject()["project"]["requires-python"]))
    assert ours is not None and sys.version_info[:2] >= (ours.major, ours.minor)
    too_low = []
    for name in _core():
        dist = _installed(name)
        theirs = dist and dist.metadata.get("Requires-Python")
        if theirs and _floor(SpecifierSet(theirs)) and _floor(SpecifierSet(theirs)) > ours:
            too_low.append(f"{name} {dist.version} requires Python {theirs}")
    assert not too_low, f"requires-python >= {ours} is too low: " + "; ".join(too_low)
    assert ours >= Version("3.11")  # TRL 1.16's own Requires-Python


def test_floors_are_at_least_what_the_resolved_set_requires():
    """Every core floor is at least what each INSTALLED core dependency (the set CI resolves and tests) requires of
    it: torch >= accelerate's floor, tokenizers >= transformers', numpy >= pandas', ... so no floor names a version
    the tested set cannot run with. A new release that raises one fails here, naming the floor to raise."""
    core, env = _core(), {"extra": ""}
    too_low, checked = [], set()
    for name in core:
        dist = _installed(name)
        for text in (dist.requires or []) if dist else []:
            req = Requirement(text)
            if (req.marker and not req.marker.evaluate(env)) or _norm(req.name) not in core:
                continue
            theirs, ours = _floor(req.specifier), _floor(core[_norm(req.name)].specifier)
            if theirs is None:
                continue
            checked.add(_norm(req.name))
            if ours is None or ours < theirs:
                too_low.append(f"{req.name}: ours {core[_norm(req.name)].specifier or '(none)'}, "
                               f"{name} {dist.version} requires {req.specifier}")
    assert not too_low, "raise these floors in pyproject.toml: " + "; ".join(too_low)
    assert {"torch", "tokenizers", "numpy", "transformers", "accelerate"} <= checked, checked


def test_floors_can_be_installed_together_with_their_dependents():
    """A floor a dependent's own floor version refuses is not a floor: transformers at our floor accepts tokenizers
    at ours (transformers < 5.16 capped tokenizers at 0.23.0)."""
    core = _core()
    tok, trf = _floor(core["tokenizers"].specifier), _floor(core["transformers"].specifier)
    assert tok >= Version("0.23.1") and trf >= Version("5.16"), (tok, trf)


def test_wandb_has_no_upper_bound():
    """The report reads a wandb file format it does not know with W&B's own reader
    (test_wandb_versions.py::test_unknown_format_is_read_with_wandbs_own_reader), so no cap blocks a new release."""
    assert not [s for s in _core()["wandb"].specifier if s.operator in ("<", "<=", "==", "~=")]
