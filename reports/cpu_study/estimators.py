"""Issue 15, item 6: on one real mu = 4 run, the stale-step variance of the sequence importance weight s_i as the
trainer logs it (pooled over the whole optimizer step, sspo_exp/train/diagnostics.py) against the estimator used
before issue 11 (the population variance within each micro-batch, averaged over the step's micro-batches).

The run is the study's regime (conf/experiment/cpu_study.yaml, SSPO atanlog, seed 0, at the learning rate 2e-4 of an
earlier design: its weights deviate more than at the study's 1e-4) with 4 micro-batches of 8
completions per optimizer step (trainer.per_device_batch_size=8: each micro-batch is one prompt's group of G = 8),
so the two estimators can differ. Every
micro-batch's sufficient statistics are recorded as the trainer adds them (a wrapper around StepPool.add; the
training itself is unchanged), and both estimators are computed from the same records.

    python reports/cpu_study/estimators.py [OUTPUT_ROOT]    # writes reports/cpu_study/estimators.{json,md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OVERRIDES = ["experiment=cpu_study", "objective=sspo", "gate=atanlog", "seed=0", "trainer.per_device_batch_size=8",
             "trainer.learning_rate=2e-4"]  # the published numbers' run (sspo-atanlog-s0-58b61a32): an earlier design's rate


def main(output_root: str = "runs/cpu_study_estimators") -> dict:
    import torch
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR
    from sspo_exp.objectives import pooled_metrics
    from sspo_exp.train import diagnostics
    from sspo_exp.train.run import run_id, train

    torch.set_num_threads(1)
    records: list[tuple[list[float], bool, int | None]] = []
    original = diagnostics.StepPool.add

    def recording_add(self, mode, sums, entropy_sum, *, last, rollout_step):
        if mode == "train":
            records.append((sums.detach().double().tolist(), last, rollout_step))
        return original(self, mode, sums, entropy_sum, last=last, rollout_step=rollout_step)

    diagnostics.StepPool.add = recording_add
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
            cfg = compose("train", overrides=[*OVERRIDES, f"output_root={output_root}"])
        train(cfg)
    finally:
        diagnostics.StepPool.add = original
    steps, current = [], []
    for sums, last, k in records:
        current.append(sums)
        if last:
            steps.append((current, k))
            current = []
    stale = [(mbs, k) for mbs, k in steps if k and k > 0]
    if not stale:
        raise SystemExit("no stale step recorded: was the run already finished? (delete its run directory)")
    pooled = [pooled_metrics(np.sum(mbs, axis=0))["seq_weight_var"] for mbs, _ in stale]
    within = [float(np.mean([pooled_metrics(mb)["seq_weight_var"] for mb in mbs])) for mbs, _ in stale]
    b = [int(mbs[0][0]) for mbs, _ in stale]  # responses per micro-batch
    result = {
        "overrides": OVERRIDES, "run_id": run_id(cfg), "stale_steps": len(stale), "micro_batches_per_step": len(stale[0][0]),
        "responses_per_micro_batch": b[0],
        "pooled_mean_over_stale_steps": float(np.mean(pooled)),
        "within_micro_batch_mean_over_stale_steps": float(np.mean(within)),
        "ratio_within_over_pooled": float(np.mean(within) / np.mean(pooled)),
        "expected_ratio_if_micro_batches_were_random_draws": (b[0] - 1) / b[0],
        "per_step": [{"pooled": p, "within": w} for p, w in zip(pooled, within)],
    }  # fmt: skip
    (HERE / "estimators.json").write_text(json.dumps(result, indent=1) + "\n")
    (HERE / "estimators.md").write_text(
        f"Stale-step Var(s_i) on one mu = 4 run ({' '.join(OVERRIDES)}; run {result['run_id']}), {len(stale)} stale steps, "
        f"{result['micro_batches_per_step']} micro-batches of {b[0]} responses per step:\n\n"
        f"| estimator | mean over stale steps |\n|---|---|\n"
        f"| pooled over the optimizer step (logged since issue 11) | {result['pooled_mean_over_stale_steps']:.4e} |\n"
        f"| within each micro-batch, averaged over micro-batches (before) | "
        f"{result['within_micro_batch_mean_over_stale_steps']:.4e} |\n\n"
        f"within / pooled = {result['ratio_within_over_pooled']:.3f}; for micro-batches drawn at random from the "
        f"step the expectation is (b-1)/b = {result['expected_ratio_if_micro_batches_were_random_draws']:.3f}, "
        f"and a micro-batch whose weights are more alike than the step's (e.g. one prompt's group) lowers it "
        f"further.\n")
    return result


if __name__ == "__main__":
    print(json.dumps({k: v for k, v in main(*sys.argv[1:]).items() if k != "per_step"}, indent=1))
