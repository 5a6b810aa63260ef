"""The initial policy's evaluation under DeepSpeed ZeRO-3 / FSDP (``callbacks.InitialEval``): it waits for the
engine (``on_train_begin``, inside ``sharded.generation_model``) and records exactly what the unsharded path records.

accelerate does not shard on a CPU (docs/engines.md), so the mechanism is tested in a real tiny CPU training with
``sharded_engine()`` forced to True (and the CPU refusal switched off): the evaluation must come after the trainer
has prepared the model, inside ``generation_model(trainer)``, and the run's ``eval_before`` files, W&B summary and
``summary.json`` must equal an unsharded run's. Slow: three tiny trainings of 2 steps."""

from __future__ import annotations

import contextlib
import glob
import json
from pathlib import Path

import pytest
import torch

from sspo_exp.errors import ConfigError
from sspo_exp.report.wandb_offline import read_segment
from sspo_exp import keys
from train_helpers import small_cfg, tiny_model_dir

pytestmark = pytest.mark.slow
VOLATILE_SUMMARY = ("run_dir", "wandb_dir", "seconds", "final_eval_seconds")
VOLATILE_WANDB = ("_runtime", "_timestamp", "_wandb", "train/step_time", "train_runtime",
                  "train_samples_per_second", "train_steps_per_second")  # fmt: skip


def _cfg(root: Path, model_dir: Path):
    cfg = small_cfg(root, model_dir, max_steps=2, save_steps=2, eval_steps=0)
    cfg.final_eval = {"benchmarks": ["arithmetic"], "before": True, "batch_size": 8, "max_new_tokens": 6}  # not shared
    return cfg


def _record(run_dir: Path) -> dict:
    """What a run recorded about its initial policy and its end: eval_before files, W&B summary, summary.json."""
    files = {}
    for path in sorted((run_dir / "eval_before").glob("*.json")):
        rec = json.loads(path.read_text())
        for key in ("seconds", "provenance", "model"):  # timings, host/time stamps, the run directory's path
            rec.pop(key, None)
        rec.get("run_config", {}).pop("output_root", None)
        files[path.name] = rec
    (seg_dir,) = glob.glob(str(run_dir / "wandb" / "offline-run-*"))
    seg = read_segment(seg_dir)
    wandb_summary = {k: v for k, v in seg.summary.items() if k not in VOLATILE_WANDB}
    before_rows = [r[keys.HELDOUT] for r in seg.history if r.get("train/global_step") == 0]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"files": files, "wandb_summary": wandb_summary, "before_rows": before_rows,
            "summary": {k: v for k, v in summary.items() if k not in VOLATILE_SUMMARY}}  # fmt: skip


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.set_num_threads(1)
    return tiny_model_dir(tmp_path)


def _spies(monkeypatch) -> list:
    """The event list filled by spies on generation_model (the callbacks'), Evaluator.initial and evaluate."""
    import sspo_exp.evaluation.evaluator as core  # the evaluate the Evaluator calls
    import sspo_exp.train.callbacks as callbacks
    from sspo_exp.evaluation.evaluator import Evaluator

    events = []
    real_generation_model, real_initial, real_evaluate = callbacks.generation_model, Evaluator.initial, core.evaluate

    @contextlib.contextmanager
    def spy_generation_model(trainer):
        with real_generation_model(trainer) as policy:
            events.append(("enter", trainer, policy))
            yield policy
        events.append(("exit", trainer))

    def spy_initial(self, model):
        events.append(("initial", model))
        return real_initial(self, model)

    def spy_evaluate(model, *a, **kw):
        events.append(("generate", model))
        return real_evaluate(model, *a, **kw)

    monkeypatch.setattr(callbacks, "generation_model", spy_generation_model)
    monkeypatch.setattr(Evaluator, "initial", spy_initial)
    monkeypatch.setattr(core, "evaluate", spy_evaluate)
    return events


def _as_if_sharded(monkeypatch) -> None:
    """``accelerate launch`` with DeepSpeed / FSDP as far as run.py can tell, minus the CPU refusal."""
    import sspo_exp.train.run as run
    import sspo_exp.train.sharded as sharded

    monkeypatch.setattr(run, "sharded_engine", lambda: True)
    monkeypatch.setattr(sharded, "refuse_sharding_on_cpu", lambda device: None)


def test_sharded_initial_eval_waits_for_the_engine_and_records_what_unsharded_records(tmp_path, tiny, monkeypatch):
    from sspo_exp.train.run import train

    events = _spies(monkeypatch)
    unsharded = train(_cfg(tmp_path / "unsharded", tiny))
    # unsharded: today's order, the loaded model scored before the trainer exists (no generation_model around it)
    assert [e[0] for e in events[:4]] == ["initial", "generate", "generate", "enter"]
    events.clear()
    _as_if_sharded(monkeypatch)
    sharded = train(_cfg(tmp_path / "sharded", tiny))

    # the first thing evaluated is the initial policy, inside generation_model(trainer), after the trainer prepared
    # the model (its optimizer exists: transformers creates it in _prepare_for_training) and before any step
    enter, initial, *generations = events[:4]
    assert enter[0] == "enter" and initial == ("initial", enter[2]), [e[0] for e in events[:4]]
    trainer = enter[1]
    assert trainer.optimizer is not None and enter[2] is trainer.model
    assert [e[0] for e in generations] == ["generate", "generate"]  # held-out set and the arithmetic benchmark
    assert events[4][0] == "exit"

    a, b = _record(Path(unsharded["run_dir"])), _record(Path(sharded["run_dir"]))
    assert set(a["files"]) == {"heldout.json", "arithmetic.json"}
    assert len(a["files"]["arithmetic.json"]["samples"]) == 8  # the greedy completions themselves are compared
    assert b == a
    assert a["before_rows"] == [unsharded[keys.HELDOUT_BEFORE]]
    assert "eval_before/arithmetic/pass@1" in a["wandb_summary"] and keys.HELDOUT_BEFORE in a["wandb_summary"]

    # a resumed sharded run reads the initial policy's files (the engine then holds the checkpoint's weights) ...
    run_dir = Path(sharded["run_dir"])
    (run_dir / "summary.json").unlink()
    events.clear()
    resumed = train(_cfg(tmp_path / "sharded", tiny))
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert [e[0] for e in events[:3]] == ["enter", "initial", "exit"]  # read from the files: nothing generated
    for key in (keys.HELDOUT_BEFORE, "eval_before/arithmetic/pass@1", "eval_before/arithmetic/n"):
        assert resumed[key] == sharded[key], key
    # ... and refuses to score the checkpoint's weights as the initial policy when they are gone
    (run_dir / "summary.json").unlink()
    (run_dir / "eval_before" / "arithmetic.json").unlink()
    with pytest.raises(ConfigError, match="initial policy.s results.*final_eval.before=false"):
        train(_cfg(tmp_path / "sharded", tiny))
