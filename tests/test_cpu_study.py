"""The CPU study's analysis (sspo_exp/report/cpu_study.py): per-run quantities, claims, and the published tables,
which must regenerate byte-for-byte from the stored compact results (reports/cpu_study/v1/data/ for the first version)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sspo_exp.report import cpu_study as cs
from sspo_exp.report import stats

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "reports" / "cpu_study"
V1 = STUDY / "v1"  # the first version (exploratory): its stored data and published files
CONFIGS = {"grpo": {"objective.eps_low": 0.2}, "gspo": {"objective.eps_low": 3e-4}, "gmpo": {"objective.eps_low": 0.2},
           "sapo": {"objective.tau_neg": 1, "objective.tau_pos": 1.05},
           "sspo": {"gate.name": "atanlog", "gate.tau_neg": 0.3, "gate.tau_pos": 0.2}}  # fmt: skip


def _run(run_id, method, seed, mu=4, acc=50.0, **config):
    row = {"run_id": run_id, "state": "finished", "objective.name": method, "seed": seed, "trainer.mu": mu,
           "trainer.max_steps": 8, cs.ACC: acc, cs.ACC_BEFORE: 40.0, **CONFIGS.get(method, {}), **config}
    return row


def _history(run_id, entropy_first, entropy_last, var, reward):
    """8 steps at mu = 4: steps 1 and 5 fresh, the rest stale; the last quarter is steps 7-8 (the reward is logged
    at every step here; TRL logs it once per rollout, the quantity is the mean of what was logged)."""
    rows = [{"run_id": run_id, "step": 0, cs.ENTROPY: np.nan}]  # the held-out accuracy row of step 0 has no entropy
    for step in range(1, 9):
        stale = (step - 1) % 4 > 0
        rows.append({"run_id": run_id, "step": step, cs.ENTROPY: entropy_first if step == 1 else entropy_last,
                     cs.VAR_STALE: var if stale else np.nan, cs.REWARD: reward})
    return rows


def test_per_run_quantities_follow_their_definitions():
    runs = pd.DataFrame([_run("a", "grpo", 0)])
    hist = pd.DataFrame(_history("a", 0.2, 0.05, 1e-3, 1.5))
    hist.loc[hist["step"] == 6, cs.REWARD] = 1.0  # step 6 is not in the last quarter (steps > 6)
    hist.loc[hist["step"] == 8, cs.REWARD] = 1.8
    hist.loc[hist["step"] == 7, cs.REWARD] = np.nan  # not logged: not counted
    hist.loc[hist["step"] == 4, cs.VAR_STALE] = 4e-3  # stale steps: 2, 3, 4, 6, 7, 8
    m = cs.run_metrics(runs, hist).iloc[0]
    assert m["entropy_first"] == 0.2 and m["entropy_last"] == 0.05 and m["entropy_ratio"] == pytest.approx(0.25)
    assert m["reward"] == pytest.approx(1.8)  # step 8's is the only logged reward in the last quarter
    assert m["var_stale"] == pytest.approx((5 * 1e-3 + 4e-3) / 6)
    assert m["default"] and m["setting"] == "grpo ε0.2"


def _study(sspo_var, base_var, sspo_acc, base_acc, seeds=5):
    runs, hist = [], []
    for s in range(seeds):
        for method in cs.METHODS:
            rid = f"{method}-s{s}"
            sspo = method == "sspo"
            runs.append(_run(rid, method, s, acc=(sspo_acc if sspo else base_acc) + s))
            hist += _history(rid, 0.2, 0.1 if sspo else 0.05, (sspo_var if sspo else base_var) * (1 + s), 1.0 + s / 10)
    return pd.DataFrame(runs), pd.DataFrame(hist)


def _row(table, claim_prefix, comparison, quantity_prefix=""):
    sel = table[table["claim"].str.startswith(claim_prefix) & (table["comparison"] == comparison)
                & table["quantity"].str.startswith(quantity_prefix)]
    assert len(sel) == 1, (claim_prefix, comparison, quantity_prefix, len(sel))
    return sel.iloc[0]


def test_claims_follow_the_one_comparator_rule_holm_and_the_verdict_words():
    m = cs.run_metrics(*_study(sspo_var=1e-4, base_var=4e-4, sspo_acc=60, base_acc=50, seeds=10))
    table = cs.claims(m)
    # the one comparator rule: SSPO against each of the four other methods in every family of (a)-(c)
    for claim in ("(a)", "(b)", "(c)"):
        for q in table.loc[table["claim"].str.startswith(claim), "quantity"].unique():
            got = table[(table["quantity"] == q)]["comparison"].tolist()
            assert got == ["SSPO vs GRPO", "SSPO vs GSPO", "SSPO vs GMPO", "SSPO vs SAPO"], (claim, q)
    # (a)'s primary metric (the applied weight) is not in these runs: no data, never a verdict from the drift
    a = _row(table, "(a)", "SSPO vs GSPO", "Var of the weight")
    assert a["role"] == "primary" and a["verdict"] == "no data"
    drift = _row(table, "(a)", "SSPO vs GSPO", "Var of the UNGATED")
    # the per-seed ratio is exactly 0.25 on every seed: no spread, so the test's p is the exact sign-flip p of 10 equal
    # signs, 2 / 2^10 (Holm x4 keeps it below 0.05); at 5 seeds the same data could not be significant (2 / 32)
    assert drift["role"] == "secondary" and drift["estimate"] == pytest.approx(0.25) and drift["n_seeds"] == 10
    assert drift["p_t"] == drift["p_sign_flip"] == pytest.approx(2 / 1024) and drift["verdict"] == "reproduced"
    five = _row(cs.claims(cs.run_metrics(*_study(1e-4, 4e-4, 60, 50, seeds=5))), "(a)", "SSPO vs GSPO", "Var of the UN")
    assert five["p_t"] == pytest.approx(2 / 32) and five["verdict"] == "not distinguishable"
    b = _row(table, "(b)", "SSPO vs GMPO")
    assert b["estimate"] == pytest.approx(2.0) and b["verdict"] == "reproduced"
    c = _row(table, "(c)", "SSPO vs SAPO", "held-out")
    assert c["estimate"] == pytest.approx(10.0) and c["ci_low"] == c["ci_high"] == 10.0
    r = _row(table, "(c)", "SSPO vs GRPO", "reward")
    assert r["estimate"] == 0 and r["verdict"] == "not distinguishable"
    worse = cs.claims(cs.run_metrics(*_study(4e-4, 1e-4, 40, 50, seeds=10)))
    assert _row(worse, "(a)", "SSPO vs GMPO", "Var of the UNGATED")["verdict"] == "opposite (significant)"
    assert _row(worse, "(c)", "SSPO vs GSPO", "held-out")["verdict"] == "opposite (significant)"
    assert (table[table["claim"].str.startswith("(d)")]["verdict"] == "no data").all()


def test_noisy_differences_are_holm_adjusted_within_the_family():
    """Per-seed accuracy differences d = (6, 1, 9, 2, 7): unadjusted t-test p < 0.05 for each of the four
    comparisons, but they share a family: the verdict uses Holm's adjusted p (here four times the common p)."""
    runs, hist = _study(1e-3, 1e-3, 50, 50)
    noise = {0: 6.0, 1: 1.0, 2: 9.0, 3: 2.0, 4: 7.0}
    sspo = runs["objective.name"] == "sspo"
    runs.loc[sspo, cs.ACC] += runs.loc[sspo, "seed"].map(noise)
    table = cs.claims(cs.run_metrics(runs, hist))
    fam = table[table["quantity"].str.startswith("held-out accuracy after")]
    d = np.array([6.0, 1.0, 9.0, 2.0, 7.0])
    assert fam["p_t"].tolist() == pytest.approx([stats.t_test_p(d)] * 4)
    assert fam["p_holm"].tolist() == pytest.approx([min(1.0, 4 * stats.t_test_p(d))] * 4)
    assert stats.t_test_p(d) < 0.05 < 4 * stats.t_test_p(d)
    assert set(fam["verdict"]) == {"not distinguishable"}


def test_gate_claim_at_the_first_temperature_pair_and_averaged_over_both_on_complete_seeds():
    rows = []
    gates = {"atanlog": [72, 60], "siglog": [66, 70], "expsig": [50, 50], "expatan": [40, 40]}
    jitter = {0: 0.1, 1: -0.1, 2: 0.0, 3: 0.0}  # atanlog's per-seed spread (mean 0 on seeds 0-3 and on 0-2): a t-test
    for s in range(4):
        for gate, (first, second) in gates.items():
            for (tn, tp), a in (((0.3, 0.2), first), ((0.6, 0.5), second)):
                if s == 3 and gate == "siglog" and tn == 0.6:
                    continue  # seed 3 lacks one siglog run: complete for the first pair only
                rows.append(_run(f"{gate}{tn}-s{s}", "sspo", s, acc=a + s + jitter[s] * (gate == "atanlog"), **{"gate.name": gate, "gate.tau_neg": tn,
                                                                               "gate.tau_pos": tp}))  # fmt: skip
        rows.append(_run(f"gumbel-s{s}", "sspo", s, acc=30 + s, **{"gate.name": "gumbel"}))
    runs = pd.DataFrame(rows)
    hist = pd.DataFrame([r for rid in runs["run_id"] for r in _history(rid, 0.2, 0.1, 1e-4, 1.0)])
    m = cs.run_metrics(runs, hist)
    first, both = cs.gate_scores(m), cs.gate_scores(m, both_pairs=True)
    assert list(first.index) == [0, 1, 2, 3] and first.loc[0, "atanlog"] == 72.1 and first.loc[3, "gumbel"] == 33
    assert list(both.index) == [0, 1, 2] and both.loc[0, "atanlog"] == pytest.approx(66.1) and both.loc[2, "siglog"] == 70
    rows = pd.DataFrame(cs.gate_claim(m))
    first, both = rows[rows["role"] == "primary"], rows[rows["role"] == "secondary"]
    # every other gate is a pre-registered comparator (no post-hoc "best other gate")
    assert first["comparison"].tolist() == ["atanlog vs expsig", "atanlog vs expatan", "atanlog vs siglog",
                                            "atanlog vs gumbel"]  # fmt: skip
    sig = first.set_index("comparison").loc["atanlog vs siglog"]
    assert sig["estimate"] == pytest.approx(6) and sig["n_seeds"] == 4 and sig["verdict"] == "reproduced"
    sig2 = both.set_index("comparison").loc["atanlog vs siglog"]
    assert sig2["estimate"] == pytest.approx(-2) and sig2["n_seeds"] == 3 and sig2["verdict"] == "opposite (significant)"
    assert first["note"].iloc[0].startswith("ranking atanlog")
    few = pd.DataFrame(cs.gate_claim(m[m["setting"] != "sspo-gumbel"]))
    assert (few.loc[few["comparison"] == "atanlog vs gumbel", "verdict"] == "no data").all()


def test_published_tables_regenerate_from_the_stored_results(tmp_path):
    """Every published table (md, tex, csv), the claims and the provenance, recomputed from data/*.csv and *.json
    only, must equal the committed files byte for byte."""
    if not (V1 / "data" / "runs.csv").exists():
        pytest.fail("reports/cpu_study/v1/data/runs.csv is missing: the study's stored results must be committed")
    written = cs.publish(V1 / "data", tmp_path, figures=False, exploratory=True, protocol=STUDY / "protocol.md")
    names = sorted(p.name for p in written)
    assert {"table_grid.md", "table_staleness.csv", "claims.md", "claims.csv", "provenance.json"} <= set(names)
    for name in names:
        assert (tmp_path / name).read_text() == (V1 / name).read_text(), f"{name} differs from the published one"


def test_published_grid_table_checks_evaluation_profiles_when_the_runs_recorded_them(tmp_path):
    """The study's grid table obeys the report's one-profile-per-table rule: runs that recorded different profiles
    are refused; stored runs that predate recorded profiles are built, and the table says their profile is unknown."""
    from sspo_exp import keys
    from sspo_exp.report.tables import MixedProfiles

    runs, hist = _study(1e-3, 4e-3, 60.0, 50.0, seeds=2)
    runs = runs.assign(state="finished", **{"trainer.max_steps": 8}).reindex(columns=cs.RUN_COLUMNS)
    data = tmp_path / "data"
    data.mkdir()
    hist.reindex(columns=cs.HISTORY_COLUMNS).to_csv(data / "history.csv", index=False)
    runs.to_csv(data / "runs.csv", index=False)
    cs.publish(data, tmp_path / "out", figures=False, exploratory=True)
    assert "no profile recorded" in (tmp_path / "out" / "table_grid.md").read_text()

    for stage in (keys.BEFORE, keys.AFTER):
        for field in (*keys.PROFILE_FIELDS, "id"):
            runs[keys.eval_key(cs.BENCHMARK, keys.profile_stat(field), stage)] = "x"
    runs.loc[runs["objective.name"] == "sspo", keys.eval_key(cs.BENCHMARK, keys.profile_stat("dtype"))] = "bfloat16"
    runs.to_csv(data / "runs.csv", index=False)
    with pytest.raises(MixedProfiles, match="dtype: "):
        cs.publish(data, tmp_path / "out2", figures=False, exploratory=True)


def test_claim_a_is_tested_on_the_applied_weight_when_the_runs_logged_it_not_on_the_drift():
    """SSPO drifts 4x more (ungated Var(s_i)) but applies weights whose variance is 4x smaller: (a)'s primary row is
    "reproduced" from the applied weight while the drift row says "opposite (significant)"; per-run quantity = mean
    over the stale steps of what was logged."""
    runs, hist = _study(sspo_var=4e-4, base_var=1e-4, sspo_acc=50, base_acc=50, seeds=10)  # no spread: 10 seeds
    sspo = hist["run_id"].str.startswith("sspo")
    hist[cs.APPLIED_VAR_STALE] = hist[cs.VAR_STALE].where(~sspo, hist[cs.VAR_STALE] / 16)
    m = cs.run_metrics(runs, hist)
    assert m.set_index("run_id").loc["sspo-s0", "applied_var_stale"] == pytest.approx(4e-4 / 16)
    table = cs.claims(m)
    applied = table[table["quantity"].str.startswith("Var of the weight")]
    assert applied["role"].eq("primary").all() and applied["verdict"].eq("reproduced").all()
    assert applied["estimate"].tolist() == pytest.approx([0.25] * 4)
    drift = table[table["quantity"].str.startswith("Var of the UNGATED")]
    assert drift["verdict"].eq("opposite (significant)").all()
