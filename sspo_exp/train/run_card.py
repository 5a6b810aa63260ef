"""What a run's W&B config and its folder's README say about it: the method, the setting, the code, how to resume
and how to report (instead of TRL's empty model card, "a fine-tuned version of [None]")."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from omegaconf import OmegaConf

from sspo_exp.train.config import TrainPlan

#: Config blocks that only some objectives read: left out of the W&B config of the others, so a dashboard filter on
#: ``gate.*`` finds only SSPO runs (the run id already ignores them, sspo_exp.identity).
OBJECTIVE_ONLY_BLOCKS = {"gate": ("sspo",)}


def hparams(plan: TrainPlan) -> dict[str, Any]:
    """The objective's hyper-parameters, one place whatever the objective (W&B config ``hparams.*``): name, label,
    loss aggregation, and exactly the ones it takes (τ for SSPO and SAPO, ε for GRPO/GSPO/GMPO)."""
    spec = asdict(plan.objective)
    return {"label": plan.objective.label, **{k: v for k, v in spec.items() if v is not None}}


def wandb_config(plan: TrainPlan, code: dict[str, Any]) -> dict[str, Any]:
    """The W&B run config: our resolved config (less the blocks its objective does not read), ``hparams``, the
    derived TRL batch settings, the identity and the code version (not TRL's ~220 arguments)."""
    config = OmegaConf.to_container(plan.cfg, resolve=True)
    for block, objectives in OBJECTIVE_ONLY_BLOCKS.items():
        if plan.objective.name not in objectives:
            config.pop(block, None)
    ident = plan.identity
    return {**config, "hparams": hparams(plan), "trl": plan.trl_batch,
            "identity": {"run_id": ident.run_id, "setting_hash": ident.setting_hash, "group": ident.group,
                         "cold_start": plan.cold_start_id},
            "code": code}  # fmt: skip


def readme(plan: TrainPlan, code: dict[str, Any]) -> str:
    """The run folder's README.md."""
    cfg, ident = plan.cfg, plan.identity
    params = ", ".join(f"{k}={v}" for k, v in hparams(plan).items() if k not in ("label", "name"))
    commit = (code.get("commit") or "unknown")[:12] + (" (uncommitted changes)" if code.get("dirty") else "")
    return "\n".join([
        f"# {ident.name}",
        "",
        "An RL run of sspo-exp (Soft Sequence Policy Optimization, arXiv 2602.19327, and its baselines).",
        "",
        f"- method: **{plan.objective.label}** ({params}); μ = {cfg.trainer.mu}, G = {cfg.trainer.num_generations}",
        f"- model: {cfg.model.name} (initial policy: {plan.cold_start_id or cfg.model.get('path')}); "
        f"dataset: {cfg.dataset.name}; seed {cfg.seed}",
        f"- run id: `{ident.run_id}`; W&B group: `{ident.group}` (the seeds of one setting share it)",
        f"- code: sspo-exp {code.get('version')} at commit {commit}",
        "",
        "Files: `config.yaml` (the resolved config), `run.json` (identity, batch settings, code of each segment),",
        "`checkpoint-*` (the newest complete one is resumed), `eval_before/`, `eval/` (results), `summary.json`",
        "(written when the run ends), `wandb/` (the offline W&B run).",
        "",
        "Resume: launch the same command again (the run id is a hash of the config): training continues from the",
        "newest complete checkpoint under the same W&B run id; a finished run is not retrained.",
        "",
        f"Report: `sspo-exp report --offline {plan.run.root} --table mini --curves` (or `--table 1` / `--table 2`).",
        "",
    ])
