"""Generated arithmetic: the embedded default's task (exact answers, no download, deterministic by seed).

A problem is an integer expression such as ``47+38`` or ``12-75+3`` (``steps`` binary operations on operands of
1..``digits`` digits), optionally phrased as a short word problem. Answers are exact integers as strings, so the
paper's reward (``sspo_exp.rewards``) scores them like any math answer.

Splits are disjoint by construction: the *test* split is drawn first (distinct problems), and the *train* split
rejects any problem whose canonical expression is in the test split. Both splits depend only on ``(knobs, seed)``.

    >>> rows = generate(ArithmeticConfig(digits=2), "test", seed=0)[:1]
    >>> sorted(rows[0])
    ['answer', 'id', 'question', 'source']
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping
from typing import Any
from sspo_exp.data.prompts import build_prompt as instruct_prompt

SPLITS = ("train", "test")
OPERATIONS = ("+", "-", "*")
PROMPT_STYLES = ("compact", "instruct")
SOURCE = "arithmetic"

_WORD_TEMPLATES = {
    "+": "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
    "-": "{name} has {a} {item} and gives away {b}. How many {item} does {name} have now?",
    "*": "{name} buys {a} boxes with {b} {item} in each. How many {item} does {name} have?",
}
_NAMES = ("Ann", "Bo", "Cy", "Di", "Ed", "Flo")
_ITEMS = ("apples", "pens", "coins", "cards")


@dataclasses.dataclass(frozen=True)
class ArithmeticConfig:
    """Difficulty knobs (documented again in ``conf/dataset/arithmetic.yaml``).

    digits: operands are drawn uniformly from 0 .. 10**digits - 1.
    operations: operators to draw from, a subset of ``+ - *`` (standard precedence for ``*``).
    steps: binary operations per problem (1 -> ``a+b``, 2 -> ``a+b-c``, ...).
    word_problems: fraction of problems phrased as a one-sentence word problem (``steps == 1`` only).
    train_size / test_size: rows per split; the test split holds distinct problems.
    """

    digits: int = 2
    operations: tuple[str, ...] = ("+", "-")
    steps: int = 1
    word_problems: float = 0.0
    train_size: int = 20000
    test_size: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        if not isinstance(self.digits, int) or not 1 <= self.digits <= 9:
            raise ValueError(f"dataset.digits must be an integer in 1..9, got {self.digits!r}")
        bad = [op for op in self.operations if op not in OPERATIONS]
        if bad or not self.operations:
            raise ValueError(f"dataset.operations must be a non-empty subset of {list(OPERATIONS)}, got {list(self.operations)}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"dataset.steps must be an integer >= 1, got {self.steps!r}")
        if not 0.0 <= self.word_problems <= 1.0:
            raise ValueError(f"dataset.word_problems must be a fraction in [0, 1], got {self.word_problems!r}")
        if self.word_problems > 0 and self.steps != 1:
            raise ValueError("dataset.word_problems > 0 needs dataset.steps == 1 (templates are single-step)")
        for name in ("train_size", "test_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"dataset.{name} must be a positive integer, got {getattr(self, name)!r}")
        space = (10**self.digits) ** (self.steps + 1) * len(self.operations) ** self.steps
        if self.test_size > space // 2:
            raise ValueError(
                f"dataset.test_size={self.test_size} is more than half of the {space} distinct problems these knobs allow; "
                "lower it or raise dataset.digits / dataset.steps so the train split keeps most of the problem space"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ArithmeticConfig:
        """Build from a ``dataset`` config block, ignoring keys that are not knobs (``name``, ``prompt_style``...)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k == "operations" else v) for k, v in dict(cfg).items() if k in fields})


def evaluate(operands: list[int], ops: list[str]) -> int:
    """Exact value of ``operands[0] ops[0] operands[1] ...`` with ``*`` binding tighter than ``+``/``-``."""
    terms, signs = [operands[0]], []
    for op, x in zip(ops, operands[1:]):
        if op == "*":
            terms[-1] *= x
        else:
            signs.append(op)
            terms.append(x)
    value = terms[0]
    for sign, term in zip(signs, terms[1:]):
        value = value + term if sign == "+" else value - term
    return value


def _draw(rng: random.Random, cfg: ArithmeticConfig) -> tuple[list[int], list[str]]:
    hi = 10**cfg.digits - 1
    operands = [rng.randint(0, hi) for _ in range(cfg.steps + 1)]
    ops = [rng.choice(cfg.operations) for _ in range(cfg.steps)]
    return operands, ops


def _expression(operands: list[int], ops: list[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:]))


def _question(rng: random.Random, cfg: ArithmeticConfig, operands: list[int], ops: list[str]) -> str:
    if cfg.steps == 1 and rng.random() < cfg.word_problems:
        a, b = operands
        if ops[0] == "-" and b > a:  # "gives away" more than one has reads wrong; the value is unchanged: a-b
            return f"What is {a} minus {b}?"
        return _WORD_TEMPLATES[ops[0]].format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), a=a, b=b)
    return _expression(operands, ops)


def _rng(cfg: ArithmeticConfig, split: str, seed: int) -> random.Random:
    key = f"{dataclasses.astuple(cfg)}|{split}|{seed}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def _test_expressions(cfg: ArithmeticConfig, seed: int) -> list[tuple[list[int], list[str]]]:
    rng, seen, out = _rng(dataclasses.replace(cfg, train_size=1), "test", seed), set(), []
    while len(out) < cfg.test_size:
        operands, ops = _draw(rng, cfg)
        expr = _expression(operands, ops)
        if expr not in seen:
            seen.add(expr)
            out.append((operands, ops))
    return out


def generate(cfg: ArithmeticConfig, split: str, seed: int = 0) -> list[dict[str, str]]:
    """Rows ``{"id", "question", "answer", "source"}`` of one split; same ``(cfg, split, seed)`` -> same rows.

    The test split does not depend on ``train_size`` (and vice versa apart from the exclusion), so changing the
    train size never changes the held-out problems.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    test = _test_expressions(cfg, seed)
    if split == "test":
        rng = _rng(dataclasses.replace(cfg, train_size=1), "test-text", seed)
        problems = test
    else:
        rng, excluded, problems = _rng(dataclasses.replace(cfg, test_size=1), "train", seed), {_expression(*p) for p in test}, []
        while len(problems) < cfg.train_size:
            operands, ops = _draw(rng, cfg)
            if _expression(operands, ops) not in excluded:
                problems.append((operands, ops))
    return [
        {
            "id": f"{SOURCE}-{split}-{i}",
            "question": _question(rng, cfg, operands, ops),
            "answer": str(evaluate(operands, ops)),
            "source": SOURCE,
        }
        for i, (operands, ops) in enumerate(problems)
    ]


def build_prompt(question: str, tokenizer: Any = None, prompt_style: str = "compact",
                 chat_template_kwargs: Any = None) -> Any:  # fmt: skip
    """The prompt for one question.

    ``compact`` (the tiny model's default): the bare question and a newline, e.g. ``"47+38\\n"``. A char-level
    model pays one token per character, and the cold start teaches it the answer format, so the instruction is
    left out. ``instruct``: the project's zero-shot prompt (``sspo_exp.data.prompts.build_prompt``), which asks
    for ``<think>…</think> <answer>…</answer>`` — use it for pretrained models.
    """
    if prompt_style == "compact":
        return f"{question}\n"
    if prompt_style == "instruct":
        return instruct_prompt(question, tokenizer, chat_template_kwargs)
    raise ValueError(f"dataset.prompt_style must be one of {list(PROMPT_STYLES)}, got {prompt_style!r}")
