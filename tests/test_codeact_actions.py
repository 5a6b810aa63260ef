"""CodeAct's action formats (``env.action_format``): M3ToolEval's own format checked against verbatim copies of its
harness's functions (the oracle below), episodes in that format, the stop strings, the prompt, the profile ids."""

from __future__ import annotations

import re
from collections import namedtuple
from enum import Enum
from typing import Any, Mapping, Optional

import pytest
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.codeact import upstream
from sspo_exp.codeact.checkers import check
from sspo_exp.codeact.episode import EnvConfig, run_episodes
from sspo_exp.codeact.format import ACTION_FORMATS, UPSTREAM, Action, format_score, parse_upstream
from sspo_exp.codeact.prompts import build_prompt
from sspo_exp.codeact.settings import env_config
from sspo_exp.data.codeact import SAMPLE_TEST, m3tool_question, read_json_rows, split_m3tool_question
from sspo_exp.models.tiny import build_tokenizer
from test_codeact import needs_sandbox


# ------------------------------------------------------------------------------------------------ the oracle
# Verbatim from xingyaoww/code-act, scripts/eval/m3tooleval/main.py (postprocess_fn) and tasks/base.py (ActionMode,
# ToolType, Task.get_prompt, Task.parse_generation); only `self` is kept as a stand-in holding tools and instruction.
ToolType = namedtuple("ToolType", [
    "name",
    "description",
    "function",
    "fn_signature",
])

class ActionMode(Enum):
    TEXT_AS_ACTION = "text_as_action"
    JSON_AS_ACTION = "json_as_action"
    CODE_AS_ACTION = "code_as_action"

def postprocess_fn(generation: str) -> str:
    generation = generation.lstrip()
    # Regex pattern to find "Answer:" or "Action:"
    pattern_answer_action = r"(Answer:|Action:)"
    matches_answer_action = list(re.finditer(pattern_answer_action, generation))

    # If no matches or only one match of Answer/Action, return the original string
    if len(matches_answer_action) <= 1:
        return generation

    # Get the index of the start of the second match of Answer/Action
    second_match_start = matches_answer_action[1].start()

    # Trim the string to end before the second match of Answer/Action
    trimmed_generation = generation[:second_match_start].strip()

    # Find the index of the end of the first "Action:"
    first_action_end_index = trimmed_generation.find("Action:") + len("Action:")
    # Check for the next occurrence of "End Action" after the first "Action:"
    end_action_index = trimmed_generation.find("End Action", first_action_end_index)
    # Determine where to trim the string
    if end_action_index != -1:
        # Trim the string to the determined index
        trimmed_generation = trimmed_generation[:end_action_index+len("End Action")].strip()

    # Check for the next occurrence of "Thought:" after the first "Action:"
    next_thought_index = trimmed_generation.find("Thought:", first_action_end_index)
    if next_thought_index != -1:
        trimmed_generation = trimmed_generation[:next_thought_index].strip()
    
    return trimmed_generation

class Task:
    def __init__(self, tools, instruction):
        self.tools, self.instruction = tools, instruction

    def get_prompt(self, action_mode: ActionMode) -> str:
        tool_desc = "You have access to the following tools:\n"
        for i, (tool_name, tool) in enumerate(self.tools.items()):
            tool_desc += f"[{i+1}] {tool_name}: {tool.description}\n"
            tool_desc += f"    Signature: {tool.fn_signature}\n"

        res = tool_desc + "\n"
        if action_mode == ActionMode.TEXT_AS_ACTION:
            res += "You can use the tools by outputing the tool name followed by its arguments, delimited by commas.\n"
            res += "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            res += "Example: 'Action: tool_name, argument_1 End Action'\n"
            res += "You can only invoke one tool at a time.\n"
        elif action_mode == ActionMode.JSON_AS_ACTION:
            res += "You can use the tools by outputing a JSON object with the following fields:\n"
            res += "  - 'tool': the name of the tool\n"
            res += "  - 'args': a list of arguments to the tool\n"
            res += "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            res += "Example: 'Action: {\"tool\": \"tool_name\", \"args\": [\"argument_1\"]} End Action'\n"
            res += "You can only invoke one tool at a time.\n"
        elif action_mode == ActionMode.CODE_AS_ACTION:
            res += "You can use the tools by outputing a block of Python code that invoke the tools.\n"
            res += "You may use for-loops, if-statements, and other Python constructs when necessary.\n"
            res += "Be sure to print the final answer at the end of your code.\n"
            res += "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            res += "Example: 'Action:\ntool_name(argument_1)\nEnd Action'\n"

        res = res + "\nNow, let's get started!\n\n"
        res = res + f"Instruction: {self.instruction}"
        res = res + "\nYou can optionally express your thoughts using natural language before your action. For example, 'Thought: I want to use tool_name to do something. Action: <your action to call tool_name> End Action'."
        res = res + "\nNote that your output should always contain either 'Action:' or 'Answer:', but not both."
        res = res + "\nWhen you are done, output the result using 'Answer: your answer'"
        res = res + "\nPlease ONLY output the answer (e.g., single number), without any other text."
        return res

    def parse_generation(self, generation: str) -> Optional[Mapping[str, Any]]:
        if "Answer:" in generation and "Action:" in generation:
            return {
                "type": "invalid",
                "content": "Invalid generation. Your output should contain either 'Action:' or 'Answer:', but not both."
            }

        if "Answer:" in generation:
            # find the first answer
            if generation.count("Answer:") > 1:
                # get the first answer
                answer = generation.split("Answer:")[1].strip()
                extra_info = "You have output more than one answer. Only the first answer will be used."
            else:
                answer = generation[generation.find("Answer:") + len("Answer:"):].strip()
                extra_info = None
            return {
                "type": "answer",
                "content": answer,
                "extra_info": extra_info
            }
        elif "Action:" in generation:
            if generation.count("Action:") > 1:
                action = generation.split("Action:")[1].lstrip()
                extra_info = "You have output more than one action. Only the first action will be used."
            else:
                action = generation[generation.find("Action:") + len("Action:"):].lstrip()
                extra_info = None

            if "End Action" in action: # remove the "End Action" part
                action = action[:action.find("End Action")]
            return {
                "type": "action",
                "content": action,
                "extra_info": extra_info
            }
        else:
            return {
                "type": "invalid",
                "content": "Invalid generation. Your output should contain either 'Action:' or 'Answer:'"
            }
# ------------------------------------------------------------------------------------------------ end of the oracle


TRICKY = [
    "Answer: 42",
    "  \n Answer:   42  ",                                                        # leading whitespace
    "Thought: add them.\nAction:\nprint(add(1, 2))\nEnd Action",
    "Action:\nprint(1)\nEnd Action\nThought: now the answer.",                   # one marker: the thought stays
    "Action:\nprint(1)",                                                          # End Action missing
    "Action:\nprint(1)\nThought: hmm\nprint(2)",                                 # Thought: after an action, no End
    "Action:\nprint(1)\nThought: next\nAction:\nprint(2)\nEnd Action",            # two actions, Thought: between
    "Action: a()\nEnd Action\nAction: b()\nEnd Action",                          # two actions
    "Action: a()\nAction: b()\nEnd Action",                                      # two actions, one End Action
    "Answer: 5\nAnswer: 6",                                                      # two answers
    "Answer: 5 Thought: ok Answer: 6",                                           # answer then Thought: (quirk)
    "Answer: 42 Action: print(1) End Action",                                    # both markers
    "Action: print(1) End Action Answer: 1",                                     # both markers, action first
    "Action: print('Answer:', x) End Action",                                    # a marker inside the code
    "I think the answer is 42.",                                                 # no marker
    "",
    "answer: 42",                                                                # markers are case-sensitive
    "Action:End Action",                                                         # blank action
    "Answer:",                                                                   # blank answer
    "End Action: x\nAnswer: 2",                                                  # 'End Action:' holds a marker
]


@pytest.mark.parametrize("text", TRICKY)
def test_postprocess_and_parse_are_upstreams(text):
    stand_in = Task({}, "")
    assert upstream.postprocess(text) == postprocess_fn(text)
    assert upstream.parse_generation(text) == stand_in.parse_generation(text)  # also on the raw reply
    cut = postprocess_fn(text)
    assert upstream.parse_generation(cut) == stand_in.parse_generation(cut)
    parsed, action = stand_in.parse_generation(cut), parse_upstream(text)
    kind = {"answer": "solution", "action": "execute", "invalid": "none"}[parsed["type"]]
    assert action.kind == kind
    if kind == "none":
        assert action.reply == parsed["content"] and action.content == ""
    else:
        assert action.content == parsed["content"] and action.reminder == (parsed["extra_info"] or "")


def test_the_quirks_as_upstream_has_them():
    """After ``postprocess_fn`` a reply holds one marker, so upstream's loop never sees "but not both" nor a
    "more than one" reminder; both are reached only by ``parse_generation`` on an unprocessed reply."""
    assert parse_upstream("Answer: 42 Action: print(1) End Action") == Action("solution", "42", True, False)
    assert parse_upstream("Action: a()\nAction: b()\nEnd Action").content == "a()"  # b() is dropped, no reminder
    assert parse_upstream("Action: print('Answer:', x) End Action").content == "print('"  # a marker in code cuts it
    assert parse_upstream("Answer: 5 Thought: ok Answer: 6").content == "5"
    assert upstream.parse_generation("Answer: 1 Action: x")["content"] == upstream.INVALID_BOTH
    assert upstream.parse_generation("Action: a Action: b")["extra_info"] == upstream.MORE_ACTIONS
    assert upstream.parse_generation("Answer: 1 Answer: 2") == {"type": "answer", "content": "1",
                                                                "extra_info": upstream.MORE_ANSWERS}
    assert parse_upstream("no marker").reply == upstream.INVALID_NONE


def test_format_levels_keep_their_meaning_in_upstreams_format():
    good_x, bad_x = parse_upstream("Action:\nprint(1)\nEnd Action"), parse_upstream("Action:\nprint(1)")
    good_a, two = parse_upstream("Answer: 42"), parse_upstream("Answer: 4 Answer: 2")
    assert good_x.well_formed and good_x.closed and not bad_x.well_formed and not bad_x.closed
    assert good_a.well_formed and not two.well_formed and two.kind == "solution"  # two markers: malformed
    assert not parse_upstream("Action: End Action").well_formed and not parse_upstream("Answer: ").well_formed
    assert format_score([good_x, good_a]) == 1.0
    assert format_score([bad_x, good_a]) == 0.5 and format_score([good_x, two]) == 0.5
    assert format_score([good_x]) == 0.25 and format_score([bad_x]) == 0.0
    assert format_score([parse_upstream("hmm")]) == 0.0 and format_score([parse_upstream("Answer:")]) == 0.0


# ------------------------------------------------------------------------------------------------ the prompt
def _oracle_task(raw: dict) -> Task:
    tools = {t["name"]: ToolType(t["name"], t["description"], None, t["fn_signature"]) for t in raw["tools"]}
    return Task(tools, raw["instruction"])


FIXTURES = [*read_json_rows(SAMPLE_TEST),
            {"instruction": "Decode 'xyz'.\n\nThen say it.", "tools": []},  # no tools; a blank line inside
            {"instruction": "Use it.", "tools": [{"name": "f", "description": "Two lines.\nSecond line.",
                                                  "fn_signature": "f(x: int) -> int"}]}]


@pytest.mark.parametrize("raw", FIXTURES)
def test_m3tooleval_prompt_is_upstreams_get_prompt(raw):
    question = m3tool_question(raw["instruction"], raw["tools"])
    expected = _oracle_task(raw).get_prompt(ActionMode.CODE_AS_ACTION)
    assert UPSTREAM.prompt_text(question, 10, True) == expected
    assert build_prompt(question, None, action_format="upstream") == expected + "\n"  # no chat template
    tok = build_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</>{% endfor %}<assistant>"
    assert build_prompt(question, tok, action_format="upstream") == f"<user>{expected}</><assistant>"  # one message
    # tags: the question as before (the tool list, the instruction, "Answer with only the result") under our tags
    assert build_prompt(question, None).endswith(f"Task:\n{question}\n") and split_m3tool_question("Task:\nx") is None


def test_a_task_without_tools_gets_upstreams_instructions_without_the_tool_list():
    expected = Task({}, "What is 2+2?").get_prompt(ActionMode.CODE_AS_ACTION)
    header = "You have access to the following tools:\n\n"
    assert expected.startswith(header)
    assert UPSTREAM.prompt_text("Task:\nWhat is 2+2?", 10, True) == expected[len(header):]  # the Task: header dropped
    assert UPSTREAM.prompt_text("What is 2+2?", 3, False) == expected[len(header):]  # turns, retry: not in it


# ------------------------------------------------------------------------------------------------ episodes
def scripted_turns(tokenizer, turns: list[str]):
    """A policy writing ``turns[k]`` at its k-th call (one episode)."""
    calls = []

    def policy(contexts, budgets):
        calls.append(1)
        turn = turns[len(calls) - 1] if len(calls) <= len(turns) else "nothing"
        return [tokenizer(turn, add_special_tokens=False)["input_ids"][:budgets[0]]]

    return policy


def _episode(turns, env, gold="42"):
    tok = build_tokenizer()
    ids = [tok("q\n", add_special_tokens=False)["input_ids"]]
    [ep] = run_episodes(ids, scripted_turns(tok, turns), tok, env, judges=[lambda s: check(s, repr(int(gold)),
                                                                                            "exact")[0]])
    shown = tok.decode([t for t, m in zip(ep.completion_ids, ep.env_mask) if m == 0], skip_special_tokens=True)
    return ep, shown


@needs_sandbox
def test_an_upstream_episode_runs_actions_retries_and_ends_on_the_right_answer():
    env = EnvConfig(action_format="upstream")
    ep, shown = _episode(["Thought: multiply.\nAction:\nx = 6 * 7\nprint(x)\nEnd Action",
                          "Action:\nprint(x - 1)\nAction:\nprint(x + 1)\nEnd Action",   # two actions: the first runs
                          "Answer: 41",
                          "Answer: 42 Action: print(0) End Action",                   # both markers: the answer
                          "Answer: 43"], env)
    assert ep.observations == ["42", "41"] and "*Extra reminder" not in shown  # upstream's cut leaves one action
    assert ep.turns == 4 and ep.solution == "42" and ep.end == "solution" and ep.wrong_answers == 1
    assert shown.count(upstream.RETRY_MESSAGE) == 1 and shown.endswith(upstream.RETRY_MESSAGE + "\n")  # then solved
    assert ep.format == 0.5  # the two-action and two-marker turns are malformed
    ep, shown = _episode(["I would run some code.", "<execute>print(1)</execute>", "Answer: 42"], env)
    assert shown.count(upstream.INVALID_NONE) == 2 and ep.turns == 3 and ep.end == "solution"
    assert ep.executions == 0  # our tags are no action in upstream's format


@needs_sandbox
def test_reminders_reach_the_observation_and_the_retry_message(monkeypatch):
    """``extra_info`` never survives upstream's post-processing, so this checks the plumbing with a format that parses
    the raw reply (``parse_generation`` alone): the reminder follows the observation and the retry message as
    upstream's ``run_task`` appends it, and a reply with both markers gets the "but not both" message."""
    import dataclasses

    def raw_parse(text):
        p = upstream.parse_generation(text)
        kind = {"answer": "solution", "action": "execute", "invalid": "none"}[p["type"]]
        return Action(kind, "" if kind == "none" else p["content"], True, True, p.get("extra_info") or "",
                      p["content"] if kind == "none" else "")

    monkeypatch.setitem(ACTION_FORMATS, "raw", dataclasses.replace(UPSTREAM, name="raw", parse=raw_parse))
    ep, shown = _episode(["Action: print(7) Action: print(8) End Action", "Answer: 1 Answer: 2",
                          "Answer: 1 Action: x", "Answer: 42"], EnvConfig(action_format="raw"))
    assert ep.observations == ["7" + upstream.REMINDER + upstream.MORE_ACTIONS]
    assert upstream.RETRY_MESSAGE + upstream.REMINDER + upstream.MORE_ANSWERS in shown
    assert upstream.INVALID_BOTH in shown and ep.end == "solution" and ep.turns == 4


@needs_sandbox
def test_the_benchmark_scores_the_sample_in_upstreams_format_by_default():
    """``codeact`` as shipped (conf/dataset/codeact.yaml): M3ToolEval's prompt, its action format, its answer check."""
    from sspo_exp.data import load_benchmark
    from sspo_exp.tasks import prompt_fn_for
    from sspo_exp.tasks.codeact import evaluate_codeact

    tok = build_tokenizer()
    block = OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml")
    rows = load_benchmark("codeact", str(SAMPLE_TEST))
    build = prompt_fn_for("codeact", block)
    prompts = [build(r["question"], tok) for r in rows]
    assert all(p.endswith(upstream.CLOSING + "\n") and "<execute>" not in p for p in prompts)
    plans = [["Action:\np = convert_currency(40 * 25, 1.2)\nprint(estimate_final_value(p, calculate_tariff(p, 5)))\n"
              "End Action", "Answer: 1260.0"],
             ["Thought: one tool.\nAction:\nprint(calculate_tariff(480, 12.5))\nEnd Action", "Answer: 60"],
             ["Action:\nprint(reverse_complement('ATTGCCA'))\nEnd Action", "Answer: TGGCAAT"],
             ["<solution>[3, 2, 1]</solution>", "Answer: [3, 2, 1]"]]  # tags are no action here; then wrong
    calls = {}

    def policy(contexts, budgets):
        out = []
        for ctx in contexts:
            k = next(i for i, p in enumerate(prompts) if tok.decode(ctx, skip_special_tokens=True).startswith(p))
            calls[k] = calls.get(k, 0) + 1
            turn = plans[k][calls[k] - 1] if calls[k] <= len(plans[k]) else "nothing"
            out.append(tok(turn, add_special_tokens=False)["input_ids"])
        return out

    result = evaluate_codeact(None, tok, rows, prompts, 512, policy=policy, env=block.env)
    assert [r.correct for r in result.records] == [True, True, True, False] and result.pass_at_1 == 75.0
    assert "1260.0" in result.records[0].completion and result.records[0].format == 1.0
    assert upstream.INVALID_NONE in result.records[3].completion and upstream.RETRY_MESSAGE in result.records[3].completion


# ------------------------------------------------------------------------------------------------ stop strings
class _ScriptedLM:
    """A stand-in for an HF causal LM whose ``generate`` writes a fixed text token by token and stops a row when
    the stopping criteria say so (as ``generate`` does)."""

    def __init__(self, tokenizer, text):
        import torch

        self.tokenizer, self.ids, self.training = tokenizer, tokenizer(text, add_special_tokens=False)["input_ids"], False
        self.generation_config = type("G", (), {"eos_token_id": tokenizer.eos_token_id, "bos_token_id": None})()
        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def generate(self, input_ids, attention_mask, generation_config, stopping_criteria):
        import torch

        out = input_ids
        for tok in self.ids[: generation_config.max_new_tokens]:
            out = torch.cat([out, torch.full((out.shape[0], 1), tok)], dim=1)
            if all(bool(c(out, None).all()) for c in stopping_criteria):
                break
        return out


def test_hf_policy_stops_a_turn_at_the_formats_stop_string():
    from sspo_exp.codeact.policy import HFPolicy

    tok = build_tokenizer()
    text = "Action:\nprint(1)\nEnd Action\nThought: and more </execute> tail"
    model = _ScriptedLM(tok, text)
    ctx = [tok("q\n", add_special_tokens=False)["input_ids"]]
    up = HFPolicy(model, tok, temperature=0.0, stop_strings=EnvConfig(action_format="upstream").actions.stop_strings)
    assert tok.decode(up(ctx, [200])[0]) == "Action:\nprint(1)\nEnd Action"
    tags = HFPolicy(model, tok, temperature=0.0, stop_strings=EnvConfig().actions.stop_strings)
    assert tok.decode(tags(ctx, [200])[0]) == "Action:\nprint(1)\nEnd Action\nThought: and more </execute>"
    assert UPSTREAM.stop_strings == ("End Action",) and EnvConfig().actions.stop_strings == ("</execute>", "</solution>")


# ------------------------------------------------------------------------------------------------ config and profile
def test_action_format_is_a_checked_env_field():
    assert env_config(OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml"), 512).action_format == "upstream"
    assert env_config(OmegaConf.load(f"{CONF_DIR}/dataset/codeact_arith.yaml"), 48).action_format == "tags"
    assert env_config({"env": {}}, 512).action_format == "tags"  # a saved env block from before the key: tags
    with pytest.raises(ValueError, match=r"env.action_format='json': choose one of upstream, tags"):
        env_config({"env": {"action_format": "json"}}, 512)
    with pytest.raises(ValueError, match=r"env.action_format=\['tags'\]: choose one of upstream, tags"):
        env_config({"env": {"action_format": ["tags"]}}, 512)  # not a name: the same one line, not a TypeError


def test_the_tiny_cold_start_refuses_a_format_it_was_not_written_in():
    from hydra import compose, initialize_config_dir

    from sspo_exp.errors import ConfigError
    from sspo_exp.train.config import make_plan

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        with pytest.raises(ConfigError, match="dataset.env.action_format='upstream': the codeact_arith cold start"):
            make_plan(compose("train", overrides=["experiment=cpu_codeact", "dataset.env.action_format=upstream"]), 1)


def test_profile_ids_name_the_action_format_and_tags_ids_did_not_move():
    from sspo_exp.evaluation.profile import make_profile
    from sspo_exp.tasks import prompt_fn_for, prompt_id

    default = OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml")
    tags = OmegaConf.merge(default, {"env": {"action_format": "tags"}})
    up, tg = prompt_id("codeact", default), prompt_id("codeact", tags)
    assert up.startswith("codeact-instruct-upstream_actions-10turns-per_turn-upstream-retry-obs2000-")
    assert tg.startswith("codeact-instruct-10turns-per_turn-upstream-retry-obs2000-") and up != tg
    assert tg == "codeact-instruct-10turns-per_turn-upstream-retry-obs2000-6a383b6d"  # the id before the key existed
    arith = OmegaConf.load(f"{CONF_DIR}/dataset/codeact_arith.yaml")
    assert prompt_id("codeact_arith", arith) == "codeact-compact-3turns-episode-strict-obs200-5d2832e4"  # cpu_codeact's
    p_up, p_tg = (make_profile("hf", "float32", 512, b.id, None, None, b.checker)
                  for b in (prompt_fn_for("codeact", default), prompt_fn_for("codeact", tags)))
    assert p_up.id != p_tg.id and p_up.checker == p_tg.checker
