"""The paper's reward (SPEC.md "Training setup"): r = r_answer + r_format, hand-written completions."""

import signal
import threading
import time

import pytest

from sspo_exp import rewards
from sspo_exp.rewards import answer_reward, extract_answer, format_reward, format_score, math_reward

GOOD = "<think>2+2 is 4</think> <answer>4</answer>"


# ------------------------------------------------------------------------------------------ r_format
@pytest.mark.parametrize(
    "text, level",
    [
        (GOOD, 1.0),
        ("  \n<think>\nstep\n</think>\n\n<answer> 4 </answer>\n", 1.0),  # whitespace around/between is fine
        ("<think></think><answer>4</answer>", 1.0),  # empty reasoning is still the template
        # both edges right, inside wrong -> 0.5
        ("<think>a</think> so <answer>4</answer>", 0.5),  # text between </think> and <answer>
        ("<think>a <answer>4</answer>", 0.5),  # missing </think>
        ("<think>a</think> 4</answer>", 0.5),  # missing <answer>
        ("<think>a</think><answer>4</answer><think>b</think><answer>5</answer>", 0.5),  # duplicated tags
        ("<think>a<answer>1</answer></think><answer>4</answer>", 0.5),  # misordered / nested
        ("<think>a</think><answer>  </answer>", 0.5),  # blank answer
        # exactly one edge -> 0.25
        ("<think>a</think> <answer>4</answer> hope this helps", 0.25),  # trailing text: end edge wrong
        ("Sure! <think>a</think> <answer>4</answer>", 0.25),  # leading text: start edge wrong
        ("a</think> <answer>4</answer>", 0.25),
        ("<think>a</think> the answer is 4", 0.25),
        # neither edge -> 0
        ("the answer is 4", 0.0),
        ("<answer>4</answer> done", 0.0),
        ("", 0.0),
    ],
)
def test_format_levels(text, level):
    assert format_score(text) == level


# ------------------------------------------------------------------------------------------ r_answer
@pytest.mark.parametrize(
    "pred, gold, ok",
    [
        ("72", "72", True),
        ("72", "27", False),
        ("1,234", "1234", True),  # thousands separators
        ("1234", "1,234", True),
        ("1,234,567.5", "1234567.5", True),
        ("3.0", "3", True),
        ("3.5", "3", False),
        ("-7", "7", False),
        ("0.5", "\\frac{1}{2}", True),  # decimal vs fraction
        ("1/2", "0.5", True),
        ("\\frac{1}{3}", "0.5", False),
        ("\\boxed{18}", "18", True),
        ("$18$", "18", True),
        ("\\$18", "18", True),
        ("\\boxed{\\dfrac{3}{4}}", "\\frac34", True),  # LaTeX through math-verify
        ("11\\sqrt{2}", "11\\sqrt2", True),
        ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("x^2+y^2", "y^2 + x^2", True),
        ("2\\pi", "\\pi", False),
        ("The answer is 18", "18", True),
        ("17", "18", False),
        ("banana", "18", False),
    ],
)
def test_answer_matching(pred, gold, ok):
    r = math_reward(f"<think>t</think> <answer>{pred}</answer>", gold)
    assert r.answer == (1.0 if ok else 0.0), r
    assert r.format == 1.0 and r.total == r.answer + 1.0


def test_last_answer_pair_is_used():
    text = "<think>first <answer>3</answer> no wait</think> <answer>4</answer>"
    assert extract_answer(text) == "4"
    assert math_reward(text, "4").answer == 1.0 and math_reward(text, "3").answer == 0.0
    # an unclosed trailing <answer> does not replace the last complete pair
    assert extract_answer("<answer>4</answer> <answer>5") == "4"
    assert extract_answer("no tags 4") is None and extract_answer("</answer><answer>") is None


def test_reward_breakdown_and_range():
    r = math_reward(GOOD, "4")
    assert (r.answer, r.format, r.total) == (1.0, 1.0, 2.0)
    r = math_reward("<think>x</think> 4", "4")  # no answer tags: no answer credit, one edge
    assert (r.answer, r.format, r.total) == (0.0, 0.25, 0.25) and r.extracted is None
    r = math_reward("<answer>4</answer>", "4")  # right answer, one edge
    assert (r.answer, r.format, r.total) == (1.0, 0.25, 1.25)
    assert all(isinstance(v, float) for v in (r.answer, r.format, r.total))


# --------------------------------------------------------------------------------- TRL reward functions
def test_trl_reward_functions_strings_and_messages():
    completions = [GOOD, "<think>a</think> <answer>5</answer> ok", [{"role": "assistant", "content": GOOD}]]
    prompts = ["p1", "p2", [{"role": "user", "content": "p3"}]]
    assert answer_reward(prompts, completions, answer=["4", "5", "3"]) == [1.0, 1.0, 0.0]
    assert format_reward(prompts, completions, answer=["4", "5", "3"]) == [1.0, 0.25, 1.0]
    # extra TRL kwargs are accepted
    assert answer_reward(prompts[:1], completions[:1], answer=["4"], trainer_state=None, log_metric=None) == [1.0]
    assert answer_reward.__name__ == "answer_reward" and format_reward.__name__ == "format_reward"


def test_reasoning_field_split_off_by_a_response_schema_is_rewrapped():
    msg = [{"role": "assistant", "reasoning_content": "2+2", "content": " <answer>4</answer>"}]
    assert math_reward(msg, "4").total == 2.0


def test_missing_gold_column_is_a_clear_error():
    with pytest.raises(TypeError, match="answer"):
        answer_reward(["p"], [GOOD])


# ------------------------------------------------------------------------------------- adversarial
def _nested_frac(depth):
    s = "1"
    for _ in range(depth):
        s = "\\frac{1}{" + s + "}"
    return s


ADVERSARIAL = {
    "power tower": "9^9^9^9",
    "latex power tower": "$9^{9^{9^{9}}}$",
    "python power tower": "9**9**9**9",
    "2000 nested parentheses": "(" * 2000 + "1" + ")" * 2000,
    "frac nested 300 deep": _nested_frac(300),
    "1 MB string": "7" * 1_000_000,
    "1 MB of letters": "x" * 1_000_000,
    "huge exponent": "2^{123456789}",
    "huge factorial": "123456789!",
    "iterated factorial": "(9999!)!",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_answers_are_cheap_and_score_zero(name):
    ans = ADVERSARIAL[name]
    t = time.process_time()
    r = math_reward(f"<think>t</think> <answer>{ans}</answer>", "5")
    assert time.process_time() - t < 2.0
    assert r.answer == 0.0 and r.format == 1.0
    assert r.extracted is None or len(r.extracted) <= rewards.MAX_ANSWER_CHARS + 1  # never keep the whole input


def test_adversarial_whole_completion_of_1mb_is_cheap():
    t = time.process_time()
    assert math_reward("<answer>" * 200_000 + "</think>" * 50_000, "5").total == 0.0
    assert time.process_time() - t < 2.0


def test_timeout_interrupts_math_verify_when_guards_let_something_through(monkeypatch):
    """The last line of defence: the CPU-time budget stops math-verify (the guards are switched off here). CPU time,
    not wall time, is asserted: the budget is the process's CPU time, whatever else the machine is doing."""
    rewards._warm_up()
    monkeypatch.setattr(rewards, "_too_costly", lambda s: "")
    monkeypatch.setattr(rewards, "VERIFY_TIMEOUT_S", 0.5)
    before = signal.getsignal(signal.SIGPROF)
    t = time.process_time()
    r = math_reward("<answer>9^9^9^9</answer>", "5")
    assert time.process_time() - t < 2.0 and r.answer == 0.0 and r.reason == "math-verify timed out (0.5 s)"
    assert signal.getsignal(signal.SIGPROF) == before  # handler restored
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)  # timer disarmed


def test_a_swallowed_alarm_is_followed_by_another(monkeypatch):
    """An alarm that lands in a finalizer is lost (Python ignores exceptions there); the repeat stops the work."""
    import math_verify

    rewards._warm_up()  # before the stub replaces parse
    swallowed = []

    def spin(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def stubborn_parse(s, **kw):
        try:
            spin(5)
        except BaseException:  # the first alarm is lost
            swallowed.append(1)
        spin(5)
        return []

    monkeypatch.setattr(math_verify, "parse", stubborn_parse)
    monkeypatch.setattr(rewards, "VERIFY_TIMEOUT_S", 0.2)
    t = time.process_time()
    r = math_reward("<answer>\\sqrt{2}</answer>", "\\sqrt2")
    assert time.process_time() - t < 1.0 and swallowed == [1] and "timed out" in r.reason
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_verifier_errors_never_raise(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("x" * 10_000)

    monkeypatch.setattr(rewards, "_math_verify", boom)
    r = math_reward("<answer>\\sqrt{2}</answer>", "\\sqrt2")
    assert r.answer == 0.0 and r.reason == "verifier error: RuntimeError"


def test_off_main_thread_uses_the_exact_path_only():
    out = {}

    def work():
        out["int"] = math_reward("<answer>1,000</answer>", "1000").answer
        out["latex"] = math_reward("<answer>\\sqrt{2}</answer>", "\\sqrt2")

    th = threading.Thread(target=work)
    th.start()
    th.join(10)
    assert out["int"] == 1.0  # exact comparison works anywhere
    assert out["latex"].answer == 0.0 and "main thread" in out["latex"].reason  # math-verify refused, no raise


# ------------------------------------------------------------------------------------------ properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(a=st.integers(-10**9, 10**9), b=st.integers(-10**9, 10**9), commas=st.booleans())
def test_integer_answers_match_exactly(a, b, commas):
    pred = f"{a:,}" if commas else str(a)
    assert math_reward(f"<think>t</think> <answer>{pred}</answer>", str(b)).answer == float(a == b)


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("<>/thinkswer 0123456789^{}()\\frac$,.")), max_size=80))
def test_any_text_gives_a_reward_in_the_allowed_sets(text):
    r = math_reward(text, "5")
    assert r.answer in (0.0, 1.0) and r.format in (0.0, 0.25, 0.5, 1.0) and 0.0 <= r.total <= 2.0
    assert format_reward(["p"], [text]) == [r.format]
