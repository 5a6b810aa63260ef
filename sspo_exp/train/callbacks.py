"""Two small ``TrainerCallback``s: held-out greedy accuracy during training, and one progress line per step."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from sspo_exp.train.sharded import generation_model


class HeldoutEval(TrainerCallback):
    """Greedy held-out accuracy every ``eval_steps`` optimizer steps (0 = never) and after the last step; the
    ``final_eval`` benchmarks every ``every_steps`` steps (0 = only after training, in ``run.train``).

    The values go into the trainer's metric buffer, so they are logged in that step's W&B row as
    ``train/heldout_accuracy`` and ``eval/<benchmark>/pass@1`` (transformers' ``rewrite_logs`` maps the buffer key
    ``eval_<benchmark>/pass@1`` to ``eval/...``); the last held-out value is kept as
    ``trainer.heldout_accuracy_after``. ``evaluator`` is a :class:`sspo_exp.train.final_eval.Evaluator`, memoised
    per step, so the end-of-training evaluation reuses what was computed here.
    """

    trainer = None  # set by ``run._attach``

    def __init__(self, evaluator, eval_steps: int, every_steps: int = 0):
        self.evaluator, self.eval_steps, self.every_steps = evaluator, eval_steps, every_steps

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step, last = state.global_step, state.global_step >= state.max_steps
        metrics = self.trainer._metrics["train"]
        heldout = self.evaluator.heldout_rows and (last or (self.eval_steps and step % self.eval_steps == 0))
        benchmarks = self.every_steps and step % self.every_steps == 0
        if not (heldout or benchmarks):
            return
        # every process generates (ZeRO-3 / FSDP gather parameters collectively: sharded.py); process 0 logs
        with generation_model(self.trainer) as policy:
            if heldout:
                result, _ = self.evaluator.heldout(policy, step)
                metrics["heldout_accuracy"].append(result.accuracy)
                if last:
                    self.trainer.heldout_accuracy_after = result.accuracy
            if benchmarks:
                for name in self.evaluator.benchmarks:
                    result, _ = self.evaluator.benchmark(policy, step, name)
                    metrics[f"eval_{name}/pass@1"].append(result.pass_at_1)


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
