"""M3ToolEval's protocol as the `codeact` benchmark's default: its answer check (quirks included), retries, the
per-turn budget, its observation rendering; our strict check kept as a named option; the profile names the check."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR
from sspo_exp.codeact.checkers import check, exact_match, mint_match, typed_gold, upstream_check
from sspo_exp.codeact.episode import EMPTY_OUTPUT, TRUNCATED, EnvConfig, observation_text, run_episodes
from sspo_exp.codeact.format import RETRY_MESSAGE
from sspo_exp.codeact.prompts import build_prompt
from sspo_exp.codeact.settings import env_config
from sspo_exp.models.tiny import build_tokenizer
from sspo_exp.sandbox import Observation
from test_codeact import needs_sandbox, scripted


# ------------------------------------------------------------------------------------------------ the answer check
@pytest.mark.parametrize("answer, expected, ok, quirk", [
    ("42", 42, True, "plain"),
    ("42.0", 42, True, "int/float conversion of both sides"),
    ("3", 3.9, True, "int() truncates the float gold: 3 == int(3.9)"),
    ("34", 34.191, True, "truncation again: a web-browsing price answered without its cents"),
    ("34.19", 34.191, False, "no tolerance"),
    ("12.50", 12.5, True, "literal_eval rebinding survives into the str() comparison"),
    ("Paris", "Paris", True, "plain"),
    ("paris", "Paris", False, "case-sensitive (message decoding answers are)"),
    ("'Paris'", "Paris", True, "a quoted string parses to the gold"),
    ("[1, 2]", [1, 2], True, "collections by str()"),
    ("[1,2]", [1, 2], False, "collections by str(): spacing matters, literal_eval never reached (int(list) raises)"),
    ('["a", "b"]', ["a", "b"], False, "collections by str(): quote style matters"),
    ("['a', 'b']", ["a", "b"], True, "str() of the gold"),
    ("(1, 2)", (1, 2), True, "a tuple gold is its str()"),
    ("[1, 2]", (1, 2), False, "a list is not a tuple's str()"),
    ("None", None, True, "None gold: str()"),
    ("3.5", "3.5", True, "a string gold"),
    ("3", "3.5", False, "a string gold is not truncated (float('3.5') stays 3.5)"),
    ("$12.50", 12.5, False, "no currency stripping"),
])
def test_upstream_check_reproduces_m3tooleval_and_its_quirks(answer, expected, ok, quirk):
    assert upstream_check(answer, expected) is ok, quirk


def test_upstream_check_literal_eval_branch_never_compares():
    """Upstream's parsed comparison (``answer == expected (…) or …``) lacks an ``or``: it would have matched a list
    element-wise (``compare_list``); ported, "[1,2]" and [1.0, 2] do not match [1, 2]."""
    assert not upstream_check("[1.0, 2]", [1, 2])
    assert upstream_check(42, 42.7)  # a non-string answer (an execution result) is converted and truncated too


def test_gold_keeps_its_type_through_the_row_and_both_checks_are_named_options():
    assert typed_gold(repr(3.5)) == 3.5 and typed_gold(repr("3.5")) == "3.5" and typed_gold("Seine") == "Seine"
    assert check("3", repr(3.9), "exact")[0] and not check("3", repr("3.9"), "exact")[0]
    assert not check("3", repr(3.9), "exact", answer_check="strict")[0]  # ours: numbers within 1e-6
    assert not check("hello", repr("Hello"), "exact")[0] and check("hello", repr("Hello"), "exact", answer_check="strict")[0]
    assert check("[3,2,2]", repr([3, 2, 2]), "exact", answer_check="strict")[0] and exact_match("[3, 2,2]", "[3, 2, 2]")
    with pytest.raises(ValueError, match="answer_check='loose'"):
        check("1", "1", "exact", answer_check="loose")


def test_mint_check_contains_the_gold_or_is_within_five_percent():
    assert mint_match("The answer is the Seine river.", "Seine") and not mint_match("Loire", "Seine")
    assert mint_match("104", "100") and mint_match("1,050", "1000") and not mint_match("106", "100")
    assert check("It was The Beatles", "the beatles", "mint")[0]


# ------------------------------------------------------------------------------------------------ observations
def test_observation_rendering_is_m3toolevals():
    def obs(output, error=None):
        return Observation(output, error, False, None, False, 0.0)

    assert observation_text(obs(""), 2000) == EMPTY_OUTPUT
    assert observation_text(obs("[1,2]\n"), 2000) == "[1, 2]"  # upstream's literal_eval post-processing
    assert observation_text(obs("'abc'\n"), 2000) == "abc"
    assert observation_text(obs("Out[3]: 7\n"), 2000) == "7"
    long = observation_text(obs("x" * 2500), 2000)
    assert long == "x" * 2000 + TRUNCATED  # cut at 2,000 characters, M3ToolEval's note appended, no prefix added
    assert EnvConfig().max_observation_chars == 2000


# ------------------------------------------------------------------------------------------------ the episode loop
@needs_sandbox
def test_a_wrong_answer_is_answered_and_the_episode_goes_on_until_right():
    tok = build_tokenizer()
    prompts = {"q\n": ["<solution>41</solution>", "<execute>print(6*7)</execute>", "<solution>42</solution>",
                       "<solution>never</solution>"]}
    ids = [tok("q\n", add_special_tokens=False)["input_ids"]]
    judge = [lambda s: check(s, "42", "exact")[0]]
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(), judges=judge)
    assert ep.turns == 3 and ep.solution == "42" and ep.end == "solution" and ep.wrong_answers == 1
    env = tok.decode([t for t, m in zip(ep.completion_ids, ep.env_mask) if m == 0], skip_special_tokens=True)
    assert RETRY_MESSAGE in env and env.count("Observation:") == 2  # the retry, then the cell's output
    # without retries (or without a judge) the first solution ends the episode, wrong or not
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(retry=False), judges=judge)
    assert ep.turns == 1 and ep.solution == "41"
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig())
    assert ep.turns == 1 and ep.solution == "41"


@needs_sandbox
def test_retries_stop_at_the_turn_limit_with_the_last_answer():
    tok = build_tokenizer()
    prompts = {"q\n": ["<solution>1</solution>"] * 12}
    ids = [tok("q\n", add_special_tokens=False)["input_ids"]]
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(), judges=[lambda s: False])
    assert ep.turns == 10 and ep.wrong_answers == 9 and ep.solution == "1" and ep.end == "solution"


def test_a_turn_without_action_is_answered_and_the_episode_goes_on():
    """Upstream answers a reply with neither Action nor Answer with "Invalid generation…" and goes on; with a chat
    template a turn ending in the end-of-turn token (EOS) is not given a second one by the observation boundary."""
    from sspo_exp.codeact.format import INVALID_MESSAGE

    tok = build_tokenizer()  # a chat template whose end-of-turn token is the EOS, as Qwen's <|im_end|>
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    eos = tok.eos_token_id
    turns = [tok("I think it is 3.", add_special_tokens=False)["input_ids"] + [eos],
             tok("<solution>3</solution>", add_special_tokens=False)["input_ids"]]
    calls = []

    def policy(contexts, budgets):
        calls.append(1)
        return [turns[min(len(calls) - 1, 1)] for _ in contexts]

    prompt = tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    ids = [tok(prompt, add_special_tokens=False)["input_ids"]]
    [ep] = run_episodes(ids, policy, tok, EnvConfig(), judges=[lambda s: s == "3"])
    assert ep.turns == 2 and ep.solution == "3" and ep.end == "solution"
    text = tok.decode(ep.completion_ids)
    assert INVALID_MESSAGE in text and tok.decode([eos]) * 2 not in text  # one end-of-turn token, not two
    calls.clear()
    [ep] = run_episodes(ids, policy, tok, EnvConfig(retry=False), judges=[lambda s: s == "3"])
    assert ep.turns == 1 and ep.end == "eos"


# ------------------------------------------------------------------------------------------------ config, prompt, profile
def test_the_benchmark_defaults_are_upstreams_and_the_tiny_task_keeps_its_own():
    env = env_config(OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml"), 512)
    assert (env.max_turns, env.budget, env.max_completion_tokens, env.max_observation_chars, env.retry,
            env.answer_check, env.observation_prefix) == (10, "per_turn", 512, 2000, True, "upstream", "")
    arith = env_config(OmegaConf.load(f"{CONF_DIR}/dataset/codeact_arith.yaml"), 48)
    assert (arith.max_turns, arith.budget, arith.retry) == (3, "episode", False)
    for bad, field in (({"budget": "turns"}, "env.budget='turns'"), ({"answer_check": "loose"}, "env.answer_check"),
                       ({"retry": "yes"}, "env.retry")):
        with pytest.raises(ValueError, match=field):
            env_config({"env": bad}, 512)


def test_prompt_has_one_task_header():
    assert build_prompt("Task:\nAdd 2 and 2.").count("Task:") == 1
    assert build_prompt("Add 2 and 2.").count("Task:") == 1
    assert "may try again" in build_prompt("x") and "first <solution> ends" in build_prompt("x", retry=False)


def test_profile_prompt_id_names_the_answer_check_and_protocol():
    from sspo_exp.tasks import prompt_id

    default = OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml")
    strict = OmegaConf.merge(default, {"env": {"answer_check": "strict"}})
    a, b = prompt_id("codeact", default), prompt_id("codeact", strict)
    assert a.startswith("codeact-instruct-upstream_actions-10turns-per_turn-upstream-retry-obs2000-") and "-strict-retry-" in b
    assert a != b


def test_profile_checker_field_names_codeacts_answer_check_and_no_other_profile_moves():
    from sspo_exp.evaluation.profile import make_profile
    from sspo_exp.rewards import CHECKER_VERSION
    from sspo_exp.tasks import prompt_fn_for

    default = OmegaConf.load(f"{CONF_DIR}/dataset/codeact.yaml")
    strict = OmegaConf.merge(default, {"env": {"answer_check": "strict"}})
    up, st = prompt_fn_for("codeact", default), prompt_fn_for("codeact", strict)
    assert (up.checker, st.checker) == (f"codeact-upstream+{CHECKER_VERSION}", f"codeact-strict+{CHECKER_VERSION}")
    p_up, p_st = (make_profile("hf", "float32", 512, b.id, None, None, b.checker) for b in (up, st))
    assert p_up.checker.startswith("codeact-upstream") and p_up.id != p_st.id
    zero = prompt_fn_for("gsm8k", None)
    assert zero.checker is None  # every other benchmark: the project's checker, its profile id unchanged
    assert make_profile("hf", "float32", 512, zero.id, None, None, zero.checker) == make_profile(
        "hf", "float32", 512, zero.id, None)
    assert make_profile("hf", "float32", 512, zero.id, None).checker == CHECKER_VERSION
