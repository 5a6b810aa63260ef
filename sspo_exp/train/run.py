"""``train(cfg) -> metrics``: plan (validate once) → build parts → run (or resume) → summarise.

The plan (``sspo_exp.train.config.make_plan``, torch-free: ``sspo-exp train`` makes it before this module and torch
load) is passed down; nothing re-derives from the config after it: the objective, the cold start, the identity,
the evaluation settings and the run directory are the plan's. The run's identity (id, W&B group, names) is ``sspo_exp.identity``'s;
its directory, status, lease and checkpoints are ``sspo_exp.rundir.RunDir``'s; its evaluation is
``sspo_exp.evaluation.evaluator.Evaluator``'s; logged key names are ``sspo_exp.keys``'. Launching the same config
again resumes from the newest complete checkpoint and the same W&B run id; a finished run is not retrained; a run
another live process is training is refused (its lease).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
import wandb
from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from sspo_exp import keys
from sspo_exp.cpu import ThreadPlan, cpu_threads
from sspo_exp.codeact.rollout import trainer_kwargs as codeact_trainer_kwargs
from sspo_exp.data import load_dataset_rows
from sspo_exp.evaluation.evaluator import Evaluator, load_benchmarks
from sspo_exp.evaluation.provenance import code_version, git_info
from sspo_exp.models import encode
from sspo_exp.objectives import build as build_objective
from sspo_exp.rewards import REWARD_FUNCS
from sspo_exp.rundir import Lease
from sspo_exp.stages.policy import load_weights, spec_path
from sspo_exp.tasks import prompt_fn_for
from sspo_exp.train import wandb_run
from sspo_exp.train.callbacks import AlreadyTrained, HeldoutEval, InitialEval, ProgressLine, StopIfTrained, WandbLog
from sspo_exp.train.run_card import readme, wandb_config
from sspo_exp.train.config import (TrainPlan, check_local_paths, config_identity, grpo_config, make_plan,  # noqa: F401
                                   run_id, sharded_engine)  # run_id: re-exported
from sspo_exp.train.sharded import generation_model, refuse_sharding_on_cpu
from sspo_exp.train.trainer import SSPOTrainer


# ----------------------------------------------------------------------------------------------- a config's names
def group_name(cfg: DictConfig) -> str:
    """A config's W&B group (see :func:`run_id`)."""
    return config_identity(cfg).group


def tags(cfg: DictConfig) -> list[str]:
    """A config's W&B tags (see :func:`run_id`)."""
    return list(config_identity(cfg).tags)


# ----------------------------------------------------------------------------------------------- parts
def dataset_rows(dataset_cfg: DictConfig, split: str) -> list[dict[str, str]]:
    """Rows ``{id, question, answer, source}``: ``split="train"`` or ``"heldout"`` (``sspo_exp.data``)."""
    return load_dataset_rows(dataset_cfg, split)


def prompt_builder(cfg: DictConfig):
    """The run's prompt builder ``fn(question, tokenizer)``, from the task registry (``sspo_exp.tasks``): the same
    builder evaluation and the SFT cold start use."""
    return prompt_fn_for(cfg.dataset.name, cfg.dataset, (cfg.get("model") or {}).get("chat_template_kwargs"))


def prompt_of(question: str, tokenizer, dataset_cfg: DictConfig, chat_template_kwargs=None) -> str:
    """One prompt's text (see :func:`prompt_builder`)."""
    return prompt_fn_for(dataset_cfg.name, dataset_cfg, chat_template_kwargs)(question, tokenizer)


def train_dataset(cfg: DictConfig, tokenizer):
    """TRL's prompt dataset (columns ``prompt``, ``answer``); prompts over ``max_prompt_length`` tokens are dropped."""
    from datasets import Dataset  # pyarrow-backed: only when a run trains

    rows, kept, build = dataset_rows(cfg.dataset, "train"), [], prompt_builder(cfg)
    prompts = [build(row["question"], tokenizer) for row in rows]
    lengths = [len(ids) for ids in encode(tokenizer, prompts)]  # one batched call (sspo_exp.models.encode)
    for row, prompt, length in zip(rows, prompts, lengths):
        if length <= cfg.trainer.max_prompt_length:
            kept.append({"prompt": prompt, "answer": row["answer"],
                         **{k: row[k] for k in ("checker", "setup") if k in row}})  # CodeAct task columns
    if not kept:
        raise ValueError(f"trainer.max_prompt_length={cfg.trainer.max_prompt_length}: every training prompt is longer")
    if len(kept) < len(rows):
        print(f"dropped {len(rows) - len(kept)} of {len(rows)} prompts longer than max_prompt_length tokens")
    return Dataset.from_list(kept)


# ----------------------------------------------------------------------------------------------- train
def train(cfg: DictConfig, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train one config (resuming its run directory if it exists); return the summary metrics. ``callbacks``: extra
    trainer callbacks (an Optuna trial's pruning, ``sspo_exp.sweeps.pruning``)."""
    return run_plan(make_plan(cfg), callbacks)  # validation first: a bad config fails before anything heavy loads


def run_plan(plan: TrainPlan, callbacks: Sequence[TrainerCallback] = (),
             threads: ThreadPlan | None = None) -> dict[str, Any]:
    """Train a validated plan (see the module docstring); ``threads``: torch's threads for the cold start, then for
    training (:func:`set_cpu_threads`; None: leave them)."""
    run = plan.run
    summary = run.summary()
    if summary is not None:
        print(f"run {run.run_id} already finished; summary: {run.summary_file}")
        return summary
    check_local_paths(plan.cfg)  # on the machine that trains (a sweep's login node need not see them), before any file
    main = int(os.environ.get("RANK", "0")) == 0  # accelerate/torchrun: only process 0 logs and writes files
    if main:
        run.path.mkdir(parents=True, exist_ok=True)
    with Lease(run) if main else contextlib.nullcontext():
        return _train(plan, main, callbacks, threads)


def _train(plan: TrainPlan, main: bool, callbacks: Sequence[TrainerCallback],
           threads: ThreadPlan | None = None) -> dict[str, Any]:
    """Open the run, build the trainer, train, finish (evaluate, summarise)."""
    print(f"run {plan.run.run_id}  ({plan.identity.group}, seed {plan.cfg.seed})\n{plan.describe()}", flush=True)
    checkpoint = plan.run.newest_complete_checkpoint()
    checkpoint = str(checkpoint) if checkpoint else None
    # the initial policy first: its cold start (a cached stage, computed here by a single-process run) runs before
    # W&B opens and before GRPOConfig (ZeRO-3's init), and a multi-process launch whose stage is missing stops here
    cfg = plan.cfg
    init_path = spec_path(plan.cold_start, cfg.model, cfg.model.get("cold_start"), cfg.dataset)
    if threads is not None and threads.train != threads.stage:
        torch.set_num_threads(threads.train)
    wb, code = _open_run(plan, main, init_path)
    try:
        trainer, initial_eval, ev = _build_trainer(plan, main, init_path, wb, checkpoint, callbacks)
        start = time.time()
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        except AlreadyTrained:
            print(f"{checkpoint} is the last step: nothing left to train; evaluating it", flush=True)
        return _finish(plan, main, trainer, initial_eval, ev, wb, code, checkpoint, start)
    finally:
        if main:
            wandb.finish()
            wandb.teardown()  # wandb 0.31: finish() can return before the offline file is flushed; teardown waits


def set_cpu_threads(plan: TrainPlan, threads: ThreadPlan | None = None) -> ThreadPlan | None:
    """On the CPU (``trainer.use_cpu`` or no GPU), use ``threads`` (chosen before torch loaded; None:
    :func:`sspo_exp.cpu.cpu_threads` throughout) torch threads, the cold start's first; return them. Called by
    ``sspo-exp train`` before the cold start (a library caller of :func:`train` keeps its own setting)."""
    if threads is None:
        if not plan.cfg.trainer.get("use_cpu", False) and torch.cuda.is_available():
            return None
        n = cpu_threads()
        threads = ThreadPlan(n, n)
    torch.set_num_threads(threads.stage)
    stage = (f"; the cold start {threads.stage}, waiting passively (every core is busy; sharded: a process per shard)"
             if threads.stage != threads.train else "")
    print(f"torch threads: {threads.train} (cores free for this run; OMP_NUM_THREADS overrides{stage})", flush=True)
    return threads


def _open_run(plan: TrainPlan, main: bool, init_path: str):
    """Process 0: record which code trains this segment (run.json, config.yaml) and open the W&B run."""
    if not main:
        return None, {}
    run, ident = plan.run, plan.identity
    code = code_version(git_info())  # asked of git once per launch: this segment's, and the first segment's
    run.config_file.write_text(OmegaConf.to_yaml(plan.cfg, resolve=True))
    run.write_readme(readme(plan, code))
    run.write_info({"run_id": run.run_id, "group": ident.group, "setting_hash": ident.setting_hash,
                    "cold_start": plan.cold_start_id, "initial_policy": init_path,
                    "trl": plan.trl_batch, "code": code, "first_code": run.info().get("first_code") or code})  # fmt: skip
    w = plan.cfg.wandb
    wb = wandb.init(dir=str(run.path), id=run.run_id, name=ident.name, resume="allow", mode=w.mode, project=w.project,
                    entity=w.get("entity"), group=ident.group, job_type=ident.job_type, tags=list(ident.tags),
                    config=wandb_config(plan, code), settings=wandb_settings(wandb))  # fmt: skip
    return wb, code


def _build_trainer(plan: TrainPlan, main: bool, init_path: str, wb, checkpoint: str | None,
                   callbacks: Sequence[TrainerCallback]):
    """The policy, its before-RL evaluation and the trainer with our objective and callbacks."""
    cfg = plan.cfg
    # the training arguments first: under `accelerate launch` with DeepSpeed ZeRO-3 they switch on
    # transformers' zero.Init, so from_pretrained then loads each process's shard, not the whole model
    args = grpo_config(cfg, plan.batch, str(plan.run.path))
    refuse_sharding_on_cpu(args.device)  # before the model loads: accelerate would not shard here
    model, tokenizer = load_weights(init_path, cfg.model, plan.dtype)
    if not sharded_engine():  # DeepSpeed / FSDP place (and shard) the weights themselves when training starts
        model.to(args.device)  # so the before-RL evaluation runs where training will, not on the CPU
    heldout = dataset_rows(cfg.dataset, "heldout")[: plan.eval.heldout_samples]
    ev = Evaluator(plan.eval, tokenizer, heldout, prompt_builder(cfg), load_benchmarks(plan.eval),
                   plan.run, main, OmegaConf.to_container(cfg, resolve=True))  # fmt: skip
    # the initial policy: every process evaluates (same rows, same greedy outputs), process 0 records; a resumed
    # run reads the files. Unsharded: here, before the trainer exists; under DeepSpeed / FSDP the loaded model
    # holds no usable weights yet, so at on_train_begin, once the engine does (callbacks.InitialEval)
    initial_eval = InitialEval(ev)
    if main:  # in the W&B summary at once, so a run killed later still carries its Base-row numbers
        initial_eval.when_scored(wb.summary.update)
    if not sharded_engine():
        initial_eval.score(model)
    data = train_dataset(cfg, tokenizer)
    trainer = SSPOTrainer(
        model=model, processing_class=tokenizer, args=args, train_dataset=data,
        objective=build_objective(plan.objective),  # its loss_agg also sets the gradient-accumulation scaling
        callbacks=[WandbLog(), initial_eval, HeldoutEval(ev), ProgressLine(), *callbacks,
                   StopIfTrained()],  # last: a run resumed at max_steps trains no extra step
        # CodeAct datasets: multi-turn episodes in the sandbox (rollout_func) and their rewards
        **{"reward_funcs": list(REWARD_FUNCS), **codeact_trainer_kwargs(plan.codeact_env, data)},
    )  # fmt: skip
    _attach(trainer)
    if trainer.accelerator.num_processes != plan.world_size:  # e.g. a launcher that set WORLD_SIZE but no group
        raise RuntimeError(f"the plan is for WORLD_SIZE={plan.world_size} processes but accelerate runs "
                           f"{trainer.accelerator.num_processes} ({trainer.accelerator.distributed_type})")
    if main:  # log only what W&B lacks, so a resumed run shows each step once, in order (train/wandb_run.py);
        # it needs the before-RL accuracy: now when unsharded, at on_train_begin (before any step's row) when sharded
        initial_eval.when_scored(lambda initial: wandb_run.resume(wb, trainer, checkpoint, before_rl(initial)))
    return trainer, initial_eval, ev


def _finish(plan: TrainPlan, main: bool, trainer, initial_eval, ev, wb, code, checkpoint, start) -> dict[str, Any]:
    """Score the trained policy, write summary.json and the W&B summary (process 0), print the summary."""
    before = before_rl(initial_eval.result)
    step = trainer.state.global_step
    eval_start = time.time()
    with generation_model(trainer) as policy:  # gathers ZeRO-3 / FSDP1 weights (sspo_exp/train/sharded.py)
        final = ev.at_step(policy, step, final=True)  # memoised: the last step's callback computed it
    if not main:
        return {}
    results = {k: v for k, v in {**initial_eval.result, **final}.items() if keys.parse_eval_key(k)}
    reward_first, reward_last = reward_windows(trainer.state.log_history)
    run = plan.run
    summary = {
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "wandb_dir": wb.dir and str(os.path.dirname(wb.dir)),
        "resumed_from": checkpoint,
        "global_step": step,
        keys.HELDOUT_BEFORE: before,
        keys.HELDOUT: final.get(keys.HELDOUT, float("nan")),
        "train_reward_first": reward_first,
        "train_reward_last": reward_last,
        "seconds": round(time.time() - start, 1),
        "final_eval_seconds": round(time.time() - eval_start, 1),
        "code": code,
        **results,
    }
    wb.summary.update({keys.HELDOUT_BEFORE: before, keys.HELDOUT: summary[keys.HELDOUT], **results})
    run.write_summary(summary)
    print_summary(summary)
    return summary


def before_rl(initial: dict[str, float]) -> float:
    """The initial policy's held-out accuracy in ``Evaluator.initial``'s result (NaN without a held-out set)."""
    return initial.get(keys.HELDOUT_BEFORE, float("nan"))


#: wandb 0.31 writes the offline ``.wandb`` file every 15 s by default; a killed run would lose up to that much.
WANDB_FLUSH_SECONDS = 1.0


def wandb_settings(wandb):
    """``wandb.Settings`` flushing the run file every ``WANDB_FLUSH_SECONDS`` (when this wandb has the setting)."""
    if "x_transaction_log_flush_interval" in wandb.Settings.model_fields:
        return wandb.Settings(x_transaction_log_flush_interval=WANDB_FLUSH_SECONDS)
    return wandb.Settings()


def _attach(trainer) -> None:
    """Give our callbacks a handle on the trainer (transformers passes only the model); drop the dict printer."""
    trainer.remove_callback(ProgressCallback)
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
                f"held-out greedy accuracy: before RL {pct(keys.read(summary, keys.HELDOUT_BEFORE))}"
                f"  ->  after RL {pct(keys.read(summary, keys.HELDOUT))}",
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
    for name in keys.benchmarks_in(summary):
        before = summary.get(keys.eval_key(name, stage=keys.BEFORE))
        start = "" if before is None else f"{before:.1f}% -> "
        n = summary.get(keys.eval_key(name, keys.N))
        lines.append(f"benchmark {name} (n={n}): Pass@1 {start}{summary[keys.eval_key(name)]:.1f}%")
    return lines
