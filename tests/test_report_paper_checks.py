"""Issue 11, point 7: the report says, beside the paper's Table 2, what the paper itself admits and which of its
AIME cells cannot be a Pass@1 on 30 problems (k/30) or a mean over 3 seeds (k/90): computed from the cells."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sspo_exp.report.render import csv_frame, markdown
from sspo_exp.report.tables import SPECS, build_table, representable

PAPER = Path(__file__).parents[1] / "reports" / "paper" / "table2.csv"


def _brute(value: float, n: int) -> bool:
    """An independent oracle: some k/n within the printed rounding (half of 0.1)."""
    return any(abs(100 * k / n - value) <= 0.05 + 1e-9 for k in range(n + 1))


@pytest.mark.parametrize("value, n, expected", [
    (13.3, 30, True),    # 4/30 = 13.33
    (17.8, 30, False),   # 16.67, 20.0
    (17.8, 90, True),    # 16/90 = 17.78
    (13.2, 90, False),   # 12.22, 13.33
    (23.9, 90, False),   # 23.33, 24.44
    (13.35, 30, True),   # a tie: 13.33 rounds to 13.3, which prints within 0.05 of 13.35
    (0.0, 30, True), (100.0, 30, True), (56.8, 500, True), (56.9, 500, False),
])  # fmt: skip
def test_representable_by_hand(value, n, expected):
    assert representable(value, n) is expected is _brute(value, n)


def _table2():
    paper = pd.read_csv(PAPER)
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(len(paper))], "state": "finished", "group": "",
                         "objective.name": paper["method"], "model.name": paper["model"], "name": "", "last_step": 0,
                         "read_error": "",
                         **{f"eval/{c}/pass@1": paper[c] for c in ("aime24", "aime25", "math500", "codeact")}})
    return build_table(runs, SPECS["2"], allow_mixed_profiles=True), paper


def test_table2_flags_exactly_the_paper_cells_that_are_neither_k_over_30_nor_k_over_90():
    table, paper = _table2()
    expected = {(m, meth, c) for _, r in paper.iterrows() for c in ("aime24", "aime25")
                for m, meth in [(r["model"], r["method"])] if not _brute(r[c], 30) and not _brute(r[c], 90)}
    assert {k for k in table.paper_unrepresentable if k[2] != "codeact"} == expected  # codeact: test_codeact_report
    assert len(expected) > len(paper)  # "most of its AIME cells" (2 × 15 cells)
    assert not any(k[2] == "math500" for k in table.paper_unrepresentable)  # 1-dec. values are all k/1500
    md = markdown(table)
    assert "calibrated transfer study rather than completed training" in md.split("#### Paper")[1]
    assert f"{sum(k[2] == 'aime24' for k in expected)} of the paper's 15 AIME24 cells" in md
    assert "13.2§" in md  # Qwen3-8B base AIME25: 13.2 is neither k/30 nor k/90
    flags = csv_frame(table).set_index(["model", "method", "column"])["paper_not_k_over_n"]
    assert flags[("Qwen3-8B", "base", "aime25")] and not flags[("Qwen3-8B", "base", "math500")]


def test_table1_has_no_table2_caveat():
    assert SPECS["1"].paper_caveat is None


def test_each_paper_cell_says_whether_the_paper_value_lies_inside_our_seeds_t_interval():
    """Hand-computed: GRPO seeds 80, 82, 84 (mean 82, sd 2, n 3): 95% t-interval 82 ± t(0.975, 2)·2/√3 = 82 ± 4.97;
    the paper's 84.5 lies inside. GMPO seeds 86.0, 86.2: mean 86.1, sd 0.1414, half-width 12.706·0.1414/√2 = 1.27;
    the paper's 88.8 lies outside. One SAPO seed: no interval ("n < 2")."""
    paper = pd.read_csv(Path(__file__).parents[1] / "reports" / "paper" / "table1.csv")
    model = paper["model"].iloc[0]
    p = paper.set_index("method")
    values = {"grpo": [80.0, 82.0, 84.0], "gmpo": [86.0, 86.2], "sapo": [70.0]}
    runs = pd.DataFrame([{"run_id": f"{m}{s}", "state": "finished", "group": m, "objective.name": m, "seed": s,
                          "model.name": model, "name": "", "last_step": 0, "read_error": "",
                          "eval/gsm8k/pass@1": v} for m, vs in values.items() for s, v in enumerate(vs)])  # fmt: skip
    table = build_table(runs, SPECS["1"], columns=("gsm8k",), allow_mixed_profiles=True)
    got = {k[1]: v for k, v in table.paper_in_ci.items() if k[2] == "gsm8k"}
    paper_gsm8k = p.loc[p["model"] == model, "gsm8k"]
    assert abs(paper_gsm8k["grpo"] - 82.0) < 4.96 and got["grpo"] == "inside"
    assert abs(paper_gsm8k["gmpo"] - 86.1) > 1.28 and got["gmpo"] == "outside"
    assert got["sapo"] == "n < 2"
    md = markdown(table)
    assert f"{paper_gsm8k['grpo']:.1f} ({82.0 - paper_gsm8k['grpo']:+.1f}) inside" in md
    assert "lies inside or outside our seeds' 95% t-interval" in md
    flags = csv_frame(table).set_index(["method", "column"])["paper_in_t95"]
    assert flags[("gmpo", "gsm8k")] == "outside" and flags[("sapo", "gsm8k")] == "n < 2"
