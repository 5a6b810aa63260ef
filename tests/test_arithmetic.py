"""The generated arithmetic task: exact answers, determinism, disjoint splits, knob validation, prompts."""

from __future__ import annotations

import re

import pytest
import yaml

from sspo_exp import CONF_DIR
from sspo_exp.data.arithmetic import ArithmeticConfig, build_prompt, evaluate, generate

SMALL = ArithmeticConfig(digits=2, train_size=3000, test_size=150)


def _value(question: str) -> int:
    """Independent check of an expression's value: Python's own arithmetic on the digits-and-operators string."""
    assert re.fullmatch(r"\d+([+\-*]\d+)*", question), question
    return eval(question)  # noqa: S307 — the string is digits and + - * only (asserted above)


@pytest.mark.parametrize("cfg", [SMALL, ArithmeticConfig(digits=3, operations=("+", "-", "*"), steps=3, train_size=500, test_size=100)])
def test_answers_are_exact(cfg):
    for split in ("train", "test"):
        for row in generate(cfg, split, seed=1):
            assert row["answer"] == str(_value(row["question"]))
            assert row["source"] == "arithmetic" and row["id"].startswith(f"arithmetic-{split}-")


def test_rows_have_the_schema_and_unique_ids():
    rows = generate(SMALL, "train", seed=0)
    assert all(set(r) == {"id", "question", "answer", "source"} and all(isinstance(v, str) for v in r.values()) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows) == SMALL.train_size


def test_deterministic_by_seed_and_seed_matters():
    assert generate(SMALL, "test", seed=3) == generate(SMALL, "test", seed=3)
    assert generate(SMALL, "train", seed=3) == generate(SMALL, "train", seed=3)
    assert generate(SMALL, "test", seed=3) != generate(SMALL, "test", seed=4)


def test_splits_are_disjoint_and_test_is_distinct():
    for seed in range(3):
        test = [r["question"] for r in generate(SMALL, "test", seed)]
        train = {r["question"] for r in generate(SMALL, "train", seed)}
        assert len(set(test)) == len(test) == SMALL.test_size
        assert not train & set(test)


def test_test_split_does_not_depend_on_train_size():
    import dataclasses

    assert generate(SMALL, "test") == generate(dataclasses.replace(SMALL, train_size=10), "test")


def test_difficulty_knobs_shape_the_problems():
    rows = generate(ArithmeticConfig(digits=1, operations=("*",), steps=2, train_size=200, test_size=20), "train")
    assert all(re.fullmatch(r"\d\*\d\*\d", r["question"]) for r in rows)
    words = generate(ArithmeticConfig(word_problems=1.0, train_size=200, test_size=20), "train")
    assert all(" " in r["question"] for r in words)
    for r in words:  # the numbers in a word problem give the answer with the template's operator
        a, b = map(int, re.findall(r"\d+", r["question"]))
        assert int(r["answer"]) in {a + b, a - b}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"digits": 0}, "dataset.digits"),
        ({"operations": ("/",)}, "dataset.operations"),
        ({"steps": 0}, "dataset.steps"),
        ({"word_problems": 1.5}, "dataset.word_problems"),
        ({"word_problems": 0.5, "steps": 2}, "dataset.word_problems"),
        ({"test_size": 0}, "dataset.test_size"),
        ({"digits": 1, "operations": ("+",), "test_size": 80}, "dataset.test_size"),  # 100 problems exist
    ],
)
def test_bad_knobs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        ArithmeticConfig(**kwargs)


def test_evaluate_uses_precedence():
    assert evaluate([2, 3, 4], ["+", "*"]) == 14
    assert evaluate([10, 3, 2], ["-", "-"]) == 5


def test_config_file_matches_the_knobs():
    cfg = yaml.safe_load((CONF_DIR / "dataset" / "arithmetic.yaml").read_text())
    assert cfg["name"] == "arithmetic"
    assert ArithmeticConfig.from_config(cfg) == ArithmeticConfig(
        **{k: tuple(v) if k == "operations" else v for k, v in cfg.items() if k not in {"name", "seed", "prompt_style"}}
    )


def test_prompt_styles():
    assert build_prompt("47+38", None, "compact") == "47+38\n"
    assert "<answer>" in build_prompt("47+38", None, "instruct") and "47+38" in build_prompt("47+38", None, "instruct")
    with pytest.raises(ValueError, match="dataset.prompt_style"):
        build_prompt("47+38", None, "verbose")
