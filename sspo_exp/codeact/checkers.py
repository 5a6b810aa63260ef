"""Is an episode solved? The final ``<solution>`` checked by the task's checker (``row["checker"]``).

=========  ==============================================================  ==========================================
checker    solved when                                                      tasks
=========  ==============================================================  ==========================================
``math``   ``sspo_exp.rewards.answer_matches(solution, answer)``: exact      CodeActInstruct MATH; generated arithmetic
           number/fraction comparison, then math-verify (with its guards)
``exact``  M3ToolEval's ``Task.check_answer``: equal as strings, or as       M3ToolEval (the ``codeact`` benchmark),
           int/float, or as Python literals (lists element-wise), after     CodeActInstruct HotpotQA and
           whitespace/quote normalisation and case-folding of strings       WikiTableQuestions
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
from typing import Any
from sspo_exp.rewards import answer_matches
from sspo_exp.sandbox import Sandbox, SandboxConfig

CHECKERS = ("math", "exact", "tests")


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
    """M3ToolEval-style comparison (see the table above); bounded input sizes keep ``literal_eval`` cheap."""
    if len(solution) > 10_000:
        return False
    return _same(_literal(solution), _literal(gold)) or _norm_str(solution) == _norm_str(gold)


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


def check(solution: str | None, gold: str, checker: str, sandbox_config: Any = None) -> tuple[bool, str]:
    """(solved, reason-if-not) of a final solution under ``checker`` (one of :data:`CHECKERS`)."""
    if checker not in CHECKERS:
        raise ValueError(f"checker={checker!r}: choose one of {', '.join(CHECKERS)}")
    if solution is None:
        return False, "no <solution>"
    if not solution.strip():
        return False, "empty <solution>"
    try:
        if checker == "math":
            return answer_matches(solution.strip(), gold)
        if checker == "exact":
            return exact_match(solution, gold), ""
        return run_tests(solution, gold, sandbox_config)
    except Exception as e:  # a checker bug must never stop training
        return False, f"checker error: {type(e).__name__}"
