"""CodeAct interaction: turn parsing, format reward, the multi-turn episode loop in the real sandbox, checkers."""

from __future__ import annotations

import json

import pytest

from sspo_exp.codeact.checkers import check, exact_match
from sspo_exp.codeact.episode import EnvConfig, run_episodes
from sspo_exp.codeact.format import Action, format_score, parse_turn
from sspo_exp.models.tiny import build_tokenizer
from sspo_exp.sandbox import Sandbox, SandboxConfig, SandboxUnavailable

try:
    Sandbox.check()
    HAVE_SANDBOX = True
except SandboxUnavailable as e:  # CI installs bubblewrap; elsewhere say why
    HAVE_SANDBOX, WHY = False, str(e)
needs_sandbox = pytest.mark.skipif(not HAVE_SANDBOX, reason="no working sandbox (bubblewrap) on this machine")


# ------------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("text, kind, content, closed, ok", [
    ("think <execute>\nprint(1)\n</execute>", "execute", "print(1)", True, True),
    ("so <solution> 42 </solution>", "solution", "42", True, True),
    ("<EXECUTE>x=1</ execute >", "execute", "x=1", True, True),             # case and spaces in tags
    ("<execute>print(1)", "execute", "print(1)", False, False),             # unclosed: still runs, not well formed
    ("<solution>7", "solution", "7", False, False),
    ("<execute>a</solution>", "execute", "a</solution>", False, False),     # wrong closing tag
    ("<execute><execute>x</execute>", "execute", "<execute>x", True, False),  # nested opening tag
    ("<execute>   </execute>", "execute", "   ", True, False),             # blank body
    ("the answer is 5", "none", "", False, False),
    ("<solution>1</solution><execute>2</execute>", "solution", "1", True, False),  # first tag wins; stray after
])
def test_parse_turn(text, kind, content, closed, ok):
    a = parse_turn(text)
    assert (a.kind, a.closed, a.well_formed) == (kind, closed, ok)
    assert a.content.strip() == content.strip()


def test_format_levels():
    good_x, good_s = Action("execute", "x", True, True), Action("solution", "1", True, True)
    bad_x = Action("execute", "x", False, False)
    assert format_score([good_x, good_s]) == 1.0
    assert format_score([bad_x, good_s]) == 0.5
    assert format_score([good_x]) == 0.25
    assert format_score([bad_x]) == 0.0
    assert format_score([Action("none")]) == 0.0
    assert format_score([Action("solution", "", True, False)]) == 0.0  # blank solution is no solution
    assert format_score([]) == 0.0


# ------------------------------------------------------------------------------------------------ checkers
def test_checkers():
    assert check("1,170", "1170", "math")[0] and check("\\frac{7}{12}", "7/12", "math")[0]
    assert not check("1171", "1170", "math")[0]
    assert exact_match("1260", "1260.0") and exact_match(" 'TGGCAAT' ", "TGGCAAT") and exact_match("[3, 2, 2]", "[3,2,2]")
    assert exact_match("seine", "Seine") and not exact_match("[3, 2]", "[3, 2, 2]") and not exact_match("1261", "1260")
    assert check(None, "1", "exact") == (False, "no <solution>")
    with pytest.raises(ValueError, match="checker='regex'"):
        check("1", "1", "regex")


@needs_sandbox
def test_tests_checker_runs_the_program_on_each_case():
    cases = json.dumps([{"input": "3\n", "output": "9\n"}, {"input": "12\n", "output": "144"}])
    assert check("n = int(input())\nprint(n * n)", cases, "tests") == (True, "")
    solved, why = check("print(9 if input().strip() == '3' else 0)", cases, "tests")
    assert not solved and why == "test 1: wrong output"  # right on the first case only
    assert not check("while True: pass", cases, "tests",
                     SandboxConfig.from_mapping({"cpu_seconds": 1, "wall_seconds": 3}))[0]
    assert check("print(1)", "not json", "tests") == (False, "gold is not a JSON list of {input, output} test cases")


# ------------------------------------------------------------------------------------------------ episodes
def scripted(tokenizer, turns_by_prompt):
    """A policy that writes the given turns in order (the number of turns already taken is read off the context)."""

    def policy(contexts, budgets):
        out = []
        for ctx, budget in zip(contexts, budgets):
            text = tokenizer.decode(ctx, skip_special_tokens=True)
            prompt = next(p for p in turns_by_prompt if text.startswith(p))
            done = text[len(prompt):].count("</execute>") + text[len(prompt):].count("</solution>")
            turns = turns_by_prompt[prompt]
            turn = turns[done] if done < len(turns) else "nothing"
            out.append(tokenizer(turn, add_special_tokens=False)["input_ids"][:budget])
        return out

    return policy


@needs_sandbox
def test_episode_state_masks_and_stats():
    tok = build_tokenizer()
    turns = ["<execute>\nx = 12345 * 6789\nprint(x)\n</execute>", " <execute>print(x + 1)</execute>",
             " <solution>83810206</solution>"]
    prompt = "12345*6789+1\n"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    [ep] = run_episodes([ids], scripted(tok, {prompt: turns}), tok, EnvConfig(max_turns=5, max_completion_tokens=400))
    assert ep.end == "solution" and ep.solution == "83810206" and ep.format == 1.0
    assert ep.observations == ["83810205", "83810206"]  # the second cell sees the first cell's variable
    assert ep.completion_ids[-1] == tok.eos_token_id and ep.env_mask[-1] == 0  # appended EOS carries no loss
    policy = [t for t, m in zip(ep.completion_ids, ep.env_mask) if m == 1]
    env = [t for t, m in zip(ep.completion_ids, ep.env_mask) if m == 0]
    assert tok.decode(policy) == "".join(turns)  # mask 1 = exactly the policy's tokens
    assert tok.decode(env, skip_special_tokens=True) == "\nObservation:\n83810205\n\nObservation:\n83810206\n"
    assert ep.stats()["turns"] == 3 and ep.executions == 2 and ep.errors == 0 and ep.kills == 0
    from sspo_exp import keys

    assert tuple(ep.stats()) == keys.CODEACT_STATS  # every logged statistic has its name in sspo_exp.keys


@needs_sandbox
def test_episode_limits_errors_timeouts_and_turn_limit():
    tok = build_tokenizer()
    fast = SandboxConfig.from_mapping({"cpu_seconds": 1, "wall_seconds": 3})
    prompts = {"a\n": ["<execute>1/0</execute>", "<execute>while True: pass</execute>", "<execute>print(2)</execute>"],
               "b\n": ["<execute>print(1)</execute>"] * 9,
               "c\n": ["I think it is 3."]}
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    a, b, c = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(max_turns=3, max_completion_tokens=4000, sandbox=fast))
    assert "ZeroDivisionError" in a.observations[0] and a.errors == 3 and a.timeouts == 1 and a.kills == 1
    assert a.end == "max_turns" and a.solution is None and a.format == 0.25
    assert "sandbox" in a.observations[2].lower()  # the killed sandbox says its state is gone
    assert b.end == "max_turns" and b.turns == 3 and b.format == 0.25
    assert c.end == "no_action" and c.executions == 0 and c.format == 0.0


@needs_sandbox
def test_episode_token_budget_is_never_exceeded():
    tok = build_tokenizer()
    prompts = {"p\n": ["<execute>print('y' * 500)</execute>"] * 5}
    ids = [tok("p\n", add_special_tokens=False)["input_ids"]]
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(max_turns=5, max_completion_tokens=120,
                                                                    budget="episode"))
    assert ep.end == "budget" and len(ep.completion_ids) == 120 == len(ep.env_mask)
    # per turn (M3ToolEval's protocol): the 120 bound each turn, observations outside it; an episode cap still holds
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(max_turns=5, max_completion_tokens=120))
    assert ep.end == "max_turns" and ep.turns == 5 and len(ep.completion_ids) > 5 * 120
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(max_turns=5, max_completion_tokens=120,
                                                                    max_episode_tokens=300))
    assert ep.end == "budget" and len(ep.completion_ids) == 300 == len(ep.env_mask)


@needs_sandbox
def test_setup_code_defines_tools_before_the_first_cell():
    tok = build_tokenizer()
    prompts = {"t\n": ["<execute>print(double(21))</execute>", "<solution>42</solution>"]}
    ids = [tok("t\n", add_special_tokens=False)["input_ids"]]
    [ep] = run_episodes(ids, scripted(tok, prompts), tok, EnvConfig(), setups=["def double(x):\n    return 2 * x\n"])
    assert ep.observations == ["42"] and ep.solution == "42"


def test_observation_turn_uses_the_chat_templates_boundary():
    from local_model_helpers import CHAT_TEMPLATE

    from sspo_exp.codeact.episode import ObservationRenderer

    tok = build_tokenizer()
    assert ObservationRenderer(tok, EnvConfig()).text("42") == "\nObservation:\n42\n"
    tok.chat_template = CHAT_TEMPLATE  # Qwen2.5-Instruct's (no tools)
    text = ObservationRenderer(tok, EnvConfig()).text("42")  # M3ToolEval: the user turn is the bare output
    assert text == "<|im_end|>\n<|im_start|>user\n42<|im_end|>\n<|im_start|>assistant\n"
    text = ObservationRenderer(tok, EnvConfig(observation_prefix="Observation:\n")).text("42")
    assert text == "<|im_end|>\n<|im_start|>user\nObservation:\n42<|im_end|>\n<|im_start|>assistant\n"


def test_observation_turns_carry_the_models_chat_template_kwargs():
    """A Qwen3 run without thinking (model.chat_template_kwargs: {enable_thinking: false}) must not reopen thinking
    after each observation: the kwargs reach observation turns in training's rollouts and in evaluation alike."""
    from omegaconf import OmegaConf

    from sspo_exp.codeact.episode import ObservationRenderer
    from sspo_exp.codeact.settings import env_config

    tok = build_tokenizer()
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
                         "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
    kwargs = OmegaConf.create({"enable_thinking": False})
    assert not ObservationRenderer(tok, env_config({}, 256)).text("42").endswith("</think>\n\n")
    assert ObservationRenderer(tok, env_config({}, 256, kwargs)).text("42").endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_codeact_prompts_keep_the_templates_bos_because_episodes_encode_without_special_tokens():
    """Llama-style tokenizers add a BOS when encoding with special tokens; the zero-shot prompt drops the template's
    BOS for that reason, but CodeAct episodes encode with add_special_tokens=False, so their prompt must keep it."""
    from sspo_exp.codeact.prompts import build_prompt
    from sspo_exp.data.prompts import build_prompt as zero_shot

    class LlamaLike:  # a template that starts with BOS, and an encoder that adds BOS
        bos_token, bos_token_id, chat_template = "<s>", 1, "llama"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt, **kwargs):
            return "<s>[INST] " + messages[0]["content"] + " [/INST]"

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [1, 5] if add_special_tokens else [5]}

    assert build_prompt("2+2?", LlamaLike()).startswith("<s>[INST] ")
    assert zero_shot("2+2?", LlamaLike()).startswith("[INST] ")  # TRL adds the BOS when it encodes
