"""Is an episode solved? The final ``<solution>`` checked by the task's checker (``row["checker"]``).

=========  ==============================================================  ==========================================
checker    solved when                                                      tasks
=========  ==============================================================  ==========================================
``math``   ``sspo_exp.rewards.answer_matches(solution, answer)``: exact      CodeActInstruct MATH; generated arithmetic
           number/fraction comparison, then math-verify (with its guards)
``exact``  ``answer_check="upstream"`` (the default): M3ToolEval's own      M3ToolEval (the ``codeact`` benchmark)
           ``Task.check_answer``, ported with its quirks (:func:`upstream_
           check`); ``"strict"``: our normalised match (:func:`exact_match`)
``mint``   MINT's check of CodeActInstruct gold: containment of the         CodeActInstruct HotpotQA and
           normalised gold in the normalised answer, numbers within 5 %     WikiTableQuestions
``tests``  ``answer`` is a JSON list of ``{"input", "output"}`` stdin/stdout   APPS-style code tasks (only when the rows
           cases; the solution program, run in a fresh sandbox per case,    carry test cases: CodeActInstruct's APPS
           prints ``output`` (whitespace-trimmed lines) for every case      trajectories do not)
=========  ==============================================================  ==========================================

A checker never raises: a malformed solution or gold answer is simply not solved (the reason is returned).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any
from sspo_exp.rewards import answer_matches
from sspo_exp.sandbox import Sandbox, SandboxConfig

CHECKERS = ("math", "exact", "mint", "tests")
#: How ``exact`` rows (M3ToolEval) are judged: ``upstream`` = M3ToolEval's ``Task.check_answer`` as its authors run
#: it (``dataset.env.answer_check``, the default), ``strict`` = our normalised match (the project's first checker).
ANSWER_CHECKS = ("upstream", "strict")


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        s = x.strip().replace(",", "")
        try:
            return float(s)
        except ValueError:
            return None
    return None


def _literal(s: str) -> Any:
    try:
        return ast.literal_eval(s.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return s.strip()


def _norm_str(x: Any) -> str:
    return " ".join(str(x).strip().strip("'\"").split()).lower()


def _same(a: Any, b: Any) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return math.isclose(na, nb, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return _norm_str(a) == _norm_str(b)


def exact_match(solution: str, gold: str) -> bool:
    """The ``strict`` check (ours, not upstream's): numbers within 1e-6, literals element-wise, strings after
    whitespace/quote normalisation and case-folding; bounded input sizes keep ``literal_eval`` cheap."""
    if len(solution) > 10_000:
        return False
    return _same(_literal(solution), _literal(gold)) or _norm_str(solution) == _norm_str(gold)


def _upstream_convert(value: Any) -> Any:
    """M3ToolEval's ``_try_to_convert_to_correct_type``: ``int``, then ``float``, else the value itself.
    Quirk 1: ``int(3.9) == 3`` truncates a float gold (and a float answer), so the answer ``"3"`` matches the gold
    ``3.9``. Quirk 2: only ``ValueError`` is caught; ``int([1, 2])`` raises ``TypeError``, which escapes to the caller."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def upstream_check(answer: Any, expected: Any) -> bool:
    """M3ToolEval's ``Task.check_answer(answer)`` against ``expected_output`` (``scripts/eval/m3tooleval/tasks/
    base.py``), reproduced behaviour for behaviour, quirks included (each tested in ``tests/test_codeact_protocol.py``):

    1. equal as given, or equal after :func:`_upstream_convert` of both sides (int truncation, see there); the
       comparison is **case-sensitive** (no folding of strings);
    2. a collection gold (list, tuple, dict) or ``None`` makes that conversion raise ``TypeError``: the bare
       ``except`` upstream swallows it, so a collection is only ever compared by ``str()`` (step 4): ``"[1,2]"``
       does not match ``[1, 2]``, ``"[1, 2]"`` does;
    3. otherwise the answer is rebound to ``ast.literal_eval(answer)`` (when it parses); upstream's next line, meant
       to compare the parsed answer (``answer == expected (…) or …``), lacks an ``or`` and so *calls* the gold,
       which always raises ``TypeError``: that comparison never runs, but the rebinding survives, so step 4 compares
       ``str()`` of the *parsed* answer (``"'Paris'"`` matches ``"Paris"``, ``"12.50"`` matches ``12.5``);
    4. ``str(answer) == str(expected)``.

    Our one addition: an answer over 10,000 characters is not parsed (``literal_eval`` cost); upstream has no cap.
    """
    try:
        if answer == expected or _upstream_convert(answer) == _upstream_convert(expected):
            return True
        if isinstance(answer, str) and len(answer) > 10_000:
            raise ValueError("not parsed")
        answer = ast.literal_eval(answer)  # step 3: raises for a non-string answer, like upstream
        raise TypeError("upstream's missing `or` calls the gold here")  # step 3: the parsed comparison never runs
    except Exception:  # upstream: a bare `except: pass` (MemoryError/RecursionError are Exceptions too)
        pass
    return str(answer) == str(expected)


def typed_gold(gold: Any) -> Any:
    """An ``exact`` row's gold as upstream's typed ``expected_output``: the loader stores ``repr(expected_output)``
    (``sspo_exp.data.codeact``), so ``3.5`` and ``"3.5"`` stay apart; a gold that is not a literal stays a string."""
    if not isinstance(gold, str):
        return gold
    try:
        return ast.literal_eval(gold.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return gold


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s.\-]")


def _mint_norm(text: Any) -> str:
    return " ".join(_ARTICLES.sub(" ", _PUNCT.sub(" ", str(text).lower())).split())


def mint_match(solution: str, gold: str) -> bool:
    """MINT's check of a CodeActInstruct answer (HotpotQA, WikiTableQuestions), from the issue's description: two
    numbers match within 5 % of the gold; otherwise the normalised gold (lower case, no punctuation or articles)
    must be contained in the normalised answer. Not verified against MINT's source (docs/codeact.md)."""
    a, g = _number(solution), _number(gold)
    if a is not None and g is not None:
        return abs(a - g) <= 0.05 * abs(g) if g else a == 0
    ng = _mint_norm(gold)
    return bool(ng) and ng in _mint_norm(solution)


TEST_HARNESS = """
import io as _io, sys as _sys, contextlib as _cl
_out = _io.StringIO()
_sys.stdin = _io.StringIO({stdin!r})
try:
    with _cl.redirect_stdout(_out):
        exec(compile({program!r}, "<solution>", "exec"), {{"__name__": "__main__"}})
except SystemExit:
    pass
print("\\x00RESULT\\x00" + repr(_out.getvalue()))
"""


def run_tests(program: str, cases_json: str, sandbox_config: Any = None) -> tuple[bool, str]:
    """Run ``program`` on every stdin/stdout case, one fresh sandbox per case."""
    try:
        cases = json.loads(cases_json)
        assert isinstance(cases, list) and cases and all(isinstance(c, dict) and "input" in c and "output" in c
                                                         for c in cases)
    except (ValueError, AssertionError):
        return False, "gold is not a JSON list of {input, output} test cases"
    sc = sandbox_config if sandbox_config is not None else SandboxConfig.from_mapping({})
    for k, case in enumerate(cases):
        with Sandbox.from_config(sc) as box:
            obs = box.run(TEST_HARNESS.format(stdin=str(case["input"]), program=program))
        marker = "\x00RESULT\x00"
        if obs.killed or marker not in obs.output:
            return False, f"test {k}: {obs.killed or (obs.error or 'no result')[-200:]}"
        got = ast.literal_eval(obs.output.rsplit(marker, 1)[1].strip())
        want = str(case["output"])
        if [line.strip() for line in got.strip().splitlines()] != [line.strip() for line in want.strip().splitlines()]:
            return False, f"test {k}: wrong output"
    return True, ""


def check(solution: str | None, gold: str, checker: str, sandbox_config: Any = None,
          answer_check: str = "upstream") -> tuple[bool, str]:
    """(solved, reason-if-not) of a final solution under ``checker`` (one of :data:`CHECKERS`); ``answer_check``
    (one of :data:`ANSWER_CHECKS`) picks how ``exact`` rows are judged."""
    if checker not in CHECKERS:
        raise ValueError(f"checker={checker!r}: choose one of {', '.join(CHECKERS)}")
    if answer_check not in ANSWER_CHECKS:
        raise ValueError(f"answer_check={answer_check!r}: choose one of {', '.join(ANSWER_CHECKS)}")
    if solution is None:
        return False, "no <solution>"
    if not solution.strip():
        return False, "empty <solution>"
    try:
        if checker == "math":
            return answer_matches(solution.strip(), gold)
        if checker == "exact" and answer_check == "upstream":
            return upstream_check(solution.strip(), typed_gold(gold)), ""
        if checker == "exact":
            return exact_match(solution, gold), ""
        if checker == "mint":
            return mint_match(solution, gold), ""
        return run_tests(solution, gold, sandbox_config)
    except Exception as e:  # a checker bug must never stop training
        return False, f"checker error: {type(e).__name__}"
