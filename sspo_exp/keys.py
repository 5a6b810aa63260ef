"""The names of logged and summarised values: one owner for training, evaluation and the report.

Training writes them, ``sspo-exp eval`` writes them, the report reads them; each builds or parses a name only through
this module (the report imports nothing from training). Every key is documented in ``docs/metrics.md``.

History (one W&B row per optimizer step)::

    train/global_step              the optimizer step a row belongs to (the report's x axis)
    eval/heldout/accuracy          greedy held-out accuracy at that step (step 0 = the initial policy; HELDOUT)
    codeact/<stat>                 CodeAct runs: per-rollout mean of an episode statistic (CODEACT_STATS)
    train/completions/cut_before_answer   share of the rollout's completions that hit max_completion_length with no
                                   </answer> (logged once per rollout, as TRL's completions/clipped_ratio)

Summary / results, per evaluation stage and benchmark::

    <stage>/<benchmark>/pass@1     greedy Pass@1 in percent          stage: eval (trained policy, the tables' rows)
    <stage>/<benchmark>/n          problems scored                          eval_before (initial policy, the Base row)
    <stage>/<benchmark>/cut_before_answer   share (0-1) of completions that hit max_new_tokens with no </answer>
    <stage>/<benchmark>/profile.<field>     the evaluation profile (sspo_exp.evaluation.profile: backend, dtype,
                                   max_new_tokens, prompt, chat_template, chat_template_kwargs, stop, checker, id)
    reeval/<profile_id>/eval/<benchmark>/…  the same keys from `sspo-exp eval` of a run (re-scoring its checkpoint)
    eval/heldout/accuracy, eval_before/heldout/accuracy   held-out accuracy of the trained / initial policy (also
                                   the summary.json fields and the Optuna metric name)

Runs logged before held-out accuracy moved under ``eval/`` spell it the old ways (:data:`LEGACY`); readers take
either through :func:`current_name` / :func:`read`.
"""

from __future__ import annotations

import re

#: History keys.
GLOBAL_STEP = "train/global_step"
#: Held-out accuracy (greedy, ``trainer.eval_samples`` problems of the training set's held-out split), in [0, 1], in
#: the ``eval/`` section beside the benchmarks: the history key (every held-out evaluation, step 0 = the initial
#: policy), the W&B summary key and the ``summary.json`` field of the trained policy, and the Optuna metric name.
HELDOUT = "eval/heldout/accuracy"
#: The initial policy's held-out accuracy (W&B summary key and ``summary.json`` field), as ``eval_before/<b>/…``.
HELDOUT_BEFORE = "eval_before/heldout/accuracy"
#: HELDOUT as the trainer's metric buffer holds it: transformers' W&B callback (``rewrite_logs``) logs a buffer key
#: ``eval_<x>`` as ``eval/<x>``, so this is the one name under another prefix, not a second name.
HELDOUT_LOG = "eval_" + HELDOUT.removeprefix("eval/")
#: Held-out accuracy's old spellings, in runs logged before it moved under ``eval/`` (and in the column names of the
#: CPU study's stored frames): W&B history and last value, trainer log row, W&B summary, summary.json / Optuna metric.
OLD_HELDOUT, OLD_HELDOUT_LOG = "train/heldout_accuracy", "heldout_accuracy"
OLD_HELDOUT_BEFORE, OLD_HELDOUT_AFTER = "heldout_accuracy/before", "heldout_accuracy/after"
OLD_SUMMARY_BEFORE, OLD_SUMMARY_AFTER = "heldout_accuracy_before", "heldout_accuracy_after"
#: Old spelling -> the current name (several old spellings of one quantity map to one name).
LEGACY = {OLD_HELDOUT: HELDOUT, OLD_HELDOUT_AFTER: HELDOUT, OLD_SUMMARY_AFTER: HELDOUT, OLD_HELDOUT_LOG: HELDOUT_LOG,
          OLD_HELDOUT_BEFORE: HELDOUT_BEFORE, OLD_SUMMARY_BEFORE: HELDOUT_BEFORE}  # fmt: skip


def current_name(key: str) -> str:
    """The name a key has now (an old spelling of :data:`LEGACY` -> its current name; any other key as it is)."""
    return LEGACY.get(key, key)


def spelling_in(columns, key: str) -> str:
    """``key`` if ``columns`` hold it, else the first of its old spellings they hold (frames stored with the old
    names, e.g. the CPU study's), else ``key``."""
    if key in columns:
        return key
    return next((old for old, new in LEGACY.items() if new == key and old in columns), key)


def read(values: dict, key: str, default=None):
    """``values[key]`` (a summary, log row or summary.json), else the value under an old spelling of ``key`` (an old
    run's), else ``default``."""
    if key in values:
        return values[key]
    old = [values[k] for k, new in LEGACY.items() if new == key and k in values]
    return old[-1] if old else default
#: CodeAct episode statistics (``sspo_exp.codeact.episode.Episode.stats``), logged per rollout as ``codeact/<stat>``.
CODEACT_STATS = ("turns", "executions", "errors", "timeouts", "sandbox_kills", "truncated_outputs",
                 "ended_with_solution", "policy_tokens", "observation_tokens")


def codeact_key(stat: str) -> str:
    """``codeact/executions``, ... (a stat of :data:`CODEACT_STATS`)."""
    if stat not in CODEACT_STATS:
        raise ValueError(f"stat={stat!r}: one of {CODEACT_STATS}")
    return f"codeact/{stat}"


#: Our objective's diagnostics as logged by a verl run (sspo_exp.integrations.verl); the report maps them to
#: ``train/objective/<metric>`` (sspo_exp.report.engines).
VERL_OBJECTIVE_PREFIX = "actor/objective/"

#: Evaluation stages: the summary-key prefix and the run directory's results folder of each.
AFTER = "eval"  #: the trained policy (Tables 1-2)
BEFORE = "eval_before"  #: the initial policy (the Base row)
STAGES = (AFTER, BEFORE)
#: Per-benchmark statistics in the summary.
PASS_AT_1, N, CUT = "pass@1", "n", "cut_before_answer"
STATS = (PASS_AT_1, N, CUT)
#: The evaluation profile's fields, as per-benchmark stats ``profile.<field>`` (sspo_exp.evaluation.profile).
PROFILE = "profile"
PROFILE_FIELDS = ("backend", "dtype", "max_new_tokens", "prompt", "chat_template", "chat_template_kwargs", "stop",
                  "checker")  # fmt: skip
#: TRL metric-buffer name of the rollout's cut share (``train/`` is prepended when logged): sspo_exp.train.trainer.
ROLLOUT_CUT = "completions/cut_before_answer"

_EVAL_KEY = re.compile(r"^(?P<stage>eval|eval_before)/(?P<benchmark>[^/]+)/(?P<stat>[^/]+)$")


def eval_key(benchmark: str, stat: str = PASS_AT_1, stage: str = AFTER) -> str:
    """``eval/gsm8k/pass@1``, ``eval_before/aime25/n``, ..."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: one of {STAGES}")
    return f"{stage}/{benchmark}/{stat}"


def parse_eval_key(key: object) -> tuple[str, str, str] | None:
    """``(stage, benchmark, stat)`` of an evaluation key, else None."""
    m = _EVAL_KEY.match(key) if isinstance(key, str) else None
    return (m["stage"], m["benchmark"], m["stat"]) if m else None


def benchmarks_in(keys, stage: str = AFTER, stat: str = PASS_AT_1) -> list[str]:
    """The benchmarks that have ``<stage>/<benchmark>/<stat>`` among ``keys``, sorted."""
    found = {p[1] for p in map(parse_eval_key, keys) if p and p[0] == stage and p[2] == stat}
    return sorted(found)


def profile_stat(field: str) -> str:
    """``profile.dtype``: the stat under which a profile field is summarised (``eval/gsm8k/profile.dtype``)."""
    return f"{PROFILE}.{field}"


def is_summary_stat(stat: str) -> bool:
    return stat in STATS or stat.startswith(PROFILE + ".")


def record_stats(record: dict) -> dict:
    """A result JSON's summary stats: pass@1, n, cut_before_answer and its profile's fields as ``profile.<field>``
    (a mapping value, chat_template_kwargs, as sorted JSON so every summary value is a scalar)."""
    import json

    out = {k: record[k] for k in STATS if k in record}
    for f, v in (record.get(PROFILE) or {}).items():
        out[profile_stat(f)] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return out


def summary_keys(results: dict[str, dict], stage: str = AFTER) -> dict[str, float]:
    """``{benchmark: {stat: value}}`` → ``{<stage>/<benchmark>/<stat>: value}`` (the stats this module names)."""
    return {eval_key(b, s, stage): v for b, stats in results.items() for s, v in stats.items() if is_summary_stat(s)}


def reeval_prefix(profile_id: str) -> str:
    """``reeval/<profile_id>/``: where ``sspo-exp eval`` of a run puts its keys in the run's summary (training's
    own ``eval/…`` stay as they were)."""
    return f"reeval/{profile_id}/"


# ----------------------------------------------------------------------------------------------- pruned runs
#: W&B summary key of a run an Optuna pruner stopped: the step at which it was pruned (``sspo_exp.sweeps.pruning``).
PRUNED_STEP = "optuna/pruned_step"
#: W&B summary keys naming the trial and study of a pruned run.
PRUNED_TRIAL, PRUNED_STUDY = "optuna/trial", "optuna/study"
#: W&B tag of a pruned run.
PRUNED_TAG = "pruned"


def is_pruned(summary: dict) -> bool:
    """A run whose W&B summary says it was pruned and that has logged no step past that point since (a later
    launch of the same config resumes and may finish it)."""
    pruned_at = summary.get(PRUNED_STEP)
    if pruned_at is None:
        return False
    last = summary.get(GLOBAL_STEP)
    return last is None or last <= pruned_at


# --- the objective's diagnostics (sspo_exp.train.diagnostics; history ``train/objective/...``) -----------------------

#: ``objective/<metric>`` for every metric of ``sspo_exp.objectives.METRICS``, pooled per optimizer step.
OBJECTIVE_PREFIX = "objective/"
#: The step's index within its rollout: 0 = fresh (π_θ = π_old), 1 … μ−1 = stale (off-policy).
ROLLOUT_STEP = "objective/rollout_step"
#: The drift metric on stale steps only: Var over the step's responses of the ungated Eq. 6 ratio s_i.
DRIFT_VAR_STALE = "objective/seq_weight_var_stale"
STALE, FRESH = "stale", "fresh"
#: Metrics also logged split by the step's place in its rollout: ``objective/<metric>_stale`` on stale steps only and
#: ``objective/<metric>_fresh`` on fresh steps only (the weights each objective applies, docs/metrics.md).
PHASE_METRICS = ("applied_seq_weight_mean", "applied_seq_weight_var", "grad_seq_weight_mean", "grad_seq_weight_var")


def objective_key(metric: str, phase: str | None = None) -> str:
    """``objective/applied_seq_weight_var`` or, with ``phase`` (:data:`STALE`/:data:`FRESH`), ``…_var_stale``."""
    if phase is None:
        return OBJECTIVE_PREFIX + metric
    if phase not in (STALE, FRESH) or metric not in PHASE_METRICS:
        raise ValueError(f"phase={phase!r} metric={metric!r}: phase one of {STALE}, {FRESH}; metric one of {PHASE_METRICS}")
    return f"{OBJECTIVE_PREFIX}{metric}_{phase}"
