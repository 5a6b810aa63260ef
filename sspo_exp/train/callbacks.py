"""Two small ``TrainerCallback``s: held-out greedy accuracy during training, and one progress line per step."""

from __future__ import annotations

import time
from typing import Callable

from transformers import TrainerCallback


class HeldoutEval(TrainerCallback):
    """Greedy held-out accuracy every ``eval_steps`` optimizer steps (0 = never) and after the last step.

    The value goes into the trainer's metric buffer, so it is logged in that step's W&B row as
    ``train/heldout_accuracy`` (the row is written right after ``on_step_end``); the last value is kept as
    ``trainer.heldout_accuracy_after``.
    """

    trainer = None  # set by ``run._attach``

    def __init__(self, evaluate: Callable, eval_steps: int):
        self.evaluate, self.eval_steps = evaluate, eval_steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        last = state.global_step >= state.max_steps
        if last or (self.eval_steps and state.global_step % self.eval_steps == 0):
            # every process generates (ZeRO-3 / FSDP gather parameters collectively); process 0 logs
            accuracy = self.evaluate(self.trainer.model)
            self.trainer._metrics["train"]["heldout_accuracy"].append(accuracy)
            if last:
                self.trainer.heldout_accuracy_after = accuracy


class ProgressLine(TrainerCallback):
    """``step 3/40 | reward 0.81 ± 0.30 | answer 0.40 | entropy 0.52 | held-out 55.0% | 1.2 s/step``."""

    trainer = None

    def __init__(self):
        self._last = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs and "reward" not in logs:
            return
        now = time.time()
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "reward" in logs:
            parts.append(f"reward {logs['reward']:.3f} ± {logs.get('reward_std', float('nan')):.3f}")
        if "rewards/answer_reward/mean" in logs:
            parts.append(f"answer {logs['rewards/answer_reward/mean']:.3f}")
        if "entropy" in logs:
            parts.append(f"entropy {logs['entropy']:.3f}")
        if "heldout_accuracy" in logs:
            parts.append(f"held-out {100 * logs['heldout_accuracy']:.1f}%")
        if self._last is not None:
            parts.append(f"{now - self._last:.1f} s/step")
        self._last = now
        print(" | ".join(parts), flush=True)
