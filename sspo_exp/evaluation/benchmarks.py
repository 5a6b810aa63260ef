"""The benchmarks of an evaluation, as ``sspo-exp eval`` and training's own evaluation load and record them.

``load_benchmarks`` reads every benchmark's rows before any model loads (so a missing one fails fast); the knobs
say which generator settings (``arithmetic``) or prompt/environment block (``codeact``) each one uses;
``eval_record`` is the JSON written for one (model, benchmark); ``summary_keys`` the W&B summary keys of those
records (``sspo_exp.keys``).
"""

from __future__ import annotations

from typing import Any

from sspo_exp import keys
from sspo_exp.codeact.settings import CODEACT_DATASETS
from sspo_exp.data import BENCHMARKS, load_benchmark
from sspo_exp.tasks.results import EvalResult


def arithmetic_knobs(run_dataset: Any, default: Any) -> Any:
    """The arithmetic benchmark's generator knobs: a run's own dataset block when it trained on arithmetic (its
    test split, its prompt style), else ``default`` (conf/dataset/arithmetic.yaml)."""
    if run_dataset is not None and run_dataset.get("name") == "arithmetic":
        return run_dataset
    return default


def codeact_knobs(run_dataset: Any, default: Any) -> Any:
    """The ``codeact`` benchmark's prompt style and environment (``env``: turns, sandbox): a run's own dataset block
    when it trained on CodeAct episodes (the environment it learned in), else ``default`` (conf/dataset/codeact.yaml)."""
    if run_dataset is not None and run_dataset.get("name") in CODEACT_DATASETS:
        return run_dataset
    return default


def load_benchmarks(names, data: Any, knobs: Any, codeact: Any = None) -> dict[str, tuple[list[dict[str, str]], Any]]:
    """``{name: (rows, knobs)}`` for every benchmark, all before any model so a missing one fails fast;
    ``data`` maps benchmarks to local paths, ``knobs`` are the arithmetic generator's, ``codeact`` the codeact
    benchmark's prompt/environment block (other benchmarks: None)."""
    out = {}
    for name in names:
        k = knobs if name == "arithmetic" else None
        out[name] = (load_benchmark(name, (data or {}).get(name), cfg=k), codeact if name == "codeact" else k)
    return out


def codeact_env(knobs: Any) -> Any:
    """The ``env`` block of a codeact benchmark's knobs (None: the environment's defaults)."""
    return (knobs or {}).get("env") if knobs is not None else None


def eval_record(name: str, result: EvalResult, *, model: dict, generation: dict, config: Any, run_config: Any,
                provenance: dict, seconds: float, profile: dict) -> dict[str, Any]:
    """The JSON written for one (model, benchmark): Pass@1 and counts (with the share of completions cut by the
    budget before ``</answer>``), the evaluation profile (``sspo_exp.evaluation.profile``), how it was generated,
    the resolved config, the training run's config, provenance (commit, versions) and every sample. Training's own
    evaluation (``sspo_exp.evaluation.evaluator``) writes the same record."""
    data = result.to_dict()
    samples = data.pop("samples")
    return {"benchmark": name, "split": BENCHMARKS[name], "model": model, **data, "profile": profile,
            "generation": generation, "config": config, "run_config": run_config, "provenance": provenance,
            "seconds": round(seconds, 2), "samples": samples}


def summary_keys(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``eval/<benchmark>/pass@1`` (percent), ``/n``, ``/cut_before_answer`` and ``/profile.<field>``, the keys the
    report reads (``sspo_exp.keys``)."""
    return keys.summary_keys({name: keys.record_stats(r) for name, r in results.items()})
