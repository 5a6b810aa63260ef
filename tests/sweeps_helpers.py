"""Shared pieces of the sweep / SLURM tests: Hydra overrides that make `sspo-exp train` a seconds-long job."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time

#: A ~30k-parameter tiny model with a 10-step cold start, 64 generated problems, 4 optimizer steps of 2 prompts x 4
#: completions, held-out accuracy on 8 problems: ~20 s per run on one core, mostly imports.
TINY = [
    "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
    "model.num_attention_heads=2", "model.num_key_value_heads=2",
    "model.cold_start.steps=10", "model.cold_start.batch_size=16", "model.cold_start.warmup_steps=2",
    "dataset.train_size=64", "dataset.test_size=8",
    "trainer.max_steps=4", "trainer.save_steps=2", "trainer.num_generations=4", "trainer.prompts_per_step=2",
    "trainer.per_device_batch_size=8", "trainer.eval_samples=8",
]  # fmt: skip


def job_env(tmp_path) -> dict[str, str]:
    """Offline, single-threaded, caches inside the test's directory."""
    return {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1", "SSPO_EXP_CACHE": str(tmp_path / "cache")}  # fmt: skip


def slurm_reason() -> str | None:
    """Why SLURM tests cannot run here, or None when `sinfo` reaches a controller with an idle/mixed node."""
    if not shutil.which("sinfo"):
        return "no `sinfo` on PATH (start a local SLURM with slurm/local/install.sh && slurm/local/start.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "`sinfo` did not answer in 120 s: no SLURM controller reachable (slurm/local/start.sh)"
    if out.returncode != 0:
        return f"`sinfo` failed: {out.stderr.strip()[:200]} (slurm/local/start.sh)"
    if not {"idle", "mixed", "allocated"} & set(out.stdout.split()):
        return f"no usable SLURM node (states: {out.stdout.split()})"
    return None


def set_env(monkeypatch, tmp_path) -> None:
    for key, value in job_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    os.makedirs(tmp_path / "cache", exist_ok=True)


def rendezvous_task(cfg) -> dict:
    """A sweep task for launcher tests (module-level so a worker process can import it): records its process and
    torch thread count in ``<output_root>/started-<seed>``, then waits until every other job of the sweep has started
    too (``<output_root>/expected`` holds the count). Run one after another, the first job would wait forever (up to
    the ceiling): it returns only if the jobs run at the same time."""
    import json
    import pathlib

    import torch
    from waiting import wait_for

    root = pathlib.Path(str(cfg.output_root))
    mine = {"pid": os.getpid(), "threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}
    (root / f"started-{cfg.seed}").write_text(json.dumps(mine))
    expected = int((root / "expected").read_text())
    wait_for(lambda: len(list(root.glob("started-*"))) >= expected, f"{expected} jobs started at once")
    return mine


def start_requeued_now(jobid: str, requeued_at: float) -> None:
    """Let a requeued SLURM job start at once instead of after its ~2-minute hold (BeginTime), but not within the
    second of its requeue: slurmd revokes the old start's credential at whole-second resolution, so a start in that
    same second is killed as "Job credential revoked" and the job FAILS (seen in CI: requeued at 00:20:20.396,
    allocated again at 00:20:20.981, "Killing non-startable batch job")."""
    time.sleep(max(0.0, math.floor(requeued_at) + 2 - time.time()))
    subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], timeout=600)
