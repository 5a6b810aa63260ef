"""The M3ToolEval exporter (sspo_exp.data.m3tooleval) on a tiny hand-written fixture in upstream's layout: names,
tool lists and typed golds survive, the tools (a stateful browser over its page file) run inside the sandbox."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sspo_exp.codeact.episode import EnvConfig, run_episodes
from sspo_exp.data import load_benchmark
from sspo_exp.data.m3tooleval import export, families, main, module_order
from sspo_exp.data.schema import DataError
from sspo_exp.models.tiny import build_tokenizer
from sspo_exp.tasks.codeact import judge
from test_codeact import needs_sandbox, scripted

FIXTURE = Path(__file__).parent / "fixtures" / "m3tooleval"


def test_export_keeps_upstream_names_order_tools_and_typed_golds(tmp_path, capsys):
    assert module_order(FIXTURE / "tasks") == ["toy_math", "toy_web"]  # the order of upstream's tasks/__init__.py
    rows = export(FIXTURE)
    assert [r["name"] for r in rows] == ["toy_math/half_of_seven", "toy_math/pair", "toy_math/word",
                                         "toy_web/price_of_tea"]
    assert families(rows) == {"toy_math": 3, "toy_web": 1}
    assert [t["name"] for t in rows[0]["tools"]] == ["halve", "sum"]
    assert [t["name"] for t in rows[3]["tools"]] == ["click_url", "view"]  # from the factory, as upstream resets
    assert rows[0]["tools"][0]["fn_signature"] == "halve(x: float) -> float"
    assert [r["expected_output_repr"] for r in rows] == ["3.5", "(1, 2)", "'Hello'", "3.25"]
    out = tmp_path / "m3.jsonl"
    assert main([str(FIXTURE / "tasks"), str(out)]) == 0 and "4 tasks" in capsys.readouterr().out
    bench = load_benchmark("codeact", str(out))
    assert [r["answer"] for r in bench] == ["3.5", "(1, 2)", "'Hello'", "3.25"]  # the type survives JSON
    assert "[1] click_url: Opens a page." in bench[3]["question"] and bench[3]["setup"] == rows[3]["tool_code"]


def test_export_of_a_wrong_directory_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(DataError, match="expected upstream's layout"):
        export(tmp_path)
    assert main([str(tmp_path), str(tmp_path / "x.jsonl")]) == 2
    assert "expected upstream's layout" in capsys.readouterr().err


@needs_sandbox
def test_exported_tools_run_in_the_sandbox_with_their_own_state(tmp_path):
    out = tmp_path / "m3.jsonl"
    main([str(FIXTURE), str(out)])
    rows = load_benchmark("codeact", str(out))
    tok = build_tokenizer()
    plans = {"a\n": ["<execute>print(sum(1, 2, 3), halve(7))</execute>", "<solution>3.5</solution>"],
             "b\n": ["<execute>print(click_url('/tea'))</execute>", "<solution>3.25</solution>"],
             "c\n": ["<execute>print(view())</execute>", "<solution>3.25</solution>"]}
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in plans]
    a, b, c = run_episodes(ids, scripted(tok, plans), tok, EnvConfig(), [rows[0]["setup"], rows[3]["setup"],
                                                                        rows[3]["setup"]],
                           judges=[judge(rows[0], EnvConfig()), judge(rows[3], EnvConfig()), judge(rows[3], EnvConfig())])
    assert a.observations == ["6 3.5"] and a.solution == "3.5" and a.wrong_answers == 0  # `sum` tool: no recursion
    assert b.observations == ["Tea costs 3.25."] and b.wrong_answers == 0  # the pages were read inside the sandbox
    assert c.observations == ["Shop. [Clickable '/tea']"]  # a fresh browser per episode (b's click is not seen)
    assert json.loads(out.read_text().splitlines()[1])["expected_output"] == [1, 2]


def test_a_missing_upstream_dependency_is_one_line(tmp_path):
    import shutil

    shutil.copytree(FIXTURE, tmp_path / "m3")
    module = tmp_path / "m3" / "tasks" / "impl" / "toy_math.py"
    module.write_text("import a_package_nobody_has\n" + module.read_text())
    with pytest.raises(DataError, match="importing upstream's task modules failed .*a_package_nobody_has"):
        export(tmp_path / "m3")


def test_the_ipython_stand_in_is_gone_after_the_export(tmp_path):
    """The export's IPython stand-in must not outlive it: matplotlib reads IPython.version_info when a module of that
    name is loaded, and a left-over stand-in broke every later figure in one test process (seen in CI)."""
    import sys

    before = "IPython" in sys.modules
    export(FIXTURE)
    assert ("IPython" in sys.modules) == before


#: a code-act checkout's ``scripts/eval/m3tooleval`` (upstream's code and pages are not shipped: docs/codeact.md)
UPSTREAM = os.environ.get("SSPO_M3TOOLEVAL_UPSTREAM")
UPSTREAM_FAMILIES = {"message_decoder": 8, "cryptobotanists_plant_dna_sequencer": 8, "trade_calculator": 17,
                     "travel_itinerary_planning": 15, "web_browsing": 34}  # fmt: skip


@needs_sandbox
@pytest.mark.skipif(not UPSTREAM, reason="SSPO_M3TOOLEVAL_UPSTREAM (a code-act checkout's scripts/eval/m3tooleval) "
                    "is not set: upstream's tasks are not shipped")  # fmt: skip
def test_the_real_upstream_export_has_82_tasks_whose_tools_load_in_the_sandbox_and_whose_golds_pass(tmp_path):
    """On a real checkout: 82 tasks in upstream's families; in an oracle episode per task (the real sandbox, the
    upstream answer check, retries on), a first cell finds every one of the task's tools bound and callable, and the
    gold as written by the loader is accepted as the solution at the first try."""
    out = tmp_path / "m3.jsonl"
    assert main([UPSTREAM, str(out)]) == 0
    raw = [json.loads(line) for line in out.read_text().splitlines()]
    rows = load_benchmark("codeact", str(out))
    assert len(rows) == 82 and families(raw) == UPSTREAM_FAMILIES
    tok = build_tokenizer()
    plans = {f"task {i}\n": [f"<execute>print(all(callable(globals().get(n)) for n in {[t['name'] for t in r['tools']]!r}))"
                             "</execute>", f"<solution>{row['answer']}</solution>"]
             for i, (r, row) in enumerate(zip(raw, rows, strict=True))}  # fmt: skip
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in plans]
    env = EnvConfig()
    episodes = run_episodes(ids, scripted(tok, plans), tok, env, [row["setup"] for row in rows],
                            judges=[judge(row, env) for row in rows])
    failed = [(row["id"], ep.observations[:1], ep.wrong_answers, ep.end) for row, ep in zip(rows, episodes, strict=True)
              if ep.observations[:1] != ["True"] or ep.wrong_answers or ep.end != "solution"]  # fmt: skip
    assert not failed, failed[:5]


@needs_sandbox
@pytest.mark.skipif(not UPSTREAM, reason="SSPO_M3TOOLEVAL_UPSTREAM (a code-act checkout's scripts/eval/m3tooleval) "
                    "is not set: upstream's tasks are not shipped")  # fmt: skip
def test_the_real_upstream_tasks_in_upstreams_action_format(tmp_path):
    """On a real checkout, ``env.action_format: upstream``: every task's prompt is what upstream's own
    ``Task.get_prompt(ActionMode.CODE_AS_ACTION)`` returns, and an oracle episode per task written in upstream's format
    (``Action: … End Action`` finding the tools, then ``Answer: <gold>``) is solved at the first answer."""
    import sys

    from sspo_exp.codeact.format import UPSTREAM as UPSTREAM_FORMAT
    from sspo_exp.data.m3tooleval import _PKG

    out = tmp_path / "m3.jsonl"
    assert main([UPSTREAM, str(out)]) == 0
    rows = load_benchmark("codeact", str(out))
    base = sys.modules[f"{_PKG}.base"]  # upstream's own Task, as the exporter imported it
    tasks = [t for task_list, _ in base.task_iterators for t in task_list]
    assert [t.name for t in tasks] == [r["id"] for r in rows]
    for task, row in zip(tasks, rows, strict=True):
        assert UPSTREAM_FORMAT.prompt_text(row["question"], 10, True) == task.get_prompt(base.ActionMode.CODE_AS_ACTION)
    tok = build_tokenizer()
    env = EnvConfig(action_format="upstream")
    plans = [[f"Action:\nprint(all(callable(globals().get(n)) for n in {[n for n in t.tools]!r}))\nEnd Action",
              f"Answer: {row['answer']}"] for t, row in zip(tasks, rows)]
    calls = {}

    def policy(contexts, budgets):
        out = []
        for ctx in contexts:
            k = next(i for i, p in enumerate(prompts) if ctx[: len(p)] == p)
            calls[k] = calls.get(k, 0) + 1
            out.append(tok(plans[k][min(calls[k], 2) - 1], add_special_tokens=False)["input_ids"])
        return out

    prompts = [tok(f"task {i}\n", add_special_tokens=False)["input_ids"] for i in range(len(rows))]
    episodes = run_episodes(prompts, policy, tok, env, [row["setup"] for row in rows],
                            judges=[judge(row, env) for row in rows])
    failed = [(row["id"], ep.observations[:1], ep.wrong_answers, ep.end) for row, ep in zip(rows, episodes, strict=True)
              if ep.observations[:1] != ["True"] or ep.wrong_answers or ep.end != "solution" or ep.format != 1.0]
    assert not failed, failed[:5]
