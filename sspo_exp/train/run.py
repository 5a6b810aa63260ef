"""``train(cfg) -> metrics``: validate → build parts → run (or resume) → summarise.

A run's identity is a hash of its *meaningful* config (``run_id``): logging-only keys (``wandb.*``,
``output_root``, ``launcher``, ``hydra``) do not enter it, nor does the gate of a non-SSPO objective. The run
lives in ``${output_root}/${run_id}/``: TRL checkpoints (``checkpoint-N/``: model, optimizer, scheduler, RNG,
trainer state), ``wandb/`` (offline by default), ``heldout_before.json``, ``eval_before/`` and ``eval/`` (benchmark
results of ``final_eval``, see ``final_eval.py``) and ``summary.json``. Launching the same config again resumes from
the last checkpoint and the same W&B run id; a finished run is not retrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sspo_exp.train.config import build_objective, grpo_config, sharded_engine, train_dtype, validate

#: Top-level keys that only say where/how to log, launch or evaluate; they never change what is trained.
LOGGING_KEYS = ("wandb", "output_root", "launcher", "hydra", "final_eval")
#: Trainer keys of the same kind: in-training evaluation and where a vLLM server runs.
TRAINER_LOGGING_KEYS = ("eval_steps", "eval_samples", "vllm")


def meaningful_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without logging-only keys (and without ``gate`` unless the objective is SSPO)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in LOGGING_KEYS:
        data.pop(key, None)
    for key in TRAINER_LOGGING_KEYS:
        data.get("trainer", {}).pop(key, None)
    if data.get("objective", {}).get("name") != "sspo":
        data.pop("gate", None)
    return data


def _digest(data: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:n]


def job_type(cfg: DictConfig) -> str:
    """``objective`` or ``objective-gate`` (SSPO), e.g. ``sspo-atanlog``, ``grpo``."""
    name = cfg.objective.name
    return f"{name}-{cfg.gate.name}" if name == "sspo" else name


def run_id(cfg: DictConfig) -> str:
    """Deterministic W&B id and directory name: ``<job_type>-s<seed>-<hash of the meaningful config>``."""
    return f"{job_type(cfg)}-s{cfg.seed}-{_digest(meaningful_config(cfg))}"


def group_name(cfg: DictConfig) -> str:
    """The setting without the seed, so the seeds of one setting share a W&B group."""
    setting = meaningful_config(cfg)
    setting.pop("seed", None)
    return f"{cfg.model.name}-{cfg.dataset.name}-{job_type(cfg)}-mu{cfg.trainer.mu}-{_digest(setting, 6)}"


def tags(cfg: DictConfig) -> list[str]:
    derived = [cfg.objective.name, f"model:{cfg.model.name}", f"dataset:{cfg.dataset.name}", f"mu:{cfg.trainer.mu}", f"seed:{cfg.seed}"]
    if cfg.objective.name == "sspo":
        derived.append(f"gate:{cfg.gate.name}")
    return derived + [str(t) for t in cfg.wandb.get("tags") or []]


# ----------------------------------------------------------------------------------------------- parts
def load_policy(cfg: DictConfig):
    """(model, tokenizer): ``model.path`` (an HF id or a local HF directory) if set, else the tiny model.

    The weights are loaded in ``train_dtype(cfg)`` (float32 unless DeepSpeed and ``model.dtype=bfloat16``), not in
    the checkpoint's own dtype: AdamW must update fp32 master weights.
    """
    path = cfg.model.get("path")
    if not path:
        from sspo_exp.models import load_policy as load_tiny

        return load_tiny(cfg.model, cfg.dataset, cfg.seed)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # float32 master weights whatever the checkpoint's dtype (trainer.bf16 gives bf16 compute); config.train_dtype
    kwargs = {"dtype": getattr(torch, train_dtype(cfg))}
    if cfg.model.get("attn_implementation"):
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = cfg.model.get("chat_template") or "auto"
    if template != "auto":  # a Jinja template string replaces the tokenizer's own
        tokenizer.chat_template = template
    return model, tokenizer


def dataset_rows(dataset_cfg: DictConfig, split: str) -> list[dict[str, str]]:
    """Rows ``{id, question, answer, source}``: ``split="train"`` or ``"heldout"`` (``sspo_exp.data``)."""
    from sspo_exp.data import load_dataset_rows

    return load_dataset_rows(dataset_cfg, split)


def prompt_of(question: str, tokenizer, dataset_cfg: DictConfig) -> str:
    """The prompt text: the arithmetic task's own style (``compact`` for the tiny model), else the zero-shot
    ``<think>…</think> <answer>…</answer>`` prompt (chat template when the tokenizer has one) — the same
    builder evaluation uses (``sspo_exp.evaluation.run.prompt_fn_for``)."""
    from sspo_exp.evaluation.run import prompt_fn_for

    return prompt_fn_for(dataset_cfg.name, dataset_cfg)(question, tokenizer)


def train_dataset(cfg: DictConfig, tokenizer):
    """TRL's prompt dataset (columns ``prompt``, ``answer``); prompts over ``max_prompt_length`` tokens are dropped."""
    from datasets import Dataset

    rows, kept = dataset_rows(cfg.dataset, "train"), []
    for row in rows:
        prompt = prompt_of(row["question"], tokenizer, cfg.dataset)
        if len(tokenizer(prompt)["input_ids"]) <= cfg.trainer.max_prompt_length:
            kept.append({"prompt": prompt, "answer": row["answer"],
                         **{k: row[k] for k in ("checker", "setup") if k in row}})  # hook (codeact): task columns
    if not kept:
        raise ValueError(f"trainer.max_prompt_length={cfg.trainer.max_prompt_length}: every training prompt is longer")
    if len(kept) < len(rows):
        print(f"dropped {len(rows) - len(kept)} of {len(rows)} prompts longer than max_prompt_length tokens")
    return Dataset.from_list(kept)


def evaluator(cfg: DictConfig, tokenizer, heldout: list[dict[str, str]], benchmarks) -> Any:
    """Held-out Pass@1 (greedy decoding, the paper's answer check, ``sspo_exp.evaluation``) and the ``final_eval``
    benchmarks, memoised per policy state (``final_eval.Evaluator``)."""
    from sspo_exp.train.final_eval import Evaluator

    return Evaluator(cfg, tokenizer, heldout, lambda question, tok: prompt_of(question, tok, cfg.dataset), benchmarks)


# ----------------------------------------------------------------------------------------------- train
def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one config (resuming its run directory if it exists); return the summary metrics."""
    import wandb
    from transformers.integrations import WandbCallback

    from sspo_exp.codeact.rollout import trainer_kwargs as codeact_trainer_kwargs
    from sspo_exp.rewards import REWARD_FUNCS
    from sspo_exp.train import final_eval
    from sspo_exp.train.callbacks import HeldoutEval, ProgressLine
    from sspo_exp.train.trainer import SSPOTrainer

    plan = validate(cfg)  # before anything heavy (final_eval too)
    fe = final_eval.settings(cfg)
    objective = build_objective(cfg)
    rid = run_id(cfg)
    run_dir = Path(cfg.output_root).expanduser().resolve() / rid
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        print(f"run {rid} already finished; summary: {summary_path}")
        return summary
    checkpoint = last_complete_checkpoint(run_dir)
    main = int(os.environ.get("RANK", "0")) == 0  # accelerate/torchrun: only process 0 logs and writes files
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    run = None if not main else wandb.init(
        dir=str(run_dir), id=rid, name=rid, resume="allow", mode=cfg.wandb.mode, project=cfg.wandb.project,
        entity=cfg.wandb.get("entity"), group=group_name(cfg), job_type=job_type(cfg), tags=tags(cfg),
        config=OmegaConf.to_container(cfg, resolve=True), settings=wandb_settings(wandb),
    )  # fmt: skip
    try:
        # the training arguments first: under `accelerate launch` with DeepSpeed ZeRO-3 they switch on
        # transformers' zero.Init, so from_pretrained then loads each process's shard, not the whole model
        args = grpo_config(cfg, plan, str(run_dir))
        model, tokenizer = load_policy(cfg)
        if not sharded_engine():  # DeepSpeed / FSDP place (and shard) the weights themselves when training starts
            model.to(args.device)  # so the before-RL evaluation runs where training will, not on the CPU
        heldout = dataset_rows(cfg.dataset, "heldout")[: cfg.trainer.eval_samples]
        ev = evaluator(cfg, tokenizer, heldout, final_eval.load_benchmarks(cfg))  # benchmark data before compute
        before_path = run_dir / "heldout_before.json"
        if checkpoint and before_path.exists():
            before = json.loads(before_path.read_text())["heldout_accuracy"]
        else:  # every process evaluates (same rows, same greedy outputs), process 0 records
            before = ev.heldout(model, "before")[0].accuracy if heldout else float("nan")
            if main:
                before_path.write_text(json.dumps({"heldout_accuracy": before}))
                run.log({"train/heldout_accuracy": before, "train/global_step": 0})
        eval_before = {}
        if fe["before"]:  # the initial policy (not yet loaded from a checkpoint); results on disk are not redone
            eval_before = final_eval.stored(run_dir, final_eval.BEFORE, fe["benchmarks"])
            eval_before.update(ev.run_all(model, "before", final_eval.BEFORE, run_dir, main, skip=tuple(eval_before)))
            if main:  # in the W&B summary at once, so a run killed later still carries its Base-row numbers
                run.summary.update(final_eval.summary_keys(eval_before, final_eval.BEFORE))
        data = train_dataset(cfg, tokenizer)
        trainer = SSPOTrainer(
            model=model, processing_class=tokenizer, args=args, train_dataset=data,
            objective=objective,  # its loss_agg also sets the gradient-accumulation scaling
            callbacks=[WandbCallback(), HeldoutEval(ev, cfg.trainer.eval_steps, fe["every_steps"]), ProgressLine()],
            # hook (codeact): dataset=codeact swaps in multi-turn episodes (rollout_func) and their rewards
            **{"reward_funcs": list(REWARD_FUNCS), **codeact_trainer_kwargs(cfg, data)},
        )  # fmt: skip
        _attach(trainer)
        if checkpoint and main:
            replay_history(run, checkpoint, before)
        start = time.time()
        trainer.train(resume_from_checkpoint=checkpoint)
        step = trainer.state.global_step
        after = trainer.heldout_accuracy_after
        if after is None:  # resumed from a checkpoint at max_steps: no step ran, evaluate the final policy now
            after = ev.heldout(trainer.model, step)[0].accuracy if heldout else float("nan")
        eval_start = time.time()
        last_checkpoint = str(run_dir / f"checkpoint-{step}")
        eval_after = ev.run_all(trainer.model, step, final_eval.AFTER, run_dir, main, checkpoint=last_checkpoint)
        if not main:
            return {}
        eval_keys = {**final_eval.summary_keys(eval_before, final_eval.BEFORE),
                     **final_eval.summary_keys(eval_after, final_eval.AFTER)}
        reward_first, reward_last = reward_windows(trainer.state.log_history)
        summary = {
            "run_id": rid,
            "run_dir": str(run_dir),
            "wandb_dir": run.dir and str(Path(run.dir).parent),
            "resumed_from": checkpoint,
            "global_step": trainer.state.global_step,
            "heldout_accuracy_before": before,
            "heldout_accuracy_after": after,
            "train_reward_first": reward_first,
            "train_reward_last": reward_last,
            "seconds": round(time.time() - start, 1),
            "final_eval_seconds": round(time.time() - eval_start, 1),
            **eval_keys,
        }
        run.summary.update({"heldout_accuracy/before": before, "heldout_accuracy/after": after, **eval_keys})
        summary_path.write_text(json.dumps(summary, indent=2))
        print_summary(summary)
        return summary
    finally:
        if main:
            wandb.finish()
            wandb.teardown()  # wandb 0.31: finish() can return before the offline file is flushed; teardown waits


#: wandb 0.31 writes the offline ``.wandb`` file every 15 s by default; a killed run would lose up to that much.
WANDB_FLUSH_SECONDS = 1.0


def wandb_settings(wandb):
    """``wandb.Settings`` flushing the run file every ``WANDB_FLUSH_SECONDS`` (when this wandb has the setting)."""
    if "x_transaction_log_flush_interval" in wandb.Settings.model_fields:
        return wandb.Settings(x_transaction_log_flush_interval=WANDB_FLUSH_SECONDS)
    return wandb.Settings()


def checkpoint_is_complete(path: Path) -> bool:
    """A ``checkpoint-N`` directory holds the model weights, the optimizer state and a readable ``trainer_state.json``.

    transformers writes the weights, then the optimizer/scheduler/RNG state, then ``trainer_state.json`` last, so
    a process killed while saving leaves a directory without it (or with it cut short). Weights: ``model.safetensors``
    (or its shard index, or ``pytorch_model*``; FSDP: ``pytorch_model_fsdp_0/``); optimizer: ``optimizer.pt``
    (FSDP: ``optimizer.bin`` / ``optimizer_0/``; DeepSpeed: its ``global_step*/`` directory).
    """
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
               "pytorch_model_fsdp_0", "pytorch_model_fsdp.bin")  # fmt: skip
    optimizer = ("optimizer.pt", "optimizer.bin", "optimizer_0")
    has_weights = any((path / name).exists() for name in weights)
    has_optimizer = any((path / name).exists() for name in optimizer) or any(path.glob("global_step*/*optim_states.pt"))
    return has_weights and has_optimizer


def last_complete_checkpoint(run_dir: Path) -> str | None:
    """The highest-step complete ``checkpoint-N`` of ``run_dir`` (incomplete ones, cut by a kill, are skipped)."""
    steps = []
    for path in Path(run_dir).glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if path.is_dir() and suffix.isdigit():
            steps.append((int(suffix), path))
    for step, path in sorted(steps, reverse=True):
        if checkpoint_is_complete(path):
            return str(path)
        print(f"skipping incomplete checkpoint {path} (cut while saving)", flush=True)
    return None


def replay_history(run, checkpoint: str, before: float) -> None:
    """Re-log the W&B rows of steps 0..checkpoint from the checkpoint's ``trainer_state.json``.

    A killed process loses what W&B had not yet written to its offline file (wandb 0.31 buffers it), so the
    resumed segment re-logs every step up to the checkpoint, with the exact values TRL logged (transformers keeps
    them in ``log_history``); steps after the checkpoint are re-run and logged again. A reader merging segments
    by ``train/global_step`` (later segments win) therefore sees each step once, with no gap.
    """
    from transformers.integrations.integration_utils import rewrite_logs

    run.log({"train/heldout_accuracy": before, "train/global_step": 0})
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    for entry in state["log_history"]:
        logs = {k: v for k, v in entry.items() if k != "step"}
        run.log({**rewrite_logs(logs), "train/global_step": entry["step"]})


def _attach(trainer) -> None:
    """Give our callbacks a handle on the trainer (transformers passes only the model); drop the dict printer."""
    from transformers.trainer_callback import ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.heldout_accuracy_after = None
    for cb in trainer.callback_handler.callbacks:
        if hasattr(cb, "trainer"):
            cb.trainer = trainer


REWARD_WINDOW = 5  #: summary.json's train_reward_first / _last average this many logged rollouts


def reward_windows(log_history: list[dict]) -> tuple[float | None, float | None]:
    """Mean training reward over the first and the last ``REWARD_WINDOW`` logged rollouts (a single rollout of a
    few dozen completions is too noisy to compare); ``None`` when no reward was logged."""
    rewards = [h["reward"] for h in log_history if "reward" in h]
    if not rewards:
        return None, None
    first, last = rewards[:REWARD_WINDOW], rewards[-REWARD_WINDOW:]
    return sum(first) / len(first), sum(last) / len(last)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def print_summary(summary: dict[str, Any]) -> None:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    print(
        "\n".join(
            [
                "=" * 72,
                f"run {summary['run_id']}  ({summary['global_step']} optimizer steps, {summary['seconds']} s)",
                f"held-out greedy accuracy: before RL {pct(summary['heldout_accuracy_before'])}"
                f"  ->  after RL {pct(summary['heldout_accuracy_after'])}",
                f"train reward (mean of {REWARD_WINDOW} rollouts): first {_fmt(summary['train_reward_first'])}"
                f"  ->  last {_fmt(summary['train_reward_last'])}",
                *_benchmark_lines(summary),
                f"run dir:   {summary['run_dir']}",
                f"W&B run:   {summary['wandb_dir']}",
                "=" * 72,
            ]
        ),
        flush=True,
    )


def _benchmark_lines(summary: dict[str, Any]) -> list[str]:
    """``benchmark arithmetic (n=200): Pass@1 51.5% -> 67.5%`` per ``final_eval`` benchmark."""
    lines = []
    for key in summary:
        if key.startswith("eval/") and key.endswith("/pass@1"):
            name = key.split("/")[1]
            before = summary.get(f"eval_before/{name}/pass@1")
            start = "" if before is None else f"{before:.1f}% -> "
            lines.append(f"benchmark {name} (n={summary[f'eval/{name}/n']}): Pass@1 {start}{summary[key]:.1f}%")
    return lines
