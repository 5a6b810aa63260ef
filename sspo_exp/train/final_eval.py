"""Benchmark evaluation inside a training run (``final_eval`` in conf/train.yaml; SPEC.md "Evaluation").

After the last step the trained policy is scored on ``final_eval.benchmarks`` with ``sspo-exp eval``'s own parts
(``sspo_exp.data.load_benchmark``, ``sspo_exp.evaluation.run.prompt_fn_for``, ``sspo_exp.evaluation.core.evaluate``,
``provenance``, ``summary_keys``), so the numbers are the ones ``sspo-exp eval <run_dir>`` would give:
``<run_dir>/eval/<benchmark>.json`` and the summary keys ``eval/<benchmark>/pass@1`` (percent) and
``eval/<benchmark>/n``. With ``final_eval.before`` the initial policy is scored too (the tables' Base row):
``<run_dir>/eval_before/<benchmark>.json`` and ``eval_before/<benchmark>/...``; a resumed run reads those files
instead of evaluating again.

One :class:`Evaluator` serves the held-out accuracy and the benchmarks, memoised per policy state (``"before"`` or
the global step): a benchmark whose prompts and answers equal the held-out set (the arithmetic test split when
training on arithmetic) is the same evaluation and is computed once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sspo_exp.train.config import ConfigError

BEFORE, AFTER = "eval_before", "eval"  # summary-key prefixes and <run_dir>/ sub-directories


def settings(cfg: Any) -> dict[str, Any]:
    """The ``final_eval`` block with defaults (absent = no benchmarks)."""
    fe = cfg.get("final_eval") or {}
    fe = OmegaConf.to_container(fe, resolve=True) if OmegaConf.is_config(fe) else dict(fe)
    return {
        "benchmarks": list(fe.get("benchmarks") or []),
        "data": dict(fe.get("data") or {}),
        "before": fe.get("before", False),
        "every_steps": fe.get("every_steps", 0),
        "max_new_tokens": fe.get("max_new_tokens") or cfg.trainer.max_completion_length,
        "batch_size": fe.get("batch_size", 64),
    }


def check(cfg: Any) -> dict[str, Any]:
    """Reject a bad ``final_eval`` block before any compute; return its settings."""
    from sspo_exp.data import BENCHMARKS

    fe = settings(cfg)
    bad = [b for b in fe["benchmarks"] if b not in BENCHMARKS]
    if bad or len(set(fe["benchmarks"])) != len(fe["benchmarks"]):
        raise ConfigError(f"final_eval.benchmarks={fe['benchmarks']}: each at most once, from {sorted(BENCHMARKS)}")
    extra = sorted(set(k for k, v in fe["data"].items() if v is not None) - set(BENCHMARKS))
    if extra:
        raise ConfigError(f"final_eval.data has {extra}; keys must be benchmarks: {sorted(BENCHMARKS)}")
    if not isinstance(fe["before"], bool):
        raise ConfigError(f"final_eval.before={fe['before']!r}: must be true or false")
    for key, low in (("every_steps", 0), ("max_new_tokens", 1), ("batch_size", 1)):
        value = fe[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"final_eval.{key}={value!r}: must be an integer >= {low}")
    return fe


def load_benchmarks(cfg: Any) -> dict[str, tuple[list[dict[str, str]], Any]]:
    """``{name: (rows, knobs)}`` of ``final_eval.benchmarks``, as ``sspo-exp eval`` loads them; the arithmetic
    knobs are the run's own dataset block when it trains on arithmetic, else conf/dataset/arithmetic.yaml."""
    from sspo_exp import CONF_DIR
    from sspo_exp.evaluation import run as evaluation

    fe = settings(cfg)
    default = None
    if "arithmetic" in fe["benchmarks"] and cfg.dataset.get("name") != "arithmetic":
        default = OmegaConf.load(Path(CONF_DIR) / "dataset" / "arithmetic.yaml")
    return evaluation.load_benchmarks(fe["benchmarks"], fe["data"], evaluation.arithmetic_knobs(cfg.dataset, default))


class Evaluator:
    """Greedy Pass@1 of the policy on the held-out rows and on the benchmarks, memoised per policy state ``tag``."""

    def __init__(self, cfg: DictConfig, tokenizer, heldout: list[dict[str, str]], heldout_prompt_fn,
                 benchmarks: dict[str, tuple[list[dict[str, str]], Any]]):
        from sspo_exp.evaluation.run import prompt_fn_for

        self.cfg, self.fe, self.tokenizer = cfg, settings(cfg), tokenizer
        self.heldout_rows, self.heldout_prompt_fn = heldout, heldout_prompt_fn
        self.benchmarks = {n: (rows, prompt_fn_for(n, knobs)) for n, (rows, knobs) in benchmarks.items()}
        self._memo: dict[tuple[Any, str], tuple[Any, float]] = {}
        self.shared = self._same_as_heldout()

    def _key(self, rows, prompt_fn) -> list[tuple[str, Any, str]]:
        return [(r["id"], prompt_fn(r["question"], self.tokenizer), r["answer"]) for r in rows]

    def _same_as_heldout(self) -> str | None:
        """The benchmark whose (id, prompt, answer) rows equal the held-out set (same budget): evaluated once."""
        if not self.heldout_rows or self.fe["max_new_tokens"] != self.cfg.trainer.max_completion_length:
            return None
        mine = self._key(self.heldout_rows, self.heldout_prompt_fn)
        return next((n for n, (rows, fn) in self.benchmarks.items() if self._key(rows, fn) == mine), None)

    def _run(self, model, tag: Any, name: str, rows, prompt_fn, max_new_tokens: int):
        from sspo_exp.evaluation.core import evaluate

        if (tag, name) not in self._memo:
            self._memo = {k: v for k, v in self._memo.items() if k[0] == tag}  # keep only the current policy's
            start = time.time()
            result = evaluate(model, self.tokenizer, rows, max_new_tokens=max_new_tokens,
                              batch_size=self.fe["batch_size"], prompt_fn=prompt_fn, desc=name)
            self._memo[(tag, name)] = (result, time.time() - start)
        return self._memo[(tag, name)]

    def heldout(self, model, tag: Any):
        """(EvalResult, seconds) on the held-out rows, generation budget ``trainer.max_completion_length``."""
        return self._run(model, tag, "heldout", self.heldout_rows, self.heldout_prompt_fn,
                         self.cfg.trainer.max_completion_length)

    def benchmark(self, model, tag: Any, name: str):
        """(EvalResult, seconds) on benchmark ``name`` (the held-out result itself if it is the same set)."""
        if name == self.shared:
            return self.heldout(model, tag)
        rows, prompt_fn = self.benchmarks[name]
        return self._run(model, tag, name, rows, prompt_fn, self.fe["max_new_tokens"])

    def record(self, name: str, result, seconds: float, stage: str, run_dir: Path, checkpoint: str | None) -> dict:
        """The JSON ``sspo-exp eval`` writes for one (model, benchmark), with provenance and every sample."""
        from sspo_exp.evaluation.provenance import provenance
        from sspo_exp.evaluation.run import eval_record

        return eval_record(
            name, result,
            model={"spec": str(run_dir), "kind": "run", "path": checkpoint, "run_id": run_dir.name,
                   "stage": "initial policy" if stage == BEFORE else "trained policy"},
            generation={"backend": "hf", "greedy": True, "max_new_tokens": self.fe["max_new_tokens"],
                        "batch_size": self.fe["batch_size"], "in_training_process": True,
                        "shared_with_heldout": name == self.shared},
            config={"final_eval": self.fe}, run_config=OmegaConf.to_container(self.cfg, resolve=True),
            provenance=provenance(), seconds=seconds,
        )  # fmt: skip

    def run_all(self, model, tag: Any, stage: str, run_dir: Path, write: bool, checkpoint: str | None = None,
                skip: tuple[str, ...] = ()) -> dict[str, dict]:
        """Score every benchmark not in ``skip``; write ``<run_dir>/<stage>/<name>.json`` when ``write``."""
        results = {}
        for name in self.benchmarks:
            if name in skip:
                continue
            result, seconds = self.benchmark(model, tag, name)
            if write:
                rec = self.record(name, result, seconds, stage, run_dir, checkpoint)
                _write_json(run_dir / stage / f"{name}.json", rec)
                print(f"{stage}/{name} pass@1 = {result.pass_at_1:.2f}% ({result.n_correct}/{result.n})", flush=True)
            results[name] = {"pass@1": result.pass_at_1, "n": result.n}
        return results


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)  # whole or absent: a kill never leaves a cut file that a resume would read


def stored(run_dir: Path, stage: str, names: list[str]) -> dict[str, dict]:
    """``{name: {pass@1, n}}`` of the results already on disk under ``<run_dir>/<stage>/``."""
    out = {}
    for name in names:
        path = run_dir / stage / f"{name}.json"
        if path.is_file():
            rec = json.loads(path.read_text())
            out[name] = {"pass@1": rec["pass@1"], "n": rec["n"]}
    return out


def summary_keys(results: dict[str, dict], stage: str) -> dict[str, float]:
    """``<stage>/<benchmark>/pass@1`` and ``.../n`` (``sspo_exp.evaluation.run.summary_keys`` for ``eval``)."""
    from sspo_exp.evaluation.run import summary_keys as eval_keys

    return {stage + k.removeprefix("eval"): v for k, v in eval_keys(results).items()}
