"""The CPU study's regimes (sspo_exp/report/regimes.py, reports/cpu_study/protocol.md): which runs each regime
compares, that a verdict can differ between regimes, entropy collapse, and that the regimes are the sweeps' ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from sspo_exp import CONF_DIR, SWEEPS_DIR
from sspo_exp.report import cpu_study as cs
from sspo_exp.report import regimes as rg
from sspo_exp.report.claims import claim_verdicts

BASE = {"grpo": {"objective.eps_low": 0.2}, "gspo": {"objective.eps_low": 3e-4}, "gmpo": {"objective.eps_low": 0.2},
        "sapo": {"objective.tau_neg": 1, "objective.tau_pos": 1.05}}  # fmt: skip


def _run(rid, method, seed, lr, acc, tau=(0.3, 0.2), gate="atanlog"):
    cfg = BASE.get(method) or {"gate.name": gate, "gate.tau_neg": tau[0], "gate.tau_pos": tau[1]}
    return {"run_id": rid, "state": "finished", "objective.name": method, "seed": seed, "trainer.mu": 4,
            "trainer.max_steps": 8, "trainer.learning_rate": lr, cs.ACC: acc, cs.ACC_BEFORE: 40.0, **cfg}


def _history(rid, entropy_last=0.2):
    rows = [{"run_id": rid, "step": 0}]
    for step in range(1, 9):
        rows.append({"run_id": rid, "step": step, cs.ENTROPY: 0.2 if step == 1 else entropy_last, cs.REWARD: 1.0,
                     cs.VAR_STALE: 1e-3 if (step - 1) % 4 else np.nan})
    return rows


def _study(seeds=10):
    """Per seed s (noise e_s of mean 0): the four other methods score 50 + s at both learning rates; SSPO at
    (0.3, 0.2) scores 60 + s + e_s at 1e-4 and 40 + s + e_s at 5e-5; swapped 50 + s + e_s; rescaled 70 + s + e_s;
    gate expsig 55 + s. GRPO's entropy collapses at 5e-5 (ratio 0.25)."""
    noise = np.tile([0.5, -0.5], seeds // 2)
    runs, hist = [], []
    for s in range(seeds):
        e = noise[s]
        rows = [_run(f"{b}-{lr}-s{s}", b, s, lr, 50 + s) for b in BASE for lr in (1e-4, 5e-5)]
        rows += [_run(f"sspo-1e-4-s{s}", "sspo", s, 1e-4, 60 + s + e), _run(f"sspo-5e-5-s{s}", "sspo", s, 5e-5, 40 + s + e),
                 _run(f"swap-s{s}", "sspo", s, 1e-4, 50 + s + e, tau=(0.2, 0.3)),
                 _run(f"resc-s{s}", "sspo", s, 1e-4, 70 + s + e, tau=(0.8, 0.53)),
                 _run(f"expsig-s{s}", "sspo", s, 1e-4, 55 + s, gate="expsig")]  # fmt: skip
        runs += rows
        for r in rows:
            hist += _history(r["run_id"], 0.05 if r["run_id"] == f"grpo-5e-05-s{s}" else 0.2)
    return pd.DataFrame(runs), pd.DataFrame(hist)


def _verdicts(table, regime, claim="(c)", quantity="held-out"):
    t = table[(table["regime"] == regime) & table["claim"].str.startswith(claim)
              & table["quantity"].str.startswith(quantity)]  # fmt: skip
    return dict(zip(t["comparison"], t["verdict"]))


def test_each_regime_compares_its_own_runs():
    runs, hist = _study()
    m = cs.run_metrics(runs, hist)
    by = {r.key: rg.regime_metrics(m, r) for r in rg.REGIMES}
    sspo = {k: set(m.loc[(m["method"] == "sspo") & m["default"], "run_id"].str.split("-s").str[0]) for k, m in by.items()}
    assert sspo == {"primary": {"sspo-1e-4"}, "lr_5e-5": {"sspo-5e-5"}, "swapped_tau": {"swap"}, "rescaled_tau": {"resc"}}
    # the temperature regimes share the primary regime's other methods; the learning-rate regime has its own
    assert set(by["swapped_tau"].loc[by["swapped_tau"]["method"] == "grpo", "lr"]) == {1e-4}
    assert set(by["lr_5e-5"].loc[by["lr_5e-5"]["method"] == "grpo", "lr"]) == {5e-5}
    # the primary regime keeps the other gates (claim d) but never another regime's atanlog runs
    assert "expsig-s0" in set(by["primary"]["run_id"]) and not {"swap-s0", "resc-s0"} & set(by["primary"]["run_id"])
    assert "expsig-s0" not in set(by["swapped_tau"]["run_id"])


def test_a_verdict_can_change_with_the_regime():
    table, falls = rg.all_regimes(cs.run_metrics(*_study()))
    assert set(_verdicts(table, "primary").values()) == {"reproduced"}  # SSPO + 10 at 1e-4
    assert set(_verdicts(table, "lr_5e-5").values()) == {"opposite (significant)"}  # − 10 at 5e-5
    assert set(_verdicts(table, "swapped_tau").values()) == {"not distinguishable"}  # ± 0.5 around 0
    assert set(_verdicts(table, "rescaled_tau").values()) == {"reproduced"}
    # the protocol's claim-level verdict: reproduced only against every comparator
    by_regime = {k: claim_verdicts(t) for k, t in table.groupby("regime")}
    c = next(k for k in by_regime["primary"] if k.startswith("(c)"))
    assert by_regime["primary"][c] == by_regime["rescaled_tau"][c] == "reproduced"
    assert by_regime["lr_5e-5"][c] == by_regime["swapped_tau"][c] == "not reproduced"
    # claim (d) only in the primary regime
    assert table.loc[table["claim"].str.startswith("(d)"), "regime"].unique().tolist() == ["primary"]
    d = table[table["claim"].str.startswith("(d)") & (table["comparison"] == "atanlog vs expsig")]
    assert len(d) == 1 and d["estimate"].iloc[0] == pytest.approx(5.0)  # one τ pair: no second (d) family


def test_a_regime_counts_the_protocols_seeds_once_each():
    runs, hist = _study()
    pilot = runs[runs["run_id"] == "sspo-1e-4-s0"].assign(run_id="pilot", seed=100)  # a pilot seed enters nothing
    m = rg.regime_metrics(cs.run_metrics(pd.concat([runs, pilot]), pd.concat([hist, pd.DataFrame(_history("pilot"))])),
                          rg.REGIMES[0])  # fmt: skip
    assert "pilot" not in set(m["run_id"])
    twice = runs[runs["run_id"] == "grpo-0.0001-s3"].assign(run_id="grpo-again-s3")
    with pytest.raises(ValueError, match="grpo ε0.2 seed 3"):
        rg.regime_metrics(cs.run_metrics(pd.concat([runs, twice]),
                                         pd.concat([hist, pd.DataFrame(_history("grpo-again-s3"))])), rg.REGIMES[0])


def test_entropy_collapse_is_counted_per_regime_and_method():
    _, falls = rg.all_regimes(cs.run_metrics(*_study()))
    f = falls.set_index(["regime", "method"])
    assert f.loc[("lr_5e-5", "grpo"), "collapsed"] == 10 and f.loc[("lr_5e-5", "grpo"), "entropy_ratio_mean"] == 0.25
    assert f.loc[("primary", "grpo"), "collapsed"] == 0 and f.loc[("primary", "sspo"), "n_runs"] == 10
    assert f.loc[("swapped_tau", "grpo"), "collapsed"] == 0  # the primary regime's GRPO runs


def test_a_regime_without_runs_is_not_published(tmp_path):
    runs, hist = _study(seeds=4)
    runs = runs[~runs["run_id"].str.startswith(("swap", "resc"))]
    data = tmp_path / "data"
    data.mkdir()
    runs.reindex(columns=cs.RUN_COLUMNS).to_csv(data / "runs.csv", index=False)
    hist.reindex(columns=cs.HISTORY_COLUMNS).to_csv(data / "history.csv", index=False)
    cs.publish(data, tmp_path / "out", figures=False, exploratory=True)
    text = (tmp_path / "out" / "regimes.md").read_text()
    assert "## primary" in text and "## (i) learning rate 5e-5" in text and "swapped" not in text
    assert set(pd.read_csv(tmp_path / "out" / "regimes.csv")["regime"]) == {"primary", "lr_5e-5"}
    # the descriptive tables keep the primary learning rate only: 4 seeds per method, not 8 (both rates)
    assert set(pd.read_csv(tmp_path / "out" / "table_staleness.csv")["n_seeds"]) == {4}
    assert "(4)" in (tmp_path / "out" / "table_grid.md").read_text() and "(8)" not in (tmp_path / "out" / "table_grid.md").read_text()


def test_the_regimes_are_the_sweeps_and_the_experiment_of_the_study():
    experiment = yaml.safe_load((CONF_DIR / "experiment" / "cpu_study.yaml").read_text())
    assert experiment["trainer"]["learning_rate"] == rg.REGIMES[0].learning_rate
    tau = yaml.safe_load((SWEEPS_DIR / "cpu_study_tau.yaml").read_text())["grid"][0]["gate.tau_neg,gate.tau_pos"]
    assert [tuple(p) for p in tau] == [r.sspo_tau for r in rg.REGIMES if r.key.endswith("_tau")]
    lr = yaml.safe_load((SWEEPS_DIR / "cpu_study_lr.yaml").read_text())["grid"][0]["trainer.learning_rate"]
    assert lr == [r.learning_rate for r in rg.REGIMES if r.key.startswith("lr_")]
    for name in ("claims", "tau", "lr"):
        assert yaml.safe_load((SWEEPS_DIR / f"cpu_study_{name}.yaml").read_text())["seeds"] == list(range(10))
