"""The CPU study's stored results (reports/cpu_study/README.md): what ``collect`` keeps, how ``publish`` reads it,
and the per-run quantities every table and claim is built from.

``collect`` keeps the report's two frames (``sspo_exp.report.frames``) with only the columns the study uses:
``runs.csv`` (one row per run: config, state, summary, and the provenance columns ``code.commit``, ``code.dirty``,
``identity.setting_hash`` and the evaluation profile) and ``history.csv`` (one row per run and optimizer step).

Per-run quantities (one number per run; every comparison pairs runs of the same seed):

- ``acc``: held-out greedy accuracy after RL (``eval/arithmetic/pass@1``, percent of 200 problems);
- ``reward``: mean ``train/reward`` over the last quarter of the optimizer steps (rollouts logged there);
- ``entropy_ratio``: mean ``train/entropy`` over the last quarter / ``train/entropy`` at step 1 (the initial
  policy's entropy on its first rollout, identical across objectives for one seed);
- ``var_stale``: mean over the run's stale steps of ``train/objective/seq_weight_var_stale``: the variance of the
  *ungated* Eq. 6 sequence ratio s_i (logged before any gate or clip), pooled over each optimizer step. It measures
  how far the policy drifted from the rollout policy, not the weight an objective applies;
- ``applied_var_stale``: mean over the run's stale steps of the variance of the weight the objective *applies*
  (:data:`APPLIED_VAR_STALE`; claim (a)'s primary metric). NaN for runs that did not log it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from sspo_exp import keys

BENCHMARK = "arithmetic"
ACC, ACC_BEFORE = keys.eval_key(BENCHMARK), keys.eval_key(BENCHMARK, stage=keys.BEFORE)
REWARD, ENTROPY = "train/reward", "train/entropy"
VAR, VAR_STALE, ROLLOUT_STEP = ("train/objective/seq_weight_var", "train/objective/seq_weight_var_stale",
                                "train/objective/rollout_step")  # fmt: skip
#: Claim (a)'s primary metric: Var over a stale step's responses of the weight the objective applies (docs/metrics.md;
#: ``keys.objective_key("applied_seq_weight_var", keys.STALE)`` of the applied-weight metrics, under ``train/``).
#: Runs logged before those metrics have none: claim (a) then says "no data".
APPLIED_VAR_STALE = "train/objective/applied_seq_weight_var_stale"
HISTORY_COLUMNS = ["run_id", "step", REWARD, ENTROPY, VAR, VAR_STALE, APPLIED_VAR_STALE, ROLLOUT_STEP, "train/objective/clip_frac",
                   "train/objective/attenuated_frac", "train/objective/approx_kl", "train/objective/token_ratio_var",
                   keys.OLD_HELDOUT]  # fmt: skip
RUN_COLUMNS = ["run_id", "name", "state", "group", "job_type", "last_step", "read_error", "objective.name", "objective.eps_low",
               "objective.eps_high", "objective.tau_neg", "objective.tau_pos", "gate.name", "gate.tau_neg",
               "gate.tau_pos", "trainer.mu", "trainer.max_steps", "trainer.learning_rate", "model.name",
               "model.cold_start.steps", "dataset.name", "seed", "code.version", "code.commit", "code.dirty", ACC, ACC_BEFORE,
               keys.OLD_HELDOUT, keys.OLD_HELDOUT_BEFORE, keys.OLD_HELDOUT_AFTER, "_runtime", "identity.setting_hash"]  # fmt: skip
#: The stored frames keep held-out accuracy's old column names; ``load`` reads every run's (old or new spelling) under
#: the current names (``keys.LEGACY``), which ``collect`` stores under these (``…/after``: finished runs only, as before).
STORED_RUN_NAMES = {keys.OLD_HELDOUT: keys.HELDOUT, keys.OLD_HELDOUT_BEFORE: keys.HELDOUT_BEFORE}
#: The evaluation profile behind ACC and ACC_BEFORE (sspo_exp.evaluation.profile): kept so that the grid table is
#: checked for one profile per table as every report table is; runs logged before profiles existed have none.
PROFILE_COLUMNS = [keys.eval_key(BENCHMARK, keys.profile_stat(f), stage) for stage in (keys.BEFORE, keys.AFTER)
                   for f in (*keys.PROFILE_FIELDS, "id")]  # fmt: skip
RUN_COLUMNS += PROFILE_COLUMNS + [keys.eval_key(BENCHMARK, keys.CUT, stage) for stage in (keys.BEFORE, keys.AFTER)]
#: The staleness ablation's configuration of each method: the objectives' defaults (conf/objective/, conf/gate/).
DEFAULTS = {"grpo": {"objective.eps_low": 0.2}, "gspo": {"objective.eps_low": 3e-4},
            "gmpo": {"objective.eps_low": 0.2}, "sapo": {"objective.tau_neg": 1.0, "objective.tau_pos": 1.05},
            "sspo": {"gate.name": "atanlog", "gate.tau_neg": 0.3, "gate.tau_pos": 0.2}}  # fmt: skip
METHODS = ["grpo", "gspo", "gmpo", "sapo", "sspo"]
HARD_CLIP = ["grpo", "gspo", "gmpo"]
CLAIM_MU = 4
LAST_QUARTER = 0.75


# ------------------------------------------------------------------------------------------ collect
class PartialRuns(ValueError):
    """The runs found lack finished runs that the stored frames hold (a partial or empty runs folder)."""


def collect(roots: list[str | Path], data_dir: Path, force: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the study's W&B offline runs under ``roots`` and store the compact frames in ``data_dir``. Refuses
    (:class:`PartialRuns`) to replace stored frames when a run finished in them is not finished among the runs
    found, unless ``force``: the stored data are never overwritten from a partial ``runs/``."""
    from sspo_exp.report.sources import load  # W&B's reader stays out of `publish`, which needs only the CSV frames

    runs, history = load(offline=[str(r) for r in roots])
    runs = runs.assign(**{old: runs.get(new) for old, new in STORED_RUN_NAMES.items()})
    runs[keys.OLD_HELDOUT_AFTER] = runs[keys.OLD_HELDOUT].where(runs["state"] == "finished")
    history = history.assign(**{keys.OLD_HELDOUT: history.get(keys.HELDOUT)})
    runs = runs.reindex(columns=RUN_COLUMNS).sort_values("run_id").reset_index(drop=True)
    history = history.reindex(columns=HISTORY_COLUMNS).sort_values(["run_id", "step"]).reset_index(drop=True)
    if (data_dir / "runs.csv").is_file() and not force:
        stored = pd.read_csv(data_dir / "runs.csv", usecols=["run_id", "state"])
        lost = sorted(set(stored.loc[stored["state"] == "finished", "run_id"])
                      - set(runs.loc[runs["state"] == "finished", "run_id"]))  # fmt: skip
        if lost:
            raise PartialRuns(f"{len(lost)} runs finished in {data_dir / 'runs.csv'} are not finished under "
                              f"{', '.join(map(str, roots))} (e.g. {lost[0]}): not overwriting the stored data "
                              "(pass --force to replace them)")
    data_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(data_dir / "runs.csv", index=False, float_format="%.10g")
    history.to_csv(data_dir / "history.csv", index=False, float_format="%.8g")
    (data_dir / "environment.json").write_text(json.dumps(environment(), indent=1, sort_keys=True) + "\n")
    return read_data(data_dir)


def environment() -> dict:
    """Library versions and the machine the study ran on (written by ``collect``, in the study's environment)."""
    import importlib.metadata as md
    import os
    import platform

    versions = {}
    for dist in ("sspo-exp", "torch", "trl", "transformers", "accelerate", "wandb", "hydra-core",
                 "hydra-joblib-launcher", "numpy", "pandas", "scipy", "matplotlib"):  # fmt: skip
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "versions": versions}


def read_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored frames, as the report's functions expect them (``attrs['config_columns']`` set)."""
    runs = pd.read_csv(data_dir / "runs.csv", dtype={"code.commit": str, "code.dirty": object, "group": str, "gate.name": str})
    history = pd.read_csv(data_dir / "history.csv")
    runs.attrs["config_columns"] = [c for c in RUN_COLUMNS if "." in c and not c.startswith(("code.", "eval"))]
    return runs, history


# ------------------------------------------------------------------------------------------ per-run quantities
def run_metrics(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: method, setting, seed, mu, learning rate, whether it is its method's default
    configuration (:data:`DEFAULTS`; ``report.regimes`` moves SSPO's per regime) and the per-run quantities of the
    module docstring."""
    done = runs[runs["state"] == "finished"].copy()
    rows = []
    for _, r in done.iterrows():
        h = history[history["run_id"] == r["run_id"]].sort_values("step")
        last = h[h["step"] > LAST_QUARTER * float(r["trainer.max_steps"])]
        first = h[ENTROPY].dropna().iloc[:1]  # step 1: the initial policy on its first rollout
        stale = h[VAR_STALE].dropna()
        applied = h[APPLIED_VAR_STALE].dropna() if APPLIED_VAR_STALE in h else pd.Series(dtype=float)
        rows.append({
            "run_id": r["run_id"], "method": r["objective.name"], "setting": setting(r), "seed": int(r["seed"]),
            "mu": int(r["trainer.mu"]), "lr": _float(r.get("trainer.learning_rate")),
            "default": is_default(r), "acc": float(r[ACC]),
            "acc_before": float(r[ACC_BEFORE]), "reward": float(last[REWARD].dropna().mean()),
            "entropy_first": float(first.iloc[0]) if len(first) else math.nan,
            "entropy_last": float(last[ENTROPY].dropna().mean()),
            "var_stale": float(stale.mean()) if len(stale) else math.nan,
            "applied_var_stale": float(applied.mean()) if len(applied) else math.nan,
        })  # fmt: skip
    out = pd.DataFrame(rows)
    if len(out):
        out["entropy_ratio"] = out["entropy_last"] / out["entropy_first"]
    return out


def setting(r: pd.Series) -> str:
    """A readable name of a run's hyper-parameters: ``grpo ε0.2``, ``sapo τ1/1.05``, ``sspo-atanlog τ0.3/0.2``."""
    m = r["objective.name"]
    if m in ("grpo", "gmpo", "gspo"):
        return f"{m} ε{_g(r['objective.eps_low'])}"
    if m == "sapo":
        return f"sapo τ{_g(r['objective.tau_neg'])}/{_g(r['objective.tau_pos'])}"
    gate = r["gate.name"]
    return f"sspo-{gate}" if gate == "gumbel" else f"sspo-{gate} τ{_g(r['gate.tau_neg'])}/{_g(r['gate.tau_pos'])}"


def is_default(r: pd.Series) -> bool:
    want = DEFAULTS.get(r["objective.name"], {})
    return all(_same(r.get(k), v) for k, v in want.items())


def _same(a, b) -> bool:
    if isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _g(x) -> str:
    return f"{float(x):g}"


def paired(m: pd.DataFrame, a: str, b: str, column: str, mu: int = CLAIM_MU) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of ``column`` for the default configurations of methods ``a`` and ``b`` at ``mu``, on the
    seeds both finished (in seed order)."""
    sel = m[(m["mu"] == mu) & m["default"]]
    x = sel[sel["method"] == a].set_index("seed")[column]
    y = sel[sel["method"] == b].set_index("seed")[column]
    seeds = sorted(set(x.dropna().index) & set(y.dropna().index))
    return x.loc[seeds].to_numpy(float), y.loc[seeds].to_numpy(float)

