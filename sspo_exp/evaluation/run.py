"""``run_eval(cfg)``: resolve the model → load each benchmark → greedy Pass@1 → JSON (+ W&B summary).

What ``eval.model`` may name, tried in this order:

1. a **run directory** (has ``config.yaml`` and ``checkpoint-*/``, as written by ``sspo-exp train``): the last
   checkpoint (TRL saves one at ``max_steps``) is evaluated, the run's own dataset block sets the arithmetic
   benchmark's knobs and prompt, results go to ``<run_dir>/eval/<benchmark>.json`` and
   ``eval/<benchmark>/pass@1`` + ``eval/<benchmark>/n`` into the run's W&B summary (same run id, resumed);
2. a **run id**: ``${output_root}/<id>`` is such a run directory;
3. a **local HF model directory** (has ``config.json``);
4. otherwise an **HF model id** (``Qwen/Qwen2.5-7B-Instruct``): the base-model rows of Tables 1-2.

Models that are not runs write ``${output_root}/eval/<model-slug>/<benchmark>.json`` and, with W&B on, a W&B run
``eval-<model-slug>`` (``job_type="base"``) holding the same summary keys, so the report finds base rows too. Its
config ``model.name`` is the name training runs of the same model carry (the report's model block):
``eval.model_name`` if set, else the ``name`` of the ``conf/model/*.yaml`` preset whose ``path`` is ``eval.model``
(``Qwen/Qwen2.5-7B-Instruct`` -> ``qwen2.5-7b-instruct``), else the model slug.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.evaluation.core import EvalResult, evaluate, score
from sspo_exp.evaluation.generate import generate_vllm, vllm_dtype
from sspo_exp.evaluation.profile import compute_dtype, make_profile

from sspo_exp.errors import ConfigError
from sspo_exp.evaluation.benchmarks import (arithmetic_knobs, codeact_env, codeact_knobs, eval_record, load_benchmarks,  # noqa: F401
                                           summary_keys)
from sspo_exp.evaluation.provenance import provenance
from sspo_exp.plain import plain_dict
from sspo_exp.tasks import prompt_fn_for
from sspo_exp.models import missing_local_dir, missing_local_dir_message
from sspo_exp.evaluation.settings import check_eval, profile_id
from sspo_exp.keys import reeval_prefix
from sspo_exp.models import load_model, load_tokenizer
from sspo_exp.rundir import RunDir


@dataclass(frozen=True)
class ModelSource:
    spec: str  #: what the user passed
    kind: str  #: run | dir | hub
    path: str  #: what from_pretrained / vLLM loads
    run_dir: Path | None = None
    run_id: str | None = None
    run_config: DictConfig | None = None

    @property
    def slug(self) -> str:
        return self.run_id or re.sub(r"[^A-Za-z0-9._-]+", "_", self.spec.strip("/")).strip("_")


def _as_run(d: Path, spec: str) -> ModelSource | None:
    run = RunDir.of(d)
    if not run.is_run():
        return None
    newest = run.newest_complete_checkpoint()  # the same rule as resume: never a checkpoint cut while saving
    if newest is None:
        raise ConfigError(f"eval.model={spec}: run directory {d} has no complete checkpoint-*/ yet")
    if not (newest / "config.json").is_file():
        raise ConfigError(f"eval.model={spec}: {newest} holds no HF model (config.json + weights), e.g. an FSDP run "
                          "saved with SHARDED_STATE_DICT; save with FULL_STATE_DICT (conf/accelerate/fsdp.yaml)")
    return ModelSource(spec, "run", str(newest), run.path, run.run_id, OmegaConf.load(run.config_file))


def resolve_model(spec: str, output_root: str | Path) -> ModelSource:
    """See the module docstring for the lookup order."""
    if not spec or spec == "???":
        raise ConfigError("eval.model is required: a run directory, a run id, a local model directory or an HF id")
    for candidate in (Path(spec).expanduser(), Path(output_root).expanduser() / spec):
        if candidate.is_dir():
            run = _as_run(candidate.resolve(), spec)
            if run:
                return run
            if (candidate / "config.json").is_file():
                return ModelSource(spec, "dir", str(candidate.resolve()))
            raise ConfigError(f"eval.model={spec}: {candidate} is neither a run directory (config.yaml + "
                             "checkpoint-*/) nor a model directory (config.json)")
    if missing_local_dir(spec):
        raise ConfigError(missing_local_dir_message("eval.model", spec))
    return ModelSource(spec, "hub", spec)


def _same_model(spec: str, path: str) -> bool:
    """``spec`` (``eval.model``) names the model at ``path`` (a preset's): the same HF id (case-insensitive, as the
    Hub treats them) or the same local directory."""
    a, b = spec.strip().rstrip("/"), str(path).strip().rstrip("/")
    if a.lower() == b.lower():
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def preset_name(spec: str, conf_dir: Path = CONF_DIR) -> str | None:
    """``name`` of the ``conf/model/*.yaml`` preset whose ``path`` is ``spec``, or None (no preset matches)."""
    for f in sorted((Path(conf_dir) / "model").glob("*.yaml")):
        preset = OmegaConf.load(f)
        path, name = preset.get("path"), preset.get("name")
        if isinstance(path, str) and path != "???" and isinstance(name, str) and name != "???" \
                and _same_model(spec, path):
            return name
    return None


def model_name(cfg: DictConfig, source: ModelSource) -> str:
    """The name tables group by (config ``model.name``): a run's own; ``eval.model_name`` if set; the matching
    preset's name (so a base row shares the block of the training runs of that preset); else the slug."""
    if source.run_config is not None and (source.run_config.get("model") or {}).get("name"):
        return str(source.run_config.model.name)
    return cfg.eval.get("model_name") or preset_name(source.spec) or source.slug


def preset_by_name(name: str, conf_dir: Path = CONF_DIR) -> DictConfig | None:
    """The ``conf/model/*.yaml`` preset called ``name``, or None."""
    for f in sorted((Path(conf_dir) / "model").glob("*.yaml")):
        preset = OmegaConf.load(f)
        if preset.get("name") == name:
            return preset
    return None


def chat_template_kwargs(cfg: DictConfig, source: ModelSource) -> dict:
    """``eval.chat_template_kwargs`` if set (``{}``: none); else a run's own ``model.chat_template_kwargs``; else those
    of the model preset its table block is named after (:func:`model_name`), so a Base row renders its prompts as
    the preset's training runs do (Qwen3: non-thinking)."""
    explicit = cfg.eval.get("chat_template_kwargs")
    if explicit is not None:
        return plain_dict(explicit)
    if source.run_config is not None:
        return plain_dict((source.run_config.get("model") or {}).get("chat_template_kwargs"))
    preset = preset_by_name(model_name(cfg, source))
    return plain_dict(preset.get("chat_template_kwargs")) if preset is not None else {}


def validate(cfg: DictConfig) -> None:
    """Every check that needs no model or data (``sspo_exp.evaluation.settings.check_eval``)."""
    check_eval(cfg)


def load_hf(path: str, cfg: DictConfig):
    """(model, tokenizer) at ``path`` in ``eval.dtype`` on ``eval.device`` (``sspo_exp.models``: the one loader)."""
    device = cfg.eval.get("device") or "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_model(path, cfg.eval.get("dtype") or "auto", device=device), load_tokenizer(path)


def run_eval(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Evaluate ``cfg.eval.model`` on ``cfg.eval.benchmarks``; return ``{benchmark: result-dict}``."""
    validate(cfg)
    e = cfg.eval
    source = resolve_model(e.model, cfg.output_root)
    # a run's re-evaluation goes beside training's own results (<run_dir>/eval/), never over them
    out_dir = Path(e.output_dir) if e.get("output_dir") else (
        source.run_dir / "reeval" / profile_id(cfg) if source.run_dir else Path(cfg.output_root) / "eval" / source.slug)
    run_dataset = source.run_config.get("dataset") if source.run_config is not None else None
    benchmarks = load_benchmarks(e.benchmarks, e.get("data"), arithmetic_knobs(run_dataset, cfg.get("arithmetic")),
                                 codeact_knobs(run_dataset, cfg.get("codeact")))

    model = tokenizer = None
    if e.backend == "hf":
        model, tokenizer = load_hf(source.path, cfg)
    else:  # the same tokenizer as the HF backend's, so both render the same prompts

        tokenizer = load_tokenizer(source.path)
    results, prov = {}, provenance()
    template_kwargs = chat_template_kwargs(cfg, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (rows, knobs) in benchmarks.items():
        start = time.time()
        prompt_fn = prompt_fn_for(name, knobs, template_kwargs)
        if e.backend == "hf":  # the one scoring path (CodeAct rows: multi-turn episodes in the sandbox)
            result: EvalResult = evaluate(model, tokenizer, rows, e.max_new_tokens, e.batch_size, prompt_fn,
                                          progress=bool(e.get("progress", True)), desc=name,
                                          codeact_env=codeact_env(knobs) if name == "codeact" else None)
        else:
            prompts = [prompt_fn(r["question"], tokenizer) for r in rows]
            v = e.get("vllm") or {}
            completions = generate_vllm(source.path, prompts, e.max_new_tokens, seed=int(cfg.get("seed", 0)),
                                        tensor_parallel_size=int(v.get("tensor_parallel_size", 1)),
                                        gpu_memory_utilization=float(v.get("gpu_memory_utilization", 0.9)),
                                        dtype=str(e.get("dtype") or "auto"), max_model_len=v.get("max_model_len"))
            result = score(rows, prompts, completions)
        assert result.n == len(rows), "every benchmark row must give one record"
        dtype = compute_dtype(model) if e.backend == "hf" else vllm_dtype(str(e.get("dtype") or "auto"))
        profile = make_profile(e.backend, dtype, e.max_new_tokens, prompt_fn.id, tokenizer, template_kwargs,
                               prompt_fn.checker)
        record = eval_record(
            name, result,
            model={"spec": source.spec, "kind": source.kind, "path": source.path, "run_id": source.run_id,
                   "name": model_name(cfg, source)},
            generation={"backend": e.backend, "greedy": True, "max_new_tokens": e.max_new_tokens,
                        "batch_size": e.batch_size},
            config=OmegaConf.to_container(cfg, resolve=True),
            run_config=OmegaConf.to_container(source.run_config, resolve=True) if source.run_config else None,
            provenance=prov, seconds=time.time() - start, profile=profile.as_dict(),
        )  # fmt: skip
        (out_dir / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
        results[name] = record
        print(f"{source.slug}  {name:<10} pass@1 = {result.pass_at_1:6.2f}%  "
              f"({result.n_correct}/{result.n}, {result.n_failed} failed)  -> {out_dir / f'{name}.json'}", flush=True)
    if (e.get("wandb") or {}).get("log", True):
        log_to_wandb(cfg, source, results, out_dir)
    return results


def log_to_wandb(cfg: DictConfig, source: ModelSource, results: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """Into the run's own W&B run (resumed by id) or, for a plain model, a ``job_type="base"`` run."""
    import wandb

    w = cfg.eval.wandb
    if source.run_config is not None:
        rw = source.run_config.get("wandb") or {}
        kwargs = dict(dir=str(source.run_dir), id=source.run_id, resume="allow", mode=w.get("mode") or rw.get("mode") or "offline",
                      project=rw.get("project") or w.project, entity=rw.get("entity") or w.get("entity"))
    else:
        kwargs = dict(dir=str(out_dir), id=f"eval-{source.slug}"[:128], name=f"eval-{source.slug}", resume="allow",
                      mode=w.get("mode") or "offline", project=w.project, entity=w.get("entity"), job_type="base", group=source.slug,
                      tags=["base", "eval"],
                      config={"model": {"name": model_name(cfg, source), "path": source.path}})
    run = wandb.init(**kwargs)
    try:  # a run's own summary keeps training's eval/...; its re-evaluation goes under reeval/<profile>/...

        prefix = reeval_prefix(profile_id(cfg)) if source.run_config is not None else ""
        run.summary.update({prefix + k: v for k, v in summary_keys(results).items()})
    finally:
        wandb.finish()
        # finish() returns before wandb-core has flushed an offline run's file; teardown waits for it, so the
        # summary is on disk when `sspo-exp eval` returns (a later wandb.init starts the service again)
        wandb.teardown()
