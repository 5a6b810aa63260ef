"""Write real W&B offline runs (the installed wandb) for the report tests: ``python tests/report_helpers.py DIR``.

Every number a test checks is defined here, in RUNS; the tests recompute expectations from it.
Runs are written by a subprocess (W&B keeps process-global state); one seed is SIGKILLed mid-run and one is
killed and then resumed (two offline directories, one run id).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from waiting import wait_for

MODEL = "Qwen/Qwen2.5-7B-Instruct"
STEPS = 60
KILL_AT = 25  # the crashed run logs steps 0..KILL_AT-1
RESUME_CUT, RESUME_FROM = 40, 30  # resumed run: first launch logs 0..39 then dies, second relogs from 30
BENCH = ("gsm8k", "math500", "aime25", "arithmetic")

# (method, gate, config name, hyper-parameters, held-out accuracy, {benchmark: [value per seed]}, special)
RUNS = [
    ("base", None, "base", {}, None, {"gsm8k": [70.0], "math500": [50.0], "aime25": [10.0], "arithmetic": [20.0]}),
    ("grpo", None, "grpo-eps0.1", {"eps_low": 0.1}, 0.30,
     {"gsm8k": [95.0, 96.0, 97.0], "math500": [40.0, 41.0, 42.0], "aime25": [0.0, 0.0, 0.0],
      "arithmetic": [30.0, 30.0, 30.0]}),
    ("grpo", None, "grpo-eps0.2", {"eps_low": 0.2}, 0.40,
     {"gsm8k": [80.0, 82.0, 84.0], "math500": [60.0, 61.0, 62.0], "aime25": [10.0, 13.3, 16.7],
      "arithmetic": [50.0, 52.0, 54.0]}),
    ("sapo", None, "sapo-t1", {"tau_pos": 1.05, "tau_neg": 1.0}, 0.35,
     {"gsm8k": [78.0, 79.0, 80.0], "math500": [55.0, 56.0, 57.0], "aime25": [10.0, 10.0, 10.0],
      "arithmetic": [40.0, 41.0, 42.0]}),
    ("sspo", "atanlog", "sspo-atanlog", {"tau_pos": 0.2, "tau_neg": 0.3}, 0.50,
     {"gsm8k": [90.0, 91.0, 92.0], "math500": [64.0, 65.0, 66.0], "aime25": [20.0, 20.0, 23.3],
      "arithmetic": [70.0, 72.0, 74.0]}),
    ("sspo", "expsig", "sspo-expsig", {"tau_pos": 0.2, "tau_neg": 0.3}, 0.45,
     {"gsm8k": [85.0, 86.0, None], "math500": [62.0, 64.0, None], "aime25": [13.3, 16.7, None],
      "arithmetic": [60.0, 61.0, None]}),
]
# Runs of a second model with no explicit base run: the Base row comes from eval_before (the training runs'
# greedy evaluation of their initial policy, written before training). The two cold-start seeds disagree.
TINY = "tiny"
TINY_RUNS = [
    ("grpo", None, "tiny-grpo", {"eps_low": 0.2}, 0.30, {"gsm8k": [None, None], "arithmetic": [40.0, 44.0]}),
    ("sspo", "atanlog", "tiny-sspo", {"tau_pos": 0.2, "tau_neg": 0.3}, 0.50,
     {"gsm8k": [None, None], "arithmetic": [50.0, 56.0]}),
]
# eval_before per config and seed;
# grpo-eps0.1 (model with an explicit base run) disagrees with that base run on arithmetic: the base run wins.
BEFORE = {"tiny-grpo": {"arithmetic": [20.0, 30.0], "gsm8k": [5.0, 5.0]},
          "tiny-sspo": {"arithmetic": [20.0, 30.0], "gsm8k": [5.0, 5.0]},
          "grpo-eps0.1": {"arithmetic": [21.0, 21.0, 21.0]}}
ALL_RUNS = RUNS + TINY_RUNS
#: The evaluation profile every result here was scored under (one protocol: the tables accept them side by side).
PROFILE = {"backend": "hf", "dtype": "float32", "max_new_tokens": 512, "prompt": "zero-shot-test", "chat_template": "none",
           "chat_template_kwargs": "{}", "stop": "greedy-eos-or-budget", "checker": "test", "id": "test-profile"}
CRASHED = ("sspo-expsig", 2)  # SIGKILLed at step KILL_AT, no summary
RESUMED = ("sspo-atanlog", 2)
RESUME_MARK = 1000.0  # the killed first launch logs reward + 1000 at steps it later re-logs


def run_id(cfg_name: str, seed: int) -> str:
    return f"{cfg_name.replace('.', '')}-s{seed}"


def reward(method_idx: int, seed: int, step: int) -> float:
    return 0.1 * method_idx + 0.01 * step + 0.05 * ((seed * 7 + step * 3) % 5)


def config(method, gate, cfg_name, hp, seed) -> dict:
    model = TINY if cfg_name.startswith(TINY) else MODEL
    return {"objective": {"name": method, **hp}, "gate": {"name": gate or "clip"},
            "model": {"name": model}, "dataset": {"name": "arithmetic"}, "trainer": {"mu": 2}, "seed": seed}


def wandb_leet_cli() -> str | None:
    """The installed wandb's CLI when it has W&B's Go reader ``wandb leet inspect`` (wandb >= 0.31), else None."""
    import shutil

    cli = shutil.which("wandb", path=os.path.dirname(sys.executable)) or shutil.which("wandb")
    if cli is None:
        return None
    ok = subprocess.run([cli, "leet", "inspect", "--help"], capture_output=True).returncode == 0
    return cli if ok else None


def flushes_fast() -> bool:
    """Whether the installed wandb can flush its offline file within a second (``_settings``)."""
    import wandb

    return "x_transaction_log_flush_interval" in getattr(wandb.Settings, "model_fields", {})


def _settings(wandb):
    """W&B 0.31 flushes the .wandb file every 15 s by default (a SIGKILL loses what it buffered); older releases
    have no such setting and write at once."""
    fields = getattr(wandb.Settings, "model_fields", {})
    return wandb.Settings(**({"x_transaction_log_flush_interval": 0.2} if "x_transaction_log_flush_interval" in fields
                             else {}))


def write_one(root: str, idx: int, seed: int, steps: range, summary: bool, mark: float = 0.0) -> None:
    import wandb

    method, gate, cfg_name, hp, heldout, evals = ALL_RUNS[idx]
    run = wandb.init(mode="offline", dir=root, project="sspo-test", id=run_id(cfg_name, seed),
                     name=f"{cfg_name}-seed{seed}", config=config(method, gate, cfg_name, hp, seed),
                     group=cfg_name, job_type=method if not gate else f"{method}-{gate}", resume="allow",
                     settings=_settings(wandb))
    for b, vals in BEFORE.get(cfg_name, {}).items():  # evaluated before the first training step
        run.summary[f"eval_before/{b}/pass@1"] = vals[seed]
        run.summary[f"eval_before/{b}/n"] = 200
        run.summary.update({f"eval_before/{b}/profile.{f}": v for f, v in PROFILE.items()})
    if method != "base":
        for s in steps:
            r = reward(idx, seed, s) + (mark if s >= RESUME_FROM else 0.0)
            run.log({"train/reward": r, "train/entropy": 1.0 - 0.005 * s, "train/global_step": s,
                     "train/objective/seq_weight_var": 0.01 * (1 + idx) * (1 + s % 3)})
            if s % 20 == 19:  # the held-out eval: a separate log call at the same global step
                run.log({"train/heldout_accuracy": heldout, "train/global_step": s})
    if summary:
        for b in BENCH:
            if evals.get(b, [None] * 3)[seed] is not None:
                run.summary[f"eval/{b}/pass@1"] = evals[b][seed]
                run.summary.update({f"eval/{b}/profile.{f}": v for f, v in PROFILE.items()})
        run.finish()


def write_all(root: str) -> None:
    for idx, (_, _, cfg_name, _, _, evals) in enumerate(ALL_RUNS):
        for seed in range(len(evals["gsm8k"])):
            if (cfg_name, seed) == CRASHED:
                _killed_launch(root, idx, seed, KILL_AT)
            elif (cfg_name, seed) == RESUMED:
                _killed_launch(root, idx, seed, RESUME_CUT, mark=RESUME_MARK)
                time.sleep(1.1)  # offline dirs are named by the second they start
                write_one(root, idx, seed, range(RESUME_FROM, STEPS), summary=True)
            else:
                write_one(root, idx, seed, range(STEPS), summary=True)


def _killed_launch(root: str, idx: int, seed: int, n_steps: int, mark: float = 0.0) -> None:
    """Log n_steps in a child process, then SIGKILL its whole process group (the job and its wandb-core, as a
    pre-empted SLURM job): no exit record is written."""
    code = (f"import sys, time; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import report_helpers as h; h.write_one({root!r}, {idx}, {seed}, range({n_steps}), False, {mark}); "
            "print('logged', flush=True); time.sleep(120)")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # its own wandb-core, killed with it
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "logged", line
        if flushes_fast():  # wandb-core writes what it was sent within its flush interval: wait until it is on disk
            wait_for(lambda: _last_row_on_disk(root, run_id(ALL_RUNS[idx][2], seed), n_steps),
                     "the killed launch's last row in its offline file", alive=lambda: proc.poll() is None)
        else:  # older releases cannot be told to flush: what they hold at the kill is lost, as for a killed job
            time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _last_row_on_disk(root: str, rid: str, n_steps: int) -> bool:
    """The last ``run.log`` of ``write_one(..., range(n_steps))`` is in the (only) offline segment of ``rid``."""
    from sspo_exp.report.wandb_offline import read_segment

    (seg_dir,) = Path(root).glob(f"wandb/offline-run-*-{rid}")
    last = n_steps - 1
    key = "train/heldout_accuracy" if last % 20 == 19 else "train/reward"  # the held-out row follows the reward row
    return any(r.get("train/global_step") == last and key in r for r in read_segment(seg_dir).history)


if __name__ == "__main__":
    os.environ.setdefault("WANDB_SILENT", "true")
    write_all(sys.argv[1])
