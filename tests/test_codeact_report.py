"""Issue 23: Table 2's CodeAct column knows M3ToolEval's size (82) and marks the paper's cells that cannot be k/82."""

from __future__ import annotations

from sspo_exp.report.render import markdown
from test_report_paper_checks import _brute, _table2


def test_table2_codeact_column_checks_k_over_82_and_says_the_test_set_is_likely_another():
    """Issue 23: the CodeAct column knows M3ToolEval's size (82); 18.4 (Qwen3-8B base) is neither k/82 nor k/246."""
    table, paper = _table2()
    expected = {(r["model"], r["method"], "codeact") for _, r in paper.iterrows()
                if not _brute(r["codeact"], 82) and not _brute(r["codeact"], 246)}
    assert expected and {k for k in table.paper_unrepresentable if k[2] == "codeact"} == expected
    assert ("Qwen3-8B", "base", "codeact") in expected and not _brute(18.4, 82)
    md = markdown(table)
    assert f"{len(expected)} of the paper's 15 CodeAct cells" in md and "likely not M3ToolEval's 82 tasks" in md
