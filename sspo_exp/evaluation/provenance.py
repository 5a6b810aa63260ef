"""Where a number came from (lm-evaluation-harness style): code version, library versions, machine, time."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sspo_exp import __version__

PACKAGES = ("sspo-exp", "torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "math-verify",
            "latex2sympy2_extended", "sympy", "vllm", "wandb", "hydra-core")
REPO = Path(__file__).resolve().parents[2]


def git_info(repo: Path = REPO) -> dict[str, str | bool | None]:
    """``commit`` (None outside a git checkout) and ``dirty`` (uncommitted or untracked code/config files)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # changed or new (untracked) files of the code and configs: the commit alone would not reproduce the numbers
    status = git("status", "--porcelain", "--", "sspo_exp", "pyproject.toml") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance() -> dict:
    return {
        "git": git_info(),
        "versions": library_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def code_version(git: dict) -> dict[str, Any]:
    """The package version and the git commit (and dirty flag) of ``git_info()``: which code made a run."""
    return {"version": __version__, "commit": git.get("commit"), "dirty": git.get("dirty")}
