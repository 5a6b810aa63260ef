"""The supervised cold start of any HF causal LM: TRL's ``SFTTrainer`` on format demonstrations (paper §4.3).

Our reading of "we fine-tune Qwen2.5-7B-Instruct from a cold-start initialization" is in ``docs/cold_start.md``.
In short: before RL, the base model is fine-tuned on *demonstrations* built from the RL training split itself —
the prompt exactly as RL and evaluation build it (``sspo_exp.tasks.prompt_fn_for``: the zero-shot
instruction, rendered by the model's chat template) and a completion in the paper's format
``<think>{worked reference solution}</think> <answer>{gold answer}</answer>`` followed by the tokenizer's EOS.
Only rows whose dataset ships a worked solution become demonstrations (GSM8K; see ``DatasetSpec.solution``); the
generated arithmetic task uses its column-by-column working (``cold_start.completion``, correct targets). Rows
whose prompt + completion exceed ``max_length`` tokens are dropped, not truncated (a cut demonstration would
teach a completion without ``</answer>``). The loss is on completion tokens only.

The stage's identity (its cache key and run id ``coldstart-<model.name>-s<seed>-<hash>``) is the base model's
path, the SFT hyper-parameters of the ``cold_start`` block (``KEY_IGNORED`` excluded), the dataset block and the
seed. Checkpoints are written every ``save_steps`` into the stage's work directory, and a killed stage resumes
from the newest complete one (``sspo_exp.stages.cache``). Every optimizer step sees ``batch_size`` demonstrations on
any number of processes (:func:`gradient_accumulation`), so the number of processes is not part of the identity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sspo_exp.errors import ConfigError
from sspo_exp.data import DataError, load_dataset_rows, training_solutions
from sspo_exp.identity import floats_as_floats
from sspo_exp.models import load_model, load_tokenizer
from sspo_exp.models.compat import checkpointing_kwargs
from sspo_exp.plain import to_plain
from sspo_exp.rundir import RunDir
from sspo_exp.stages.targets import completion as working_completion
from sspo_exp.tasks import prompt_fn_for

#: The fields of the ``cold_start`` block for an HF model (documented in ``conf/cold_start/sft.yaml``).
SFT_FIELDS = ("enabled", "seed", "max_examples", "max_steps", "num_train_epochs", "batch_size",
              "per_device_train_batch_size", "learning_rate", "lr_scheduler_type", "warmup_ratio", "weight_decay",
              "max_grad_norm", "max_length", "bf16", "gradient_checkpointing", "save_steps", "logging_steps")
#: Fields that do not change the resulting weights, so they stay out of the stage's key.
KEY_IGNORED = ("enabled", "save_steps", "logging_steps")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
#: Bump when the demonstrations or the training recipe change meaning (invalidates cached stages).
FORMAT_VERSION = 1


def _int(cfg: Mapping[str, Any], field: str, low: int, allow_none: bool = False) -> None:
    v = cfg[field]
    if (v is None and allow_none) or (isinstance(v, int) and not isinstance(v, bool) and v >= low):
        return
    raise ConfigError(f"model.cold_start.{field}={v!r}: must be an integer >= {low}" + (" or null" if allow_none else ""))


def _float(cfg: Mapping[str, Any], field: str, low: float, high: float = math.inf, open_low: bool = False) -> None:
    v = cfg[field]
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v <= high \
        and (v > low if open_low else v >= low)
    if not ok:
        raise ConfigError(f"model.cold_start.{field}={v!r}: must be a number in {'(' if open_low else '['}{low}, {high}]")


def validate(cold: Mapping[str, Any]) -> None:
    """Every check of an SFT ``cold_start`` block that needs no model or data (fails in milliseconds)."""
    missing = [f for f in SFT_FIELDS if f not in cold]
    unknown = sorted(set(cold) - set(SFT_FIELDS))
    if missing or unknown:
        raise ConfigError(f"model.cold_start: missing {missing}, unknown {unknown}; an SFT cold start has exactly "
                         f"{list(SFT_FIELDS)} (conf/cold_start/sft.yaml)")
    _int(cold, "seed", 0, allow_none=True)
    _int(cold, "max_examples", 1, allow_none=True)
    _int(cold, "max_steps", -1)
    if cold["max_steps"] == 0:
        raise ConfigError("model.cold_start.max_steps=0: must be -1 (train num_train_epochs) or >= 1")
    if cold["max_steps"] == -1:
        _float(cold, "num_train_epochs", 0.0, open_low=True)
    for f in ("batch_size", "per_device_train_batch_size", "max_length", "save_steps", "logging_steps"):
        _int(cold, f, 1)
    gradient_accumulation(cold, 1)  # the weakest condition; the build checks its own number of processes
    _float(cold, "learning_rate", 0.0, open_low=True)
    _float(cold, "warmup_ratio", 0.0, 0.999)
    _float(cold, "weight_decay", 0.0)
    _float(cold, "max_grad_norm", 0.0, open_low=True)
    if cold["lr_scheduler_type"] not in SCHEDULERS:
        raise ConfigError(f"model.cold_start.lr_scheduler_type={cold['lr_scheduler_type']!r}; valid: {list(SCHEDULERS)}")
    for f in ("bf16", "gradient_checkpointing"):
        if not isinstance(cold[f], bool):
            raise ConfigError(f"model.cold_start.{f}={cold[f]!r}: must be true or false")


def gradient_accumulation(cold: Mapping[str, Any], world_size: int) -> int:
    """Micro-batches per optimizer step on each of ``world_size`` processes, so that every optimizer step sees
    ``batch_size`` demonstrations whatever the number of processes: ``batch_size / (per_device_train_batch_size x
    world_size)``; a ConfigError naming both fields, their values and the world size when that is not a whole number."""
    batch, micro = cold["batch_size"], cold["per_device_train_batch_size"]
    if batch % (micro * world_size) == 0:
        return batch // (micro * world_size)
    allowed = [d for d in range(1, batch + 1) if batch % (d * world_size) == 0]
    raise ConfigError(f"model.cold_start.batch_size={batch} is not a multiple of model.cold_start."
                      f"per_device_train_batch_size={micro} x world size {world_size} (processes): every optimizer "
                      f"step must see batch_size demonstrations; per_device_train_batch_size allowed at world size "
                      f"{world_size}: {allowed or 'none (batch_size must be a multiple of the world size)'}")


def stage_key(model_cfg: Mapping[str, Any], cold: Mapping[str, Any], dataset_cfg: Mapping[str, Any], seed: int) -> dict:
    """Everything the cold-started weights depend on: the base model, the chat template the prompts are rendered
    with (and its arguments, when set), the SFT fields but ``KEY_IGNORED``, the dataset block and the seed. Not the
    number of processes: the optimizer step's batch is ``batch_size`` on any number (:func:`gradient_accumulation`)."""

    key = {"kind": "sft", "format": FORMAT_VERSION, "base": str(model_cfg["path"]),
           "chat_template": model_cfg.get("chat_template") or "auto",
           "cold_start": floats_as_floats({f: to_plain(cold[f]) for f in SFT_FIELDS if f not in KEY_IGNORED and f != "seed"},
                                          "model.cold_start"),
           "dataset": floats_as_floats(to_plain(dataset_cfg), "dataset"), "seed": int(seed)}
    if model_cfg.get("chat_template_kwargs") is not None:
        key["chat_template_kwargs"] = to_plain(model_cfg["chat_template_kwargs"])
    return key


def completion(think: str, answer: str) -> str:
    """A demonstration's completion in the paper's format (Appendix A), EOS added by the trainer."""
    return f"<think>{think.strip()}</think> <answer>{answer.strip()}</answer>"


def demonstrations(dataset_cfg: Mapping[str, Any], tokenizer, max_length: int, max_examples: int | None = None,
                   chat_template_kwargs: Mapping[str, Any] | None = None) -> tuple[list[dict[str, str]], dict[str, int]]:
    """``([{id, prompt, completion}], counts)`` from the training split of ``dataset_cfg`` (see module docstring);
    prompts rendered with ``chat_template_kwargs`` (``model.chat_template_kwargs``), as RL and evaluation render them.

    ``counts``: ``rows`` (training rows), ``without_solution`` (skipped: no worked solution), ``too_long``
    (skipped: over ``max_length`` tokens), ``used``.
    """

    rows = load_dataset_rows(dataset_cfg, "train")
    prompt_fn = prompt_fn_for(dataset_cfg["name"], dataset_cfg, chat_template_kwargs)
    if dataset_cfg["name"] == "arithmetic":
        targets = {r["id"]: working_completion(r["question"], r["answer"]) for r in rows}
    else:
        solutions = training_solutions(dataset_cfg)
        targets = {r["id"]: completion(solutions[r["id"]], r["answer"]) for r in rows if r["id"] in solutions}
    out, too_long = [], 0
    for r in rows:
        if r["id"] not in targets:
            continue
        prompt = prompt_fn(r["question"], tokenizer)
        text = targets[r["id"]] + (tokenizer.eos_token or "")
        if len(tokenizer(prompt + text, add_special_tokens=False)["input_ids"]) > max_length:
            too_long += 1
            continue
        out.append({"id": r["id"], "prompt": prompt, "completion": targets[r["id"]]})
        if max_examples is not None and len(out) >= max_examples:
            break
    counts = {"rows": len(rows), "without_solution": len(rows) - len(targets), "too_long": too_long, "used": len(out)}
    if not out:
        raise DataError(f"model.cold_start: no demonstrations from dataset {dataset_cfg['name']!r} ({counts}); the cold "
                         "start needs training rows with a worked solution (GSM8K has one; DeepMath and DAPO do not) "
                         "that fit in model.cold_start.max_length tokens")
    return out, counts


def _warmup(config_cls, ratio: float) -> dict[str, float]:
    """The warmup as a ratio of the total steps: ``warmup_ratio`` (transformers 4) or a float ``warmup_steps`` < 1
    (transformers 5 dropped ``warmup_ratio`` and reads such a float as the ratio)."""
    if "warmup_ratio" in getattr(config_cls, "__dataclass_fields__", {}):
        return {"warmup_ratio": ratio}
    return {"warmup_steps": ratio}


def build(work: Path, model_cfg: Mapping[str, Any], cold: Mapping[str, Any], dataset_cfg: Mapping[str, Any],
          seed: int, trainer_callbacks: list | None = None) -> dict[str, Any]:
    """Run the SFT into ``work / "out"`` (HF model + tokenizer), resuming from ``work / "checkpoints"``."""
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer


    base = str(model_cfg["path"])
    ckpt_dir = work / "checkpoints"
    args = SFTConfig(
        output_dir=str(ckpt_dir), seed=seed, data_seed=seed, max_steps=int(cold["max_steps"]),
        num_train_epochs=float(cold["num_train_epochs"]),
        per_device_train_batch_size=int(cold["per_device_train_batch_size"]),
        learning_rate=float(cold["learning_rate"]), lr_scheduler_type=cold["lr_scheduler_type"],
        **_warmup(SFTConfig, float(cold["warmup_ratio"])), weight_decay=float(cold["weight_decay"]),
        max_grad_norm=float(cold["max_grad_norm"]), max_length=int(cold["max_length"]), bf16=bool(cold["bf16"]),
        **checkpointing_kwargs(bool(cold["gradient_checkpointing"])), completion_only_loss=True,
        save_strategy="steps", save_steps=int(cold["save_steps"]), save_total_limit=2,
        logging_steps=int(cold["logging_steps"]), report_to=[], dataset_num_proc=None, disable_tqdm=True,
        # without use_cpu on a CPU-only machine transformers replaces the launch's gloo process group by a
        # single-process state, and each process of `torchrun` trained alone (seen: they raced on the checkpoints)
        use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    # the trainer's own number of processes (args joined the launch), before anything loads: every optimizer step
    # sees batch_size demonstrations on any number of processes (the Trainer reads this when it is created)
    args.gradient_accumulation_steps = gradient_accumulation(cold, args.world_size)
    # the one loader (sspo_exp.models): pad = eos if none, the config's chat template; its left padding is for
    # generation, TRL's SFT collator pads on the right whatever the tokenizer says
    tokenizer = load_tokenizer(base, model_cfg.get("chat_template") or "auto")
    examples, counts = demonstrations(dataset_cfg, tokenizer, int(cold["max_length"]), cold["max_examples"],
                                      model_cfg.get("chat_template_kwargs"))
    # fp32 master weights; bf16=true computes in bf16 (as RL does)
    model = load_model(base, "float32", model_cfg.get("attn_implementation"))
    data = datasets.Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=trainer_callbacks or None)
    newest = RunDir(work, ckpt_dir.name).newest_complete_checkpoint()  # the layout and check of RL's checkpoints
    resume = str(newest) if newest else None
    if resume:
        print(f"cold start: resuming from {resume}", flush=True)
    result = trainer.train(resume_from_checkpoint=resume)
    out = work / "out"
    trainer.save_model(str(out))  # every process takes part (ZeRO-3 gathers), process 0 writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        if not (out / "config.json").is_file() or not (any(out.glob("*.safetensors")) or any(out.glob("*.bin"))):
            # save_model writes no weights under FSDP's SHARDED_STATE_DICT: never publish (and cache) such a stage
            raise RuntimeError(f"cold start: {out} holds no loadable model after save_model (config.json + weights); "
                               "an FSDP launch must save FULL_STATE_DICT (conf/accelerate/fsdp.yaml)")
    targs = trainer.args
    return {"base": base, "demonstrations": counts, "resumed_from": resume and Path(resume).name,
            "global_step": trainer.state.global_step, "train_loss": result.training_loss,
            "world_size": targs.world_size, "gradient_accumulation_steps": targs.gradient_accumulation_steps,
            "batch_size": targs.world_size * targs.per_device_train_batch_size * targs.gradient_accumulation_steps}
