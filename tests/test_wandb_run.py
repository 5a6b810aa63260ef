"""A resumed run's W&B history as ``wandb sync`` uploads it: each optimizer step once, in increasing order.

Offline cases use REAL W&B offline segments (the installed wandb, in a subprocess per launch, as training runs
it): a first launch that logged up to some step, a checkpoint's ``trainer_state.json``, and a resumed launch that
calls :func:`sspo_exp.train.wandb_run.resume` and then logs what the trainer would (through a ``WandbCallback``).
The segments' record files are then read in start order, as ``wandb sync`` uploads them.
The online case uses a stand-in run object (no network here): what it checks is what is sent, not the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sspo_exp.report.wandb_offline import read_segment
from sspo_exp.train import wandb_run
from sspo_exp import keys

RUN_ID = "resume-test"
LAST = 12  # the run trains steps 1..LAST


def value(step: int, launch: int) -> float:
    """A metric that differs between launches, so the test sees which launch a step's row came from."""
    return step + launch / 10


def _launch(root: Path, launch: int, steps: range, checkpoint: Path | None, resume: bool, before: bool = True) -> None:
    """One launch, in its own process (W&B keeps process-global state): resume() (the first launch: the
    before-RL row, as training logs it), then the trainer's rows for ``steps`` through a WandbCallback."""
    code = textwrap.dedent(f"""
        import wandb
        from types import SimpleNamespace
        from transformers.integrations import WandbCallback
        from sspo_exp.train import wandb_run

        class Callback(WandbCallback):  # what transformers' WandbCallback logs per step, without its setup
            def __init__(self):
                pass
            def on_log(self, args, state, control, logs=None, **kw):
                wandb.run.log({{**logs, "train/global_step": state.global_step}})

        run = wandb.init(mode="offline", dir={str(root)!r}, id={RUN_ID!r}, project="p", resume="allow")
        cb = Callback()
        trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[cb]))
        if {resume}:
            wandb_run.resume(run, trainer, {str(checkpoint) if checkpoint else None!r}, 0.25)
        elif {before}:
            run.log({{{keys.HELDOUT!r}: 0.25, "train/global_step": 0}})
        for step in {list(steps)!r}:
            cb.on_log(None, SimpleNamespace(global_step=step), None, logs={{"train/loss": step + {launch} / 10}})
        wandb.finish()
        wandb.teardown()
    """)
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    subprocess.run([sys.executable, "-c", code], check=True, env={**env, "WANDB_SILENT": "true"}, timeout=300)
    time.sleep(1.1)  # offline directories are named by the second they start


def _checkpoint(tmp: Path, step: int) -> Path:
    """A checkpoint's trainer_state.json: what TRL logged for steps 1..step (first launch's values)."""
    path = tmp / f"checkpoint-{step}"
    path.mkdir()
    history = [{"loss": value(s, 1), "step": s} for s in range(1, step + 1)]
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": history}))
    return path


def _uploaded(root: Path) -> list[dict]:
    """The history rows of every segment, segments in start order: what ``wandb sync`` uploads."""
    segments = sorted((read_segment(d) for d in root.glob(f"wandb/*-{RUN_ID}")), key=lambda s: s.start_time)
    assert len(segments) >= 2
    return [row for seg in segments for row in seg.history]


@pytest.mark.parametrize("logged, ckpt", [(9, 6), (4, 6), (-1, 6)],
                         ids=["wandb-ahead-of-checkpoint", "wandb-lost-its-tail", "wandb-has-nothing"])
def test_resumed_offline_segments_upload_each_step_once_in_order(tmp_path, logged, ckpt):
    root = tmp_path / "run"
    root.mkdir()
    checkpoint = _checkpoint(tmp_path, ckpt)
    if logged >= 0:  # the first launch logged steps 0..logged before it was killed
        _launch(root, 1, range(1, logged + 1), None, resume=False)
    else:  # killed before W&B wrote anything: an empty first segment
        _launch(root, 1, range(0), None, resume=False, before=False)
    _launch(root, 2, range(ckpt + 1, LAST + 1), checkpoint, resume=True)  # the trainer re-runs from the checkpoint

    rows = _uploaded(root)
    steps = [int(r["train/global_step"]) for r in rows]
    assert steps == list(range(0, LAST + 1)), steps  # each optimizer step once, in order (0: before-RL row)
    wandb_steps = [r["_step"] for r in rows]
    assert wandb_steps == sorted(set(wandb_steps)), wandb_steps  # W&B's own row counter keeps increasing
    assert sum(keys.HELDOUT in r for r in rows) == 1
    by_step = {int(r["train/global_step"]): r for r in rows}
    held = max(logged, 0)
    for s in range(1, LAST + 1):  # a step W&B held keeps its first values; the rest: replay, then the re-run
        expected = value(s, 1) if s <= max(held, ckpt) else value(s, 2)
        assert by_step[s]["train/loss"] == pytest.approx(expected), s

    from sspo_exp.report.sources import offline_runs

    (run,) = offline_runs([root], workers=1)  # the report reads the same steps
    assert list(run.history["step"]) == list(range(0, LAST + 1))


def test_eval_segment_after_training_adds_no_history(tmp_path):
    """A re-evaluation (``sspo-exp eval eval.model=runs/<id>``) resumes the run id and writes summary only."""
    root = tmp_path / "run"
    root.mkdir()
    _launch(root, 1, range(1, 4), None, resume=False)
    code = (f"import wandb; run = wandb.init(mode='offline', dir={str(root)!r}, id={RUN_ID!r}, project='p', "
            "resume='allow'); run.summary['eval/gsm8k/pass@1'] = 50.0; wandb.finish(); wandb.teardown()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300,
                   env={**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "WANDB_SILENT": "true"})
    rows = _uploaded(root)
    assert [int(r["train/global_step"]) for r in rows] == [0, 1, 2, 3]


class _OnlineRun:
    """Stand-in for a resumed online ``wandb.Run``: the server's summary, and what would be sent."""

    def __init__(self, summary: dict, resumed: bool = True):
        self.settings = SimpleNamespace(_offline=False)
        self.resumed, self.summary, self.step, self.sent = resumed, summary, summary.get("_step", -1) + 1, []

    def log(self, row, step=None, commit=None):
        self.sent.append((row, step, commit))


class _Recorder:
    def __init__(self):
        self.steps = []

    def on_log(self, args, state, control, logs=None, **kw):
        self.steps.append(state.global_step)


def test_online_resume_relogs_only_steps_the_server_lacks(tmp_path, monkeypatch):
    from transformers.integrations import WandbCallback

    class Callback(_Recorder, WandbCallback):
        def __init__(self):
            _Recorder.__init__(self)

    checkpoint = _checkpoint(tmp_path, 6)
    run, cb = _OnlineRun({"train/global_step": 4, "_step": 4}), Callback()
    trainer = SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[cb]))
    held = wandb_run.resume(run, trainer, str(checkpoint), 0.25)
    assert held == wandb_run.Held(4, 4)
    assert [(r["train/global_step"], step) for r, step, _ in run.sent] == [(5, None), (6, None)]  # no step=: the
    for s in range(5, 10):  # server continues _step itself; the trainer re-runs from step 7
        cb.on_log(None, SimpleNamespace(global_step=s), None, logs={})
    assert cb.steps == [5, 6, 7, 8, 9]  # rows after what the server holds are logged
    ahead = _OnlineRun({"train/global_step": 8, "_step": 8})
    cb2 = Callback()
    wandb_run.resume(ahead, SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[cb2])), str(checkpoint), 0.25)
    assert ahead.sent == []
    for s in range(7, 11):
        cb2.on_log(None, SimpleNamespace(global_step=s), None, logs={})
    assert cb2.steps == [9, 10]  # steps 7, 8 re-run but the server has them
    fresh = _OnlineRun({}, resumed=False)
    wandb_run.resume(fresh, SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[])), None, 0.25)
    assert [r for r, _, _ in fresh.sent] == [{keys.HELDOUT: 0.25, "train/global_step": 0}]
