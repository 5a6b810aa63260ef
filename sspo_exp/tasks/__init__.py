"""The task registry: what a benchmark or training dataset *is* — its prompt builder (and the builder's id, recorded
in evaluation profiles) and, when plain answer checking does not score it, its own scorer (CodeAct's multi-turn
episodes in the sandbox).

Training (prompts of the RL dataset), the cold starts (SFT demonstrations), evaluation (benchmarks, held-out rows)
and the evaluation profile all read it, so one task is described in one place. A new question/answer benchmark needs
nothing here (the zero-shot record is the default); a task with its own prompt or scorer is one
:func:`register_task` call in a file of this package (``arithmetic.py``, ``codeact.py``).

Rows come from :mod:`sspo_exp.data` (loaders and splits); answers are checked by :mod:`sspo_exp.rewards` unless the
task has a scorer.
"""

from __future__ import annotations

from sspo_exp.tasks.registry import TaskRecord, episode_scorer, register_task, task
from sspo_exp.tasks.prompts import PromptBuilder, prompt_fn_for, prompt_id
from sspo_exp.tasks import builtin  # noqa: F401  (registers the arithmetic and CodeAct records)

__all__ = ["PromptBuilder", "TaskRecord", "episode_scorer", "prompt_fn_for", "prompt_id", "register_task", "task"]
