"""The tiny cold start's demonstrations: the column-by-column working of ``a ± b`` (torch-free).

See :mod:`sspo_exp.stages.tiny` for why the targets carry a deliberate slip (``target_noise``)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sspo_exp.data.arithmetic import ArithmeticConfig, build_prompt, generate


def working(a: int, op: str, b: int, carry: bool = True) -> tuple[str, int]:
    """Column-by-column working of ``a op b`` (``op`` in ``+ -``, ``a, b >= 0``) and the answer it leads to.

    Units column first; each column shows its digits, the carry/borrow taken from the previous column, and the
    raw result: ``47+38 -> "7+8=15 4+3+1=8"`` (answer 85), ``42-17 -> "2-7=-5 4-1-1=2"`` (answer 25).
    When ``a < b`` it is the working of ``-(b - a)``: ``17-42 -> "-(42-17) 2-7=-5 4-1-1=2"``
    (answer -25). With ``carry=False`` every carry and borrow is dropped — the deliberate slip of the noisy
    targets (``47+38 -> "7+8=15 4+3=7"``, answer 75).
    """
    if op == "-" and a < b:
        text, value = working(b, "-", a, carry)
        return f"-({b}-{a}) {text}", -value
    columns, digits, c, place, value = [], max(len(str(a)), len(str(b))), 0, 1, 0
    for _ in range(digits):
        da, db = a % 10, b % 10
        raw = da + db + c if op == "+" else da - db - c
        columns.append(f"{da}{op}{db}" + (f"{op}1" if c else "") + f"={raw}")
        value += (raw % 10) * place
        c = int(carry and (raw >= 10 if op == "+" else raw < 0))
        a, b, place = a // 10, b // 10, place * 10
    return " ".join(columns), value + (c * place if op == "+" else 0)


def completion(question: str, answer: str, drop_carry: bool = False) -> str:
    """The cold-start target for one problem, in the paper's format ``<think>…</think> <answer>…</answer>``.

    Single-step ``a+b`` / ``a-b`` problems get the column working of :func:`working` as their think part
    (``drop_carry`` makes it, and the answer, the slipped version). Any other problem (``*``, several steps,
    word problems) restates the question as its think part and gives ``answer`` unchanged.
    """
    expression = _operands(question)
    if expression is None or expression[1][0] == "*":
        return f"<think>{question}</think> <answer>{answer}</answer>"
    (a, b), (op,) = expression
    text, value = working(a, op, b, carry=not drop_carry)
    return f"<think>{text}</think> <answer>{value}</answer>"


def _operands(question: str) -> tuple[list[int], list[str]] | None:
    """``(operands, ops)`` of a bare single-step expression like ``47+38`` / ``5-12`` (None for anything else)."""
    for op in "+-*":
        left, sep, right = question.partition(op)
        if sep and left.isdigit() and right.isdigit():
            return [int(left), int(right)], [op]
    return None


def training_texts(dataset: Mapping[str, Any], target_noise: float, seed: int) -> list[tuple[str, str]]:
    """``(prompt, completion)`` pairs of the train split; ``target_noise`` of them carry the dropped-carry slip."""
    rows = generate(ArithmeticConfig.from_config(dataset), "train", int(dataset.get("seed", 0)))
    rng = random.Random(seed)
    style = dataset.get("prompt_style", "compact")
    return [
        (build_prompt(r["question"], None, style), completion(r["question"], r["answer"], rng.random() < target_noise))
        for r in rows
    ]
