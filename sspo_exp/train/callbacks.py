"""Small ``TrainerCallback``s: the initial policy's evaluation, evaluation during training, W&B logging without
TRL's argument dump, one progress line per step, and no extra step for a run resumed at its last step."""

from __future__ import annotations

import time

from transformers import TrainerCallback
from transformers.integrations import WandbCallback

from sspo_exp import keys
from sspo_exp.train.sharded import generation_model
from sspo_exp.errors import ConfigError


class InitialEval(TrainerCallback):
    """The initial policy's evaluation (``Evaluator.initial``: held-out accuracy before RL, and the ``final_eval``
    benchmarks when ``final_eval.before``) and what is done with its result.

    Unsharded, ``run.py`` calls :meth:`score` with the loaded model before the trainer exists (the model is whole, on
    the training device). Under DeepSpeed ZeRO-3 / FSDP (``config.sharded_engine``) the loaded model is not usable
    before the engine holds the weights (ZeRO-3's zero.Init leaves 0-element placeholders; FSDP's RAM-efficient
    loading leaves ranks > 0 on the meta device and rank 0 on the CPU), so nothing is scored before training and
    :meth:`on_train_begin` scores the policy inside ``generation_model(trainer)`` on every process: transformers'
    ``_inner_training_loop`` calls ``on_train_begin`` after ``_prepare_for_training`` has wrapped the model
    (``accelerator.prepare`` / ``deepspeed_init``), before the first step. A resumed run reads its ``eval_before``
    files instead (``Evaluator.initial``); a resumed *sharded* run must find them all, because by then the engine
    holds the checkpoint's weights, not the initial policy's.

    ``when_scored(fn)`` calls ``fn(result)`` at once if the result exists, else as soon as it does; ``result`` is
    ``{eval_before/heldout/accuracy, eval_before/<b>/pass@1, …}`` (None before scoring).
    """

    trainer = None  # set by ``run._attach``

    def __init__(self, evaluator):
        self.evaluator, self.result, self._then = evaluator, None, []

    def score(self, model) -> dict[str, float]:
        self.result = self.evaluator.initial(model)
        for fn in self._then:
            fn(self.result)
        return self.result

    def when_scored(self, fn) -> None:
        self._then.append(fn)
        if self.result is not None:
            fn(self.result)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.result is not None:
            return
        missing = self.evaluator.initial_missing()
        if state.global_step > 0 and missing:  # e.g. final_eval changed between segments (not part of the run id)

            raise ConfigError(f"resuming at step {state.global_step} under DeepSpeed/FSDP without the initial "
                              f"policy's results {', '.join(map(str, missing))}: the engine now holds the checkpoint's "
                              "weights, so the initial policy cannot be scored here; restore the run's final_eval / "
                              "trainer.eval_samples settings, or score the initial policy with `sspo-exp eval` and "
                              "resume with final_eval.before=false")  # fmt: skip
        # every process generates (ZeRO-3 / FSDP gather parameters collectively: sharded.py); process 0 writes
        with generation_model(self.trainer) as policy:
            self.score(policy)


class AlreadyTrained(Exception):
    """Raised by :class:`StopIfTrained` to leave ``trainer.train`` before its first step."""


class StopIfTrained(TrainerCallback):
    """A run resumed from a checkpoint at ``max_steps`` (killed after its last save, before ``summary.json``) is
    already trained, but transformers' loop checks ``max_steps`` only after a step and would train one more (seen:
    "step 3/2"). At ``on_train_begin`` the checkpoint's weights and state are loaded (by the engine, under ZeRO-3 /
    FSDP), so stopping there leaves the trained policy for the final evaluation. Last in the callback list, so the
    others' ``on_train_begin`` (W&B setup, the initial evaluation's results) have run."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise AlreadyTrained(state.global_step)


class HeldoutEval(TrainerCallback):
    """Asks the evaluator (``sspo_exp.evaluation.evaluator.Evaluator.at_step``) what is due after each optimizer step
    and puts it into the trainer's metric buffer, so it lands in that step's W&B row: ``eval/heldout/accuracy`` and
    ``eval/<benchmark>/pass@1`` (transformers' ``rewrite_logs`` maps buffer key ``eval_heldout/accuracy`` to
    ``eval/heldout/accuracy`` and ``eval_<benchmark>/pass@1`` to ``eval/<benchmark>/pass@1``). The evaluator
    memoises per step, so the end-of-training evaluation reuses what the last step computed here.
    """

    trainer = None  # set by ``run._attach``

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step, last = state.global_step, state.global_step >= state.max_steps
        metrics = self.trainer._metrics["train"]
        if not self.evaluator.due(step, final=last):
            return
        # every process generates (ZeRO-3 / FSDP gather parameters collectively: sharded.py); process 0 logs
        with generation_model(self.trainer) as policy:
            due = self.evaluator.at_step(policy, step, final=last)
        for key, value in due.items():
            if key == keys.HELDOUT:
                metrics[keys.HELDOUT_LOG].append(value)
            parsed = keys.parse_eval_key(key)
            if parsed and parsed[0] == keys.AFTER and parsed[2] == keys.PASS_AT_1:
                metrics[f"eval_{parsed[1]}/{keys.PASS_AT_1}"].append(value)


class WandbLog(WandbCallback):
    """transformers' W&B callback without its config dump: the run's config is ours (``run.wandb_config``: the
    resolved config plus the derived TRL batch settings), not TRL's ~220 arguments, most of which our trainer
    ignores (an SSPO run would show ``loss_type: dapo``, ``epsilon: 0.2``). History rows use ``train/global_step``."""

    def setup(self, args, state, model, **kwargs):
        if self._wandb is None:
            return
        self._initialized = True
        if state.is_world_process_zero and self._wandb.run is not None:
            self._wandb.define_metric(keys.GLOBAL_STEP)
            self._wandb.define_metric("*", step_metric=keys.GLOBAL_STEP, step_sync=True)


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
        if keys.HELDOUT_LOG in logs:
            parts.append(f"held-out {100 * logs[keys.HELDOUT_LOG]:.1f}%")
        if self._last is not None:
            parts.append(f"{now - self._last:.1f} s/step")
        self._last = now
        print(" | ".join(parts), flush=True)
