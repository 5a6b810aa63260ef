"""CodeAct data (CodeActInstruct -> verifiable RL rows, M3ToolEval -> the `codeact` benchmark), its evaluation,
and the hooks into training and `sspo-exp eval` end to end on the shipped samples."""

from __future__ import annotations

import json

import pytest

from sspo_exp.data import BENCHMARKS, DataError, load_benchmark, load_dataset_rows
from sspo_exp.data.codeact import SAMPLE_TEST, SAMPLE_TRAIN, subset_of
from test_codeact import needs_sandbox, scripted


def _train_cfg(path, **kw):
    return {"name": "codeact", "path": str(path), "heldout_split": None, "heldout_size": 0, **kw}


def test_codeactinstruct_rows_are_the_verifiable_subsets_with_their_checkers():
    every = ["math", "hotpotqa", "wikitablequestions", "apps"]
    rows = {r["id"]: r for r in load_dataset_rows(_train_cfg(SAMPLE_TRAIN, subsets=every), "train")}
    # alfworld (needs its simulator) and an APPS row without test cases are skipped as unverifiable
    assert set(rows) == {"sample/math/0", "sample/math/1", "sample/hotpotqa/0", "sample/wikitablequestions/0",
                         "sample/apps/1"}
    # by default the subsets whose environment (search tool, preloaded table) is not rebuilt are left out
    default = {r["id"] for r in load_dataset_rows(_train_cfg(SAMPLE_TRAIN), "train")}
    assert default == {"sample/math/0", "sample/math/1", "sample/apps/1"}
    assert rows["sample/math/0"]["answer"] == "1170" and rows["sample/math/0"]["checker"] == "math"
    assert rows["sample/hotpotqa/0"]["checker"] == "mint" and rows["sample/hotpotqa/0"]["answer"] == "Seine"
    assert rows["sample/math/0"]["question"].startswith("Task:\nWhat is the sum")  # the first user turn
    assert json.loads(rows["sample/apps/1"]["answer"])[1] == {"input": "12\n", "output": "144\n"}
    only = load_dataset_rows(_train_cfg(SAMPLE_TRAIN, subsets=["math"]), "train")
    assert {r["subset"] for r in only} == {"math"}
    with pytest.raises(DataError, match="dataset.subsets has \\['alfworld'\\]"):
        load_dataset_rows(_train_cfg(SAMPLE_TRAIN, subsets=["alfworld"]), "train")


def test_subset_from_id_or_text():
    assert subset_of("oct28_full6728/reasoning/17", "") == "math"
    assert subset_of("x/1", "You are in the middle of a room. Looking quickly around you") == "alfworld"
    assert subset_of("x/2", "Write Python code to solve the task.\nGiven n") == "apps"
    assert subset_of("x/3", "hello") is None


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _traj(i, solution=True):
    last = f"<solution> {i} </solution>" if solution else "I give up."
    return {"id": f"t/math/{i}", "conversations": [{"role": "user", "content": f"Task:\nq{i}"},
                                                   {"role": "assistant", "content": last}]}


def test_malformed_training_rows_follow_the_projects_policy(tmp_path, caplog):
    ok = _write(tmp_path / "a.jsonl", [_traj(i) for i in range(19)] + [_traj(19, solution=False)])
    rows = load_dataset_rows(_train_cfg(ok), "train")
    assert len(rows) == 19 and "skipped 1 of 20 rows" in caplog.text  # skipped and counted
    bad = _write(tmp_path / "b.jsonl", [_traj(i, solution=i % 2 == 0) for i in range(20)])
    with pytest.raises(DataError, match="more than max_skip_frac"):
        load_dataset_rows(_train_cfg(bad), "train")
    wrong = _write(tmp_path / "c.jsonl", [{"id": "x/math/1", "conversations": "not a list"}])
    with pytest.raises(DataError, match="field 'conversations' must be a list"):
        load_dataset_rows(_train_cfg(wrong), "train")


def test_m3tooleval_benchmark_is_strict_and_needs_a_local_file(tmp_path):
    assert BENCHMARKS["codeact"] == "test"
    rows = load_benchmark("codeact", str(SAMPLE_TEST))
    assert [r["answer"] for r in rows] == ["1260.0", "60.0", "'TGGCAAT'", "[3, 2, 2]"]  # repr: the type survives
    assert all(r["checker"] == "exact" and "def " in r["setup"] for r in rows)
    assert "[1] convert_currency:" in rows[0]["question"] and "Instruction: A trader" in rows[0]["question"]
    with pytest.raises(DataError, match="eval.data.codeact=FILE"):
        load_benchmark("codeact")
    broken = [json.loads(line) for line in SAMPLE_TEST.read_text().splitlines()]
    del broken[1]["expected_output"]
    with pytest.raises(DataError, match="row 1: field 'answer' is missing or blank; a benchmark must keep every row"):
        load_benchmark("codeact", str(_write(tmp_path / "m3.jsonl", broken)))


@needs_sandbox
def test_codeact_solved_rate_uses_the_tools_and_the_checker():
    from sspo_exp.tasks.codeact import evaluate_codeact
    from sspo_exp.codeact.prompts import build_prompt
    from sspo_exp.models.tiny import build_tokenizer

    tok = build_tokenizer()
    rows = load_benchmark("codeact", str(SAMPLE_TEST))
    prompts = [build_prompt(r["question"], tok) for r in rows]
    plans = [["<execute>p = convert_currency(40 * 25, 1.2)\nprint(estimate_final_value(p, calculate_tariff(p, 5)))"
              "</execute>", "<solution>1260.0</solution>"],
             ["<execute>print(calculate_tariff(480, 12.5))</execute>", "<solution>60</solution>"],
             ["<execute>print(reverse_complement('ATTGCCA'))</execute>", "<solution>'TGGCAAT'</solution>"],
             ["<solution>[3, 2, 1]</solution>"]]  # wrong
    result = evaluate_codeact(None, tok, rows, prompts, 2000, policy=scripted(tok, dict(zip(prompts, plans))))
    assert (result.n, result.n_correct, result.pass_at_1) == (4, 3, 75.0)
    rec = result.records[0]
    assert rec.correct and rec.extracted == "1260.0" and "Observation:\n1260.0" in rec.completion
    # M3ToolEval's protocol: the wrong answer is answered with the retry message, the episode goes on (here the
    # scripted policy has nothing more to say) and the last answer is scored
    assert not result.records[3].correct and "wrong_answers=1" in result.records[3].error


def test_codeact_arith_rows_and_cold_start_targets_match_the_environment():
    from sspo_exp.stages.codeact import execute_probability, targets
    from sspo_exp.codeact.episode import EnvConfig, observation_text
    from sspo_exp.data.codeact_arith import rows
    from sspo_exp.sandbox import Observation

    ds = {"name": "codeact_arith", "prompt_style": "compact", "env": {"max_turns": 3}, "train_size": 2000,
          "test_size": 20}
    test, train = rows(ds, "test"), rows(ds, "train")
    assert test[0]["checker"] == "math" and test[0]["id"].startswith("codeact_arith-test-")
    assert len({r["question"] for r in test}) == 20 and len(train) == 2000
    assert not {r["question"] for r in test} & {r["question"] for r in train}  # disjoint splits
    assert rows(ds, "test") == test and rows({**ds, "seed": 1}, "test") != test  # deterministic in the seed
    assert {len(r["answer"]) for r in test + train} == {4}  # operands 32..99: every product has 4 digits
    assert all(int(r["answer"]) == eval(r["question"]) for r in test + train)  # noqa: S307 (our own a*b)
    rate = {"below": 0.9, "above": 0.2}
    assert execute_probability("59*99", rate, 60) == 0.9 and execute_probability("60*32", rate, 60) == 0.2
    pairs = targets(ds, rate, 60, seed=0)
    for side, low, high in (("below", 0.85, 0.95), ("above", 0.15, 0.25)):
        mine = [segs for p, segs in pairs if (int(p.split("*")[0]) < 60) == (side == "below")]
        assert low < sum(len(s) == 3 for s in mine) / len(mine) < high, side
    prompt, (run, obs, solution) = next((p, s) for p, s in pairs if len(s) == 3)
    a, b = map(int, prompt.strip().split("*"))
    assert run == (f"<execute>print({a}*{b})</execute>", True) and solution == (f"<solution>{a * b}</solution>", True)
    # the observation is exactly what the environment shows for the cell's output, and it is not trained on
    sandbox_output = Observation(f"{a * b}\n", None, False, None, False, 0.0)
    assert obs == (EnvConfig().observation_template.format(output=observation_text(sandbox_output, 200)), False)
    guesses = [s[0][0] for _, s in pairs if len(s) == 1]
    assert all(g.startswith("<solution>") and g.endswith("</solution>") and len(g) == len("<solution>1234</solution>")
               for g in guesses)


def test_codeact_cold_start_config_errors_before_compute():
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR
    from sspo_exp.errors import ConfigError
    from sspo_exp.train.config import make_plan

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        make_plan(compose("train", overrides=["experiment=cpu_codeact"]), 1)
        for override, message in (("model.cold_start.execute_rate.below=1.5", "execute_rate=.*each p in \\[0, 1\\]"),
                                  ("model.cold_start.execute_split=0.5", "execute_split=0.5: must be an integer")):
            with pytest.raises(ConfigError, match=message):
                make_plan(compose("train", overrides=["experiment=cpu_codeact", override]), 1)


def test_codeact_arith_bad_knobs_are_named():
    from sspo_exp.data.codeact_arith import rows

    with pytest.raises(ValueError, match="dataset.test_size=10000: must leave training problems"):
        rows({"test_size": 10000}, "test")
    with pytest.raises(ValueError, match="dataset.min_operand=-1"):
        rows({"min_operand": -1}, "test")


def _wikitq_row(rid, question, style):
    head = "Given the following table (only the first 5 rows are shown):\n   Year  Wins\n0  1996     7\n\n"
    ask = (f"Write a SQL query to find the answer to the question: {question}.\nThe SQLite3 database is preloaded for "
           "you and can be accessed within <execute> block via the variable `conn` (SQLite3 connection object).\n"
           "The table name is `data_table`.\n") if style == "sql" else (
           f"Write a Pandas query to find the answer to the question: {question}.\nThe dataframe is preloaded for you "
           "and can be accessed within <execute> block via the variable `df`.\n")
    return {"id": rid, "conversations": [{"role": "system", "content": "s"}, {"role": "user", "content": "Task:\n" + head + ask},
                                         {"role": "assistant", "content": "<solution> 1998 </solution>"}]}


@needs_sandbox
def test_wikitablequestions_rows_get_their_table_as_df_and_conn(tmp_path):
    """Issue 23, item 3: with dataset.wikitable_dir a WikiTableQuestions task's sandbox holds its full table as df
    (pandas) and conn (SQLite, table data_table); a task whose table is not found is skipped."""
    from pathlib import Path

    from sspo_exp.sandbox import Sandbox, SandboxConfig

    rows = [_wikitq_row("x/wiki_table/0", "which year had the most wins?", "sql"),
            _wikitq_row("x/wiki_table/1", "how many teams are listed?", "pandas"),
            _wikitq_row("x/wiki_table/2", "a question of no table?", "sql")]
    path = tmp_path / "ci.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fixture = Path(__file__).parent / "fixtures" / "wikitq"
    got = load_dataset_rows(_train_cfg(path, subsets=["wikitablequestions"], wikitable_dir=str(fixture)), "train")
    assert [r["id"] for r in got] == ["x/wiki_table/0", "x/wiki_table/1"] and got[0]["checker"] == "mint"
    sc = SandboxConfig.from_mapping({"site_packages": True})
    with Sandbox.from_config(sc) as box:
        assert not box.run(got[0]["setup"]).error
        out = box.run("print(conn.execute('SELECT Year FROM data_table ORDER BY Wins DESC').fetchone()[0], len(df))")
    assert out.output.split() == ["1998", "6"]  # all 6 rows, not the 5 the task shows
    with Sandbox.from_config(sc) as box:  # a .tsv beside the .csv path, as upstream's reader falls back to
        box.run(got[1]["setup"])
        assert box.run("print(list(df['City']))").output.strip() == "['Oslo', 'Riga', 'Lima']"
    with pytest.raises(DataError, match="dataset.wikitable_dir=.*expected the WikiTableQuestions release"):
        load_dataset_rows(_train_cfg(path, subsets=["wikitablequestions"], wikitable_dir=str(tmp_path)), "train")


@needs_sandbox
def test_hotpotqa_rows_get_an_offline_wikipedia_search_over_their_own_paragraphs(tmp_path):
    """With dataset.hotpotqa_file a HotpotQA task's sandbox defines wikipedia_search over its example's paragraphs
    (exact title first, else most shared words); a task not in the file is skipped."""
    from pathlib import Path

    from sspo_exp.sandbox import Sandbox, SandboxConfig

    q = "Which river flows through the capital of the country whose flag is blue, white and red?"
    rows = [{"id": "x/hotpotqa/0", "conversations": [{"role": "user", "content": f"Task:\n{q}"},
                                                     {"role": "assistant", "content": "<solution> Seine </solution>"}]},
            {"id": "x/hotpotqa/1", "conversations": [{"role": "user", "content": "Task:\nWho wrote Hamlet?"},
                                                     {"role": "assistant", "content": "<solution> Shakespeare </solution>"}]}]
    path = tmp_path / "ci.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hotpot = Path(__file__).parent / "fixtures" / "hotpotqa" / "hotpot_train_sample.json"
    got = load_dataset_rows(_train_cfg(path, subsets=["hotpotqa"], hotpotqa_file=str(hotpot)), "train")
    assert [r["id"] for r in got] == ["x/hotpotqa/0"] and got[0]["checker"] == "mint"
    with Sandbox.from_config(SandboxConfig.from_mapping({})) as box:
        assert not box.run(got[0]["setup"]).error
        assert box.run("print(wikipedia_search('paris'))").output.startswith("Page: Paris\nSummary: Paris is the capital")
        assert box.run("print(wikipedia_search('longest river'))").output.startswith("Page: Loire")
        assert box.run("print(wikipedia_search('zzz'))").output.strip() == "No page found."
    with pytest.raises(DataError, match="dataset.hotpotqa_file=.*expected HotpotQA's training JSON"):
        load_dataset_rows(_train_cfg(path, subsets=["hotpotqa"], hotpotqa_file=str(path)), "train")
