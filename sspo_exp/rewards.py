"""The paper's reward, ``r = r_answer + r_format`` in [0, 2] (SPEC.md "Training setup"; paper Appendix A).

``r_answer = 1[â = a]``: ``â`` is the text between the **last** complete ``<answer>`` … ``</answer>`` pair of the
completion (the last ``</answer>`` and the nearest ``<answer>`` before it); it is checked against the gold answer
``a`` by an exact comparison first and then by math-verify (``parse`` + ``verify``). No answer tags → 0.

``r_format ∈ {1, 0.5, 0.25, 0}`` for the template ``<think> … </think> <answer> … </answer>``.
Our reading of the paper's "fully correct format / correct edge tokens (both) / correct edge (either) / otherwise":

* the two **edge tokens** are the template's outer tags: the completion (surrounding whitespace ignored) must
  *start* with ``<think>`` and *end* with ``</answer>``;
* **fully correct** (1.0): both edges right, and the whole completion is exactly
  ``<think>X</think>W<answer>Y</answer>`` with each of the four tags exactly once, ``W`` whitespace only and
  ``Y`` non-blank (``X`` may be anything without tags, also empty);
* **both edges** (0.5): starts with ``<think>`` and ends with ``</answer>``, but the inside is wrong
  (a missing/duplicated/misordered middle tag, text between ``</think>`` and ``<answer>``, a blank answer);
* **one edge** (0.25): exactly one of the two (e.g. the answer is followed by more text, or ``<think>`` is missing);
* otherwise 0.

Cost guards (adversarial completions must not stall training; each case below costs well under 2 s and scores 0):
the extracted answer is capped at :data:`MAX_ANSWER_CHARS` characters and :data:`MAX_NESTING` bracket depth,
power towers (``9^9^9^9``, ``9^{9^9}``) and long literal exponents/factorials are refused before math-verify,
integer/decimal/fraction answers are compared exactly without math-verify, and math-verify runs under one
:data:`VERIFY_TIMEOUT_S` budget of the process's CPU time (``signal.setitimer(ITIMER_PROF)``: a busy machine does
not turn a right answer into a wrong one, as a wall-clock budget would; math-verify's lazy imports are warmed up
outside the budget). Signals only work in the main thread, so off the
main thread math-verify is skipped and only the exact comparison is used (warned once): score in the main thread
(TRL calls reward functions there) or in a process pool, never in threads. Nothing here raises on bad completions.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 256  #: longer extracted answers score 0 without being parsed
MAX_NESTING = 24  #: deeper ()[]{} nesting in an answer scores 0 without being parsed
MAX_EXPONENT_DIGITS = 4  #: a literal exponent or factorial argument with more digits is refused
VERIFY_TIMEOUT_S = 1.0  #: CPU-time budget for math-verify (parse gold + parse answer + verify)

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

#: Our checker's own revision: bump it whenever extraction, the exact comparison, the cost guards or the format
#: levels change what a completion scores (a test pins the rule set it names).
CHECKER_REVISION = 1


def _checker_version() -> str:
    from importlib import metadata

    try:
        mv = metadata.version("math-verify")
    except metadata.PackageNotFoundError:
        mv = "absent"
    return f"sspo-r{CHECKER_REVISION}+math-verify-{mv}"


#: The answer checker's version, recorded in every evaluation profile (``sspo_exp.evaluation.profile``): our rule
#: set's revision and the installed math-verify, whose parser decides the answers our exact comparison does not.
CHECKER_VERSION = _checker_version()


@dataclass(frozen=True)
class Reward:
    """One completion's reward breakdown: ``answer`` (0 or 1), ``format`` (1, 0.5, 0.25 or 0), ``total`` (sum)."""

    answer: float
    format: float
    extracted: str | None = None  #: the answer text between the last <answer></answer> pair (None: no pair)
    reason: str = ""  #: why the answer scored 0 when it was not simply wrong (e.g. "no <answer> tags", "too long")

    @property
    def total(self) -> float:
        return self.answer + self.format


# --------------------------------------------------------------------------------------------- text access
def completion_text(completion: Any) -> str:
    """The completion as text: a string as is; a TRL conversational completion (list of messages) as the
    concatenated assistant contents, a ``reasoning_content``/``reasoning``/``thinking`` field re-wrapped in
    ``<think></think>`` (tokenizers with a response schema split it off). Anything else → ``""``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    parts = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        for key in ("reasoning_content", "reasoning", "thinking"):
            if isinstance(message.get(key), str) and message[key]:
                parts.append(f"{THINK_OPEN}{message[key]}{THINK_CLOSE}")
                break
        content = message.get("content")
        if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}]
            content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)


def extract_answer(text: str) -> str | None:
    """Text inside the last complete ``<answer>…</answer>`` pair (stripped), or None. Linear time."""
    close = text.rfind(ANSWER_CLOSE)
    if close < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, close)
    if start < 0:
        return None
    return text[start + len(ANSWER_OPEN) : close].strip()


def cut_before_answer(text: str, hit_limit: bool) -> bool:
    """Whether a completion was cut by the generation budget before it closed its answer: it stopped at the length
    limit (no EOS) and has no ``</answer>``. Such a completion scores 0 whatever the model would have answered; the
    share of them says how much a budget (512 tokens, SPEC.md) or a thinking mode costs (logged in training and per
    benchmark in evaluation, ``sspo_exp.keys.CUT``)."""
    return bool(hit_limit) and ANSWER_CLOSE not in text


# ---------------------------------------------------------------------------------------------- format
def format_score(text: str) -> float:
    """``r_format`` of a completion text (see the module docstring for the reading of the four levels)."""
    s = text.strip()
    starts, ends = s.startswith(THINK_OPEN), s.endswith(ANSWER_CLOSE)
    if not (starts and ends):
        return 0.25 if (starts or ends) else 0.0
    if all(s.count(tag) == 1 for tag in _TAGS):
        t_close, a_open = s.find(THINK_CLOSE), s.find(ANSWER_OPEN)
        between = s[t_close + len(THINK_CLOSE) : a_open]
        answer = s[a_open + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)]
        if t_close < a_open and not between.strip() and answer.strip():
            return 1.0
    return 0.5


# ---------------------------------------------------------------------------------------------- answer
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_FRACTION = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_LATEX_FRAC = re.compile(r"([+-]?)\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")
_BOXED = re.compile(r"^\\boxed\s*\{(.*)\}$", re.S)
_POW = r"(?:\^|\*\*)"
# Checked on the answer with whitespace, braces and parentheses removed: 9^9^9, 9^{9^{9}}, (9**9)**9; 2^{10000};
# 10000!; (999!)! (an iterated factorial)
_TOWER = re.compile(rf"\d{_POW}[+-]?\d+(?:\.\d*)?{_POW}")
_BIG_EXP = re.compile(rf"{_POW}[+-]?\d{{{MAX_EXPONENT_DIGITS + 1},}}|\d{{{MAX_EXPONENT_DIGITS + 1},}}!|!!")


def _strip_wrappers(s: str) -> str:
    s = s.strip()
    for _ in range(3):  # a few layers of $…$, \(…\), \boxed{…}
        prev = s
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        m = _BOXED.match(s)
        if m:
            s = m.group(1).strip()
        if s == prev:
            break
    return s


def exact_value(s: str) -> Fraction | None:
    """Exact rational value of a plain number answer (``"1,234"``, ``"-3.50"``, ``"7/2"``, ``"\\frac{7}{2}"``,
    ``"$\\boxed{12}$"``, ``"\\$18"``), or None when the answer is anything else (then math-verify decides)."""
    s = _strip_wrappers(s).replace("\\!", "").replace("\\,", "").replace("\\$", "").replace(" ", "")
    s = s.rstrip(".")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    try:
        if _NUMBER.fullmatch(s):
            return Fraction(s)
        m = _FRACTION.fullmatch(s)
        if m and int(m.group(2)) != 0:
            return Fraction(int(m.group(1)), int(m.group(2)))
        m = _LATEX_FRAC.fullmatch(s)
        if m and int(m.group(3)) != 0:
            return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) == "-" else 1)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _too_costly(s: str) -> str:
    """A reason to refuse ``s`` before math-verify ('' when it is fine)."""
    if len(s) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} chars"
    depth = peak = 0
    for ch in s:
        if ch in "([{":
            depth += 1
            peak = max(peak, depth)
        elif ch in ")]}":
            depth -= 1
    if peak > MAX_NESTING:
        return f"answer nested deeper than {MAX_NESTING}"
    flat = re.sub(r"[\s{}()]", "", s)
    if _TOWER.search(flat) or _BIG_EXP.search(flat):
        return "answer has a power tower or a huge exponent/factorial"
    if s.count("\\frac") + s.count("\\sqrt") > MAX_NESTING:
        return "answer has too many \\frac/\\sqrt"
    return ""


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its own timeout is off; ours (``setitimer``) replaces it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


class _VerifyTimeout(BaseException):  # BaseException: math-verify's `except Exception` must not swallow it
    pass


_warned_thread = False
TIMER_REPEAT_S = 0.05  #: after the budget, the alarm repeats until disarmed (one raised in a finalizer is lost)


_warm = False


def _warm_up() -> None:
    """math-verify imports sympy and its LaTeX parser lazily on first use (seconds on a busy machine): do that once,
    outside any budget, so the budget measures the work on the answer only."""
    global _warm
    if not _warm:
        from math_verify import parse, verify

        verify(parse("$\\frac{1}{2}$"), parse("$0.5$"))
        _warm = True


def _math_verify(gold: str, pred: str, budget_s: float) -> tuple[bool, str]:
    """math-verify's parse+verify of both strings under one CPU-time budget (main thread only).

    ``SIGPROF`` fires after ``budget_s`` of the process's CPU time and then every :data:`TIMER_REPEAT_S` until
    disarmed: an alarm that lands in a ``__del__``/weakref finalizer is swallowed by Python, and the next one stops
    the work. The handler raises only while armed, so nothing escapes once the ``finally`` has run its first line.
    """
    from math_verify import parse, verify

    _warm_up()

    def candidates(s: str) -> list:
        wrapped = s if ("$" in s or "\\boxed" in s) else f"${s}$"
        out = parse(wrapped, parsing_timeout=None)
        return out + (parse(s, parsing_timeout=None) if wrapped != s else [])

    armed = [True]

    def on_alarm(signum, frame):
        if armed[0]:
            raise _VerifyTimeout()

    previous = signal.signal(signal.SIGPROF, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_PROF, budget_s, TIMER_REPEAT_S)
            g, p = candidates(gold), candidates(pred)
            return bool(g and p and verify(g, p, timeout_seconds=None)), ""
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _VerifyTimeout:
        return False, f"math-verify timed out ({budget_s:g} s)"
    finally:
        signal.signal(signal.SIGPROF, previous)


def answer_matches(pred: str, gold: str) -> tuple[bool, str]:
    """Whether the extracted answer ``pred`` equals ``gold``; returns (match, reason-if-refused). Never raises."""
    global _warned_thread
    try:
        if len(pred) > MAX_ANSWER_CHARS:  # before any parsing, even the exact one
            return False, f"answer longer than {MAX_ANSWER_CHARS} chars"
        pv, gv = exact_value(pred), exact_value(gold)
        if pv is not None and gv is not None:
            return pv == gv, ""
        if _strip_wrappers(pred) == _strip_wrappers(gold) and pred.strip():
            return True, ""
        reason = _too_costly(pred) or (_too_costly(gold) and "gold " + _too_costly(gold))
        if reason:
            return False, reason
        if threading.current_thread() is not threading.main_thread():
            if not _warned_thread:
                log.warning("math-verify skipped off the main thread (signal-based timeout); exact match only")
                _warned_thread = True
            return False, "math-verify skipped (not the main thread)"
        return _math_verify(gold, pred, VERIFY_TIMEOUT_S)
    except Exception as e:  # a verifier bug must never stop training; report the type, not the input
        return False, f"verifier error: {type(e).__name__}"


def math_reward(completion: Any, gold: str) -> Reward:
    """The paper's reward of one completion (str or TRL message list) against the gold answer string."""
    text = completion_text(completion)
    fmt = format_score(text)
    pred = extract_answer(text)
    if pred is None:
        return Reward(0.0, fmt, None, "no <answer></answer> pair")
    if not pred:
        return Reward(0.0, fmt, pred, "empty answer")
    ok, reason = answer_matches(pred, str(gold))
    shown = pred if len(pred) <= MAX_ANSWER_CHARS else pred[:MAX_ANSWER_CHARS] + "…"  # never keep huge inputs
    return Reward(1.0 if ok else 0.0, fmt, shown, reason)


# ------------------------------------------------------------------------------ TRL reward functions
def answer_reward(prompts, completions, answer, **kwargs) -> list[float]:
    """TRL ``GRPOTrainer`` reward function: ``r_answer`` per completion (gold from the dataset column ``answer``)."""
    return [math_reward(c, a).answer for c, a in zip(completions, answer, strict=True)]


def format_reward(prompts, completions, **kwargs) -> list[float]:
    """TRL ``GRPOTrainer`` reward function: ``r_format`` per completion."""
    return [format_score(completion_text(c)) for c in completions]


#: The paper's reward as TRL reward functions; their sum (TRL's default equal weights) is ``r``.
REWARD_FUNCS = (answer_reward, format_reward)
