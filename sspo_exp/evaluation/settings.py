"""Evaluation settings, checked without torch: training's ``final_eval`` block (conf/train.yaml).

The same checks serve ``sspo-exp eval`` (:func:`sspo_exp.evaluation.run.validate`) where the keys coincide.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.codeact.settings import CODEACT_DATASETS, check_env, default_block, eval_env
from sspo_exp.errors import ConfigError
from sspo_exp.plain import plain_dict, to_plain
from sspo_exp.data import BENCHMARKS
from sspo_exp.models import DTYPES

#: The codeact benchmark (M3ToolEval) has no Hub copy: its local file is required (docs/codeact.md).
NO_CODEACT_DATA = ("benchmark 'codeact' (M3ToolEval) has no Hub copy: set {field}=FILE (the local M3ToolEval export, "
                   "docs/codeact.md)")


@dataclass(frozen=True)
class EvalSettings:
    """Training's own evaluation (``final_eval``; see conf/train.yaml for each field)."""

    benchmarks: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)
    before: bool = False
    every_steps: int = 0
    max_new_tokens: int = 512
    batch_size: int = 64
    heldout_samples: int = 0  #: trainer.eval_samples: held-out rows scored
    heldout_every: int = 0  #: trainer.eval_steps: held-out accuracy every N steps (0 = at the end only)
    heldout_max_new_tokens: int = 512  #: trainer.max_completion_length
    codeact_env: dict | None = None  #: env block of CodeAct episodes (sspo_exp.codeact.settings.eval_env)
    chat_template_kwargs: dict = field(default_factory=dict)  #: model.chat_template_kwargs (prompts, profile)
    #: the ``arithmetic`` benchmark's generator knobs: the run's dataset block when it trains on arithmetic (its test
    #: split, its prompt style), else conf/dataset/arithmetic.yaml (read when the plan is made, not during training)
    arithmetic_knobs: dict | None = None
    #: the ``codeact`` benchmark's prompt style and environment: the run's CodeAct dataset block, else
    #: conf/dataset/codeact.yaml
    codeact_knobs: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"benchmarks": list(self.benchmarks), "data": dict(self.data), "before": self.before,
               "every_steps": self.every_steps, "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size}
        if self.codeact_env is not None:  # the environment CodeAct episodes ran in (turns, sandbox limits)
            out["codeact_env"] = self.codeact_env
        return out


def final_eval_settings(cfg: Any) -> EvalSettings:
    """Reject a bad ``final_eval`` block before any compute; return its settings (absent block = no benchmarks)."""
    fe = cfg.get("final_eval") or {}
    fe = OmegaConf.to_container(fe, resolve=True) if OmegaConf.is_config(fe) else dict(fe)
    if isinstance(fe.get("benchmarks"), str):
        raise ConfigError(f"final_eval.benchmarks={fe['benchmarks']}: a list, e.g. "
                          f"final_eval.benchmarks=[{fe['benchmarks']}]")
    benchmarks = list(fe.get("benchmarks") or [])
    bad = [b for b in benchmarks if b not in BENCHMARKS]
    if bad or len(set(benchmarks)) != len(benchmarks):
        raise ConfigError(f"final_eval.benchmarks={benchmarks}: each at most once, from {sorted(BENCHMARKS)}")
    data = dict(fe.get("data") or {})
    extra = sorted(set(k for k, v in data.items() if v is not None) - set(BENCHMARKS))
    if extra:
        raise ConfigError(f"final_eval.data has {extra}; keys must be benchmarks: {sorted(BENCHMARKS)}")
    if "codeact" in benchmarks and data.get("codeact") is None:
        raise ConfigError(NO_CODEACT_DATA.format(field="final_eval.data.codeact"))
    before = fe.get("before", False)
    if not isinstance(before, bool):
        raise ConfigError(f"final_eval.before={before!r}: must be true or false")
    values = {"every_steps": fe.get("every_steps", 0),
              "max_new_tokens": fe.get("max_new_tokens") or cfg.trainer.max_completion_length,
              "batch_size": fe.get("batch_size", 64)}  # fmt: skip
    for key, low in (("every_steps", 0), ("max_new_tokens", 1), ("batch_size", 1)):
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"final_eval.{key}={value!r}: must be an integer >= {low}")

    kwargs = plain_dict((cfg.get("model") or {}).get("chat_template_kwargs"))
    return EvalSettings(tuple(benchmarks), data, before, values["every_steps"], values["max_new_tokens"],
                        values["batch_size"], int(cfg.trainer.eval_samples), int(cfg.trainer.eval_steps),
                        int(cfg.trainer.max_completion_length), codeact_env=eval_env(cfg), chat_template_kwargs=kwargs,
                        **benchmark_knobs(cfg.dataset, benchmarks))  # fmt: skip


def benchmark_knobs(dataset_cfg: Any, benchmarks: list[str]) -> dict[str, dict | None]:
    """``arithmetic_knobs`` / ``codeact_knobs`` of :class:`EvalSettings` for a run training on ``dataset_cfg``."""
    name = (dataset_cfg or {}).get("name")
    arithmetic = codeact = None
    if "arithmetic" in benchmarks:
        arithmetic = dataset_cfg if name == "arithmetic" else OmegaConf.load(Path(CONF_DIR) / "dataset" / "arithmetic.yaml")
    if "codeact" in benchmarks:
        codeact = dataset_cfg if name in CODEACT_DATASETS else default_block()
    return {"arithmetic_knobs": to_plain(arithmetic), "codeact_knobs": to_plain(codeact)}


#: ``eval.backend``: batched HF ``generate`` (CPU or GPU) or vLLM.
BACKENDS = ("hf", "vllm")


def check_eval(cfg: Any) -> None:
    """Every check of ``sspo-exp eval``'s config that needs no model or data (conf/eval.yaml), so a bad config fails
    in well under a second, naming the field, the value and what is allowed."""
    import importlib.util
    import re


    e = cfg.eval
    model = e.get("model")
    if not model or model == "???":
        raise ConfigError("eval.model is required: a run directory, a run id under output_root, a local model "
                          "directory or an HF id, e.g. `sspo-exp eval eval.model=runs/<run_id>`")  # fmt: skip
    if isinstance(e.benchmarks, str):
        raise ConfigError(f"eval.benchmarks={e.benchmarks}: a list, e.g. eval.benchmarks=[{e.benchmarks}]")
    benchmarks = list(e.benchmarks or [])
    bad = [b for b in benchmarks if b not in BENCHMARKS]
    if bad or not benchmarks:
        raise ConfigError(f"eval.benchmarks has {bad or 'nothing'}; choose from {sorted(BENCHMARKS)}")
    name = e.get("model_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"eval.model_name must be null (derive it) or a non-empty name, got {name!r}")
    if e.backend not in BACKENDS:
        raise ConfigError(f"eval.backend={e.backend!r}; valid: {list(BACKENDS)}")
    if e.get("dtype", "auto") not in DTYPES:
        raise ConfigError(f"eval.dtype={e.get('dtype')!r}; valid: {list(DTYPES)}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(e.get("device", "auto"))):
        raise ConfigError(f"eval.device={e.get('device')!r}; valid: auto, cpu, cuda or cuda:N")
    kwargs = e.get("chat_template_kwargs")
    if kwargs is not None and not (hasattr(kwargs, "items") and all(isinstance(k, str) for k in kwargs)):
        raise ConfigError(f"eval.chat_template_kwargs={kwargs!r}: null (the run's or the model preset's own), or a "
                          "mapping, e.g. {enable_thinking: false} ({} = none)")  # fmt: skip
    if "codeact" in benchmarks and (e.get("data") or {}).get("codeact") is None:
        raise ConfigError(NO_CODEACT_DATA.format(field="eval.data.codeact"))
    unknown = sorted(set(e.get("data") or {}) - set(BENCHMARKS))
    if unknown:
        raise ConfigError(f"eval.data has unknown benchmark(s) {unknown}; choose from {sorted(BENCHMARKS)}")
    for key in ("max_new_tokens", "batch_size"):
        if not isinstance(e[key], int) or isinstance(e[key], bool) or e[key] < 1:
            raise ConfigError(f"eval.{key} must be a positive integer, got {e[key]!r}")
    if "codeact" in benchmarks and e.backend != "hf":
        raise ConfigError(f"eval.backend={e.backend!r} with eval.benchmarks containing codeact: its multi-turn "
                          "episodes are generated with eval.backend=hf")  # fmt: skip
    if "codeact" in benchmarks and cfg.get("codeact") is not None:
        check_env(cfg.codeact, e.max_new_tokens, "codeact")
    if e.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("eval.backend=vllm needs vLLM installed (pip install 'sspo-exp[vllm]', GPU only); "
                          "use eval.backend=hf on CPU")  # fmt: skip


def profile_id(cfg: Any) -> str:
    """The name of this evaluation's settings (backend, dtype, budget; a hash of ``eval.chat_template_kwargs`` when
    set): a run's re-evaluations under different settings land in different folders
    (``<run_dir>/reeval/<profile_id>/``) and summary prefixes (``reeval/<profile_id>/eval/...``, which
    ``sspo-exp report --reeval <profile_id>`` reads). The full profile is in each result (``"profile"``)."""
    e = cfg.eval
    name = f"{e.backend}-{e.get('dtype') or 'auto'}-{e.max_new_tokens}tok"
    kwargs = e.get("chat_template_kwargs")
    if kwargs is not None:
        blob = json.dumps(plain_dict(kwargs), sort_keys=True)
        name += "-ctk" + hashlib.sha256(blob.encode()).hexdigest()[:6]
    return name
