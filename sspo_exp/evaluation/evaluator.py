"""Scoring a training run's policy: :class:`Evaluator` (SPEC.md "Evaluation"; ``final_eval`` in conf/train.yaml).

Two calls, and the evaluator owns the rest (what to score when, the memo, the files, the summary keys):

    ev.initial(model)                  # the initial policy: held-out accuracy, and the benchmarks if final_eval.before
    ev.at_step(model, step, final)     # held-out / benchmarks when due at that step; everything when final

Results use ``sspo-exp eval``'s own parts (benchmark loader, prompt builder, ``evaluate``, ``eval_record``), so the
numbers are the ones ``sspo-exp eval <run_dir>`` gives. Files (``sspo_exp.rundir`` layout): training's results go
to ``<run_dir>/eval_before/`` and ``<run_dir>/eval/`` (``<benchmark>.json`` and ``heldout.json``); a resumed run
reads the initial policy's results from there instead of evaluating again. Held-out accuracy and a benchmark whose
rows and prompts equal the held-out set (the arithmetic test split when training on arithmetic) are one evaluation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from sspo_exp import keys
from sspo_exp.evaluation import benchmarks as evaluation
from sspo_exp.evaluation.core import evaluate
from sspo_exp.evaluation.profile import compute_dtype, make_profile
from sspo_exp.evaluation.provenance import provenance
from sspo_exp.evaluation.settings import EvalSettings
from sspo_exp.rundir import RunDir
from sspo_exp.tasks import prompt_fn_for

HELDOUT = "heldout"  #: the held-out set's name in the memo and its results file


class Evaluator:
    """Greedy Pass@1 of the policy on the held-out rows and the benchmarks, memoised per policy state."""

    def __init__(self, settings: EvalSettings, tokenizer, heldout: list[dict[str, str]],
                 heldout_prompt_fn: Callable[[str, Any], str],
                 benchmarks: dict[str, tuple[list[dict[str, str]], Callable[[str, Any], str]]],
                 run: RunDir, write: bool, run_config: dict | None = None):  # fmt: skip
        self.settings, self.tokenizer, self.run, self.write = settings, tokenizer, run, write
        self.heldout_rows, self.heldout_prompt_fn = heldout, heldout_prompt_fn
        self.benchmarks, self.run_config = benchmarks, run_config or {}
        self._memo: dict[tuple[Any, str], tuple[Any, float]] = {}
        self.shared = self._same_as_heldout()

    # ----------------------------------------------------------------------------------------------- API
    def initial(self, model) -> dict[str, float]:
        """Score the initial policy (files on disk from an earlier segment are read, not redone).

        Returns ``{eval_before/heldout/accuracy, eval_before/<b>/pass@1, …}`` (``keys.HELDOUT_BEFORE``).
        """
        out = {}
        if self.heldout_rows:
            out[keys.HELDOUT_BEFORE] = self._heldout_stage(model, "before", keys.BEFORE)
        if self.settings.before:
            out.update(keys.summary_keys(self._benchmarks_stage(model, "before", keys.BEFORE), keys.BEFORE))
        return out

    def initial_missing(self) -> list[Path]:
        """The initial policy's result files :meth:`initial` would have to compute (not on disk yet)."""
        names = ([HELDOUT] if self.heldout_rows else []) + (list(self.benchmarks) if self.settings.before else [])
        paths = [self.run.results_dir(keys.BEFORE) / f"{name}.json" for name in names]
        return [p for p in paths if not p.is_file()]

    def due(self, step: int, final: bool = False) -> bool:
        """Whether :meth:`at_step` has anything to score at ``step`` (so a sharded model is gathered only then)."""
        s = self.settings
        heldout = bool(self.heldout_rows) and (final or bool(s.heldout_every and step % s.heldout_every == 0))
        return heldout or (bool(self.benchmarks) and (final or bool(s.every_steps and step % s.every_steps == 0)))

    def at_step(self, model, step: int, final: bool = False) -> dict[str, float]:
        """What is due at optimizer step ``step`` (everything when ``final``), as history/summary keys:
        ``eval/heldout/accuracy`` (``keys.HELDOUT``) and ``eval/<benchmark>/pass@1``; ``final`` also writes the result
        files and adds ``eval/<benchmark>/n``."""
        s, out = self.settings, {}
        if self.heldout_rows and (final or (s.heldout_every and step % s.heldout_every == 0)):
            if final:
                out[keys.HELDOUT] = self._heldout_stage(model, step, keys.AFTER)
            else:
                out[keys.HELDOUT] = self.heldout(model, step)[0].accuracy
        if final:
            out.update(keys.summary_keys(self._benchmarks_stage(model, step, keys.AFTER), keys.AFTER))
        elif s.every_steps and step % s.every_steps == 0:
            for name in self.benchmarks:
                out[keys.eval_key(name)] = self.benchmark(model, step, name)[0].pass_at_1
        return out

    # ----------------------------------------------------------------------------------------------- parts
    def _heldout_stage(self, model, tag: Any, stage: str) -> float:
        path = self.run.results_dir(stage) / f"{HELDOUT}.json"
        if stage == keys.BEFORE and path.is_file():
            return json.loads(path.read_text())["accuracy"]
        result, _ = self.heldout(model, tag)
        if self.write:
            self.run.write_result(stage, HELDOUT, {"accuracy": result.accuracy, "n": result.n, keys.CUT: result.cut_before_answer,
                               keys.PROFILE: self.profile(model, HELDOUT)})  # fmt: skip
        return result.accuracy

    def _benchmarks_stage(self, model, tag: Any, stage: str) -> dict[str, dict]:
        results = {}
        for name in self.benchmarks:
            path = self.run.results_dir(stage) / f"{name}.json"
            if stage == keys.BEFORE and path.is_file():
                rec = json.loads(path.read_text())
                results[name] = _stats(rec)
                continue
            result, seconds = self.benchmark(model, tag, name)
            rec = self.record(name, result, seconds, stage, self.profile(model, name))
            if self.write:
                self.run.write_result(stage, name, rec)
                print(f"{stage}/{name} pass@1 = {result.pass_at_1:.2f}% ({result.n_correct}/{result.n})", flush=True)
            results[name] = _stats(rec)
        return results

    def _key(self, rows, prompt_fn) -> list[tuple[str, Any, str]]:
        return [(r["id"], prompt_fn(r["question"], self.tokenizer), r["answer"]) for r in rows]

    def _same_as_heldout(self) -> str | None:
        """The benchmark whose (id, prompt, answer) rows equal the held-out set (same budget): evaluated once."""
        if not self.heldout_rows or self.settings.max_new_tokens != self.settings.heldout_max_new_tokens:
            return None
        mine = self._key(self.heldout_rows, self.heldout_prompt_fn)
        return next((n for n, (rows, fn) in self.benchmarks.items() if self._key(rows, fn) == mine), None)

    def _run(self, model, tag: Any, name: str, rows, prompt_fn, max_new_tokens: int):
        if (tag, name) not in self._memo:
            self._memo = {k: v for k, v in self._memo.items() if k[0] == tag}  # keep only the current policy's
            start = time.time()
            result = evaluate(model, self.tokenizer, rows, max_new_tokens=max_new_tokens,
                              batch_size=self.settings.batch_size, prompt_fn=prompt_fn, desc=name,
                              codeact_env=self.settings.codeact_env)  # fmt: skip
            self._memo[(tag, name)] = (result, time.time() - start)
        return self._memo[(tag, name)]

    def heldout(self, model, tag: Any):
        """(EvalResult, seconds) on the held-out rows, generation budget ``trainer.max_completion_length``."""
        return self._run(model, tag, HELDOUT, self.heldout_rows, self.heldout_prompt_fn,
                         self.settings.heldout_max_new_tokens)  # fmt: skip

    def benchmark(self, model, tag: Any, name: str):
        """(EvalResult, seconds) on benchmark ``name`` (the held-out result itself if it is the same set)."""
        if name == self.shared:
            return self.heldout(model, tag)
        rows, prompt_fn = self.benchmarks[name]
        return self._run(model, tag, name, rows, prompt_fn, self.settings.max_new_tokens)

    def profile(self, model, name: str) -> dict:
        """The evaluation profile of benchmark ``name`` (or the held-out set) scored on ``model`` here (``sspo_exp.evaluation.profile``):
        HF generate in the dtype the policy computes in (``+autocast-bfloat16`` under trainer.bf16 on a GPU)."""
        heldout = name in (HELDOUT, self.shared)
        prompt_fn = self.heldout_prompt_fn if heldout else self.benchmarks[name][1]
        budget = self.settings.heldout_max_new_tokens if heldout else self.settings.max_new_tokens
        return make_profile("hf", compute_dtype(model), budget, getattr(prompt_fn, "id", "custom"), self.tokenizer,
                            self.settings.chat_template_kwargs, getattr(prompt_fn, "checker", None)).as_dict()  # fmt: skip

    def record(self, name: str, result, seconds: float, stage: str, profile: dict) -> dict:
        """The JSON ``sspo-exp eval`` writes for one (model, benchmark), with its profile, provenance and every
        sample."""
        newest = self.run.newest_complete_checkpoint(quiet=True)
        return evaluation.eval_record(
            name, result,
            model={"spec": str(self.run.path), "kind": "run", "path": str(newest) if newest and stage == keys.AFTER else None,
                   "run_id": self.run.run_id, "stage": "initial policy" if stage == keys.BEFORE else "trained policy"},
            generation={"backend": "hf", "greedy": True, "max_new_tokens": self.settings.max_new_tokens,
                        "batch_size": self.settings.batch_size, "in_training_process": True,
                        "shared_with_heldout": name == self.shared},
            config={"final_eval": self.settings.as_dict()}, run_config=self.run_config,
            provenance=provenance(), seconds=seconds, profile=profile,
        )  # fmt: skip


def _stats(rec: dict) -> dict:
    return keys.record_stats(rec)


def load_benchmarks(settings: EvalSettings):
    """``{name: (rows, prompt_fn)}`` of ``final_eval.benchmarks``, loaded as ``sspo-exp eval`` loads them, with the
    generator knobs and prompt/environment blocks the settings carry (``EvalSettings.arithmetic_knobs``,
    ``codeact_knobs``: the run's own dataset block when it trains on that task, else the shipped default)."""
    loaded = evaluation.load_benchmarks(list(settings.benchmarks), settings.data, settings.arithmetic_knobs,
                                        settings.codeact_knobs)  # fmt: skip
    kwargs = settings.chat_template_kwargs
    return {n: (rows, prompt_fn_for(n, knobs, kwargs)) for n, (rows, knobs) in loaded.items()}
