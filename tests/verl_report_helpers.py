"""Write REAL W&B offline runs (the installed wandb) as verl 0.9 logs them: ``python tests/verl_report_helpers.py DIR``.

verl's layout: its resolved Hydra config (``actor_rollout_ref.actor...``, ``data...``, ``trainer...``), one row per
verl step logged with ``step=global_steps``: step 0 holds ``val_before_train``'s ``val-core/...`` metrics, steps
1..STEPS the training metrics (``critic/rewards/mean``, ``actor/entropy``, ``actor/objective/...``,
``training/global_step``), the last step also the final validation. Every number a test checks is defined here.
"""

from __future__ import annotations

import sys

MODEL = "Qwen/Qwen2.5-7B-Instruct"
STEPS = 6  # verl steps (rollouts); mu = 2 -> 12 optimizer steps
# (loss_mode, actor fields, {data_source: (before, after per seed)}, held-out after per seed)
RUNS = [
    ("sspo_atanlog", {"tau_pos": 0.2, "tau_neg": 0.3},
     {"gsm8k": (0.70, [0.90, 0.92]), "math500": (0.50, [0.64, 0.66]), "aime25": (0.10, [0.20, 0.2333])}, [0.5, 0.52]),
    ("vanilla", {"clip_ratio_low": 0.2, "clip_ratio_high": 0.2, "clip_ratio_c": 1e9},
     {"gsm8k": (0.70, [0.80, 0.84]), "math500": (0.50, [0.60, 0.62]), "aime25": (0.10, [0.10, 0.1667])}, [0.4, 0.41]),
    ("geo_mean", {"clip_ratio_low": 0.22314355131420976, "clip_ratio_high": 0.26236426446749106},  # eps 0.2 / 0.3
     {"gsm8k": (0.70, [0.85, 0.86])}, [0.45, 0.46]),
]


def verl_config(loss_mode: str, actor: dict, seed: int) -> dict:
    """The parts of verl's ppo_trainer config the report reads, in verl's nesting (plus a few it does not)."""
    return {
        "data": {"train_batch_size": 64, "max_response_length": 512, "seed": seed, "train_files": "train.parquet"},
        "actor_rollout_ref": {
            "model": {"path": MODEL},
            "actor": {"ppo_mini_batch_size": 32, "ppo_epochs": 1, "loss_agg_mode": "seq-mean-token-mean",
                      "policy_loss": {"loss_mode": loss_mode}, "tau_pos": 1.0, "tau_neg": 1.05, "clip_ratio": 0.2,
                      **actor},
            "rollout": {"n": 8, "name": "vllm"},
        },
        "algorithm": {"adv_estimator": "grpo"},
        "trainer": {"project_name": "sspo-table1-verl", "experiment_name": f"table1-{loss_mode}-seed{seed}",
                    "total_training_steps": STEPS, "val_before_train": True},
    }


def reward(idx: int, seed: int, step: int) -> float:
    return 0.5 + 0.1 * idx + 0.05 * step + 0.01 * seed


def write(root: str) -> None:
    import wandb

    for idx, (mode, actor, evals, heldout) in enumerate(RUNS):
        for seed in range(2):
            run = wandb.init(mode="offline", dir=root, project="sspo-table1-verl", name=f"table1-{mode}-seed{seed}",
                             config=verl_config(mode, actor, seed))
            val = lambda i: {f"val-core/{ds}/acc/mean@1": (v[0] if i == 0 else v[1][seed]) for ds, v in evals.items()}
            run.log({**val(0), "val-core/heldout/acc/mean@1": 0.3}, step=0)
            for s in range(1, STEPS + 1):
                row = {"critic/rewards/mean": reward(idx, seed, s), "critic/score/mean": reward(idx, seed, s),
                       "actor/entropy": 1.0 - 0.01 * s, "actor/pg_loss": 0.0, "training/global_step": s,
                       "training/epoch": 0, "actor/objective/seq_weight_var": 0.001 * s}
                if s == STEPS:
                    row.update({**val(1), "val-core/heldout/acc/mean@1": heldout[seed]})
                run.log(row, step=s)
            run.finish()


if __name__ == "__main__":
    write(sys.argv[1])
