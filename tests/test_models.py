"""The tiny policy: tokenizer round trips, model save/load, cold-start targets and cache."""

from __future__ import annotations

import random

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from sspo_exp import CONF_DIR
from sspo_exp.models import tiny
from sspo_exp.stages import policy, targets
from sspo_exp.stages import tiny as tiny_stage
from sspo_exp.stages.policy import load_policy
from sspo_exp.stages.spec import TINY_FIELDS

ARCH = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
COLD = dict(steps=2, batch_size=4, learning_rate=1e-3, warmup_steps=1, weight_decay=0.0, target_noise=0.5)
DATASET = dict(name="arithmetic", seed=0, digits=2, operations=["+", "-"], steps=1, word_problems=0.0, train_size=50, test_size=10, prompt_style="compact")


def test_tokenizer_is_lossless_on_the_format_and_digits():
    tok = tiny.build_tokenizer()
    text = "12-75+3\n<think>-(75-12) 5-2=3 7-1=6</think> <answer>-63</answer>"
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    for tag in tiny.FORMAT_TAGS:  # one token each, kept by skip_special_tokens (the reward must see them)
        assert len(tok(tag, add_special_tokens=False).input_ids) == 1
    assert tok.decode(ids + [tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == text
    assert all(len(tok(d, add_special_tokens=False).input_ids) == 1 for d in "0123456789+-*= ")
    assert tok.pad_token_id != tok.eos_token_id and tok.padding_side == "left"


def test_model_round_trips_through_save_and_load(tmp_path):
    tok = tiny.build_tokenizer()
    model = tiny.build_model(ARCH, tok, seed=0).eval()
    tiny.save(model, tok, tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    text = "47+38\n<think>7+8=15</think> <answer>85</answer>"
    assert tok2(text).input_ids == tok(text).input_ids and tok2.padding_side == "left"
    ids = torch.tensor([tok(text).input_ids])
    torch.testing.assert_close(model(ids).logits, model2(ids).logits)


def test_default_tiny_model_has_about_a_million_parameters():
    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny.yaml").read_text())
    assert cfg["name"] == "tiny" and cfg["path"] is None
    assert set(TINY_FIELDS) <= set(cfg["cold_start"])
    n = sum(p.numel() for p in tiny.build_model(cfg, tiny.build_tokenizer(), 0).parameters())
    assert 0.5e6 < n < 2e6


@pytest.mark.parametrize("a, op, b", [(47, "+", 38), (42, "-", 17), (17, "-", 42), (99, "+", 99), (100, "-", 1), (5, "-", 5), (0, "+", 0)])
def test_working_examples(a, op, b):
    text, value = targets.working(a, op, b)
    assert value == (a + b if op == "+" else a - b)


def test_working_is_exact_and_dropping_carries_is_the_column_slip():
    rng = random.Random(0)
    for _ in range(2000):
        a, b, op = rng.randint(0, 999), rng.randint(0, 999), rng.choice("+-")
        assert targets.working(a, op, b)[1] == (a + b if op == "+" else a - b)
        slip = targets.working(a, op, b, carry=False)[1]
        hi, lo = (a, b) if op == "+" or a >= b else (b, a)
        digits = [(x % 10 + y % 10) % 10 if op == "+" else (x % 10 - y % 10) % 10 for x, y in ((hi // 10**k, lo // 10**k) for k in range(3))]
        assert abs(slip) == digits[0] + 10 * digits[1] + 100 * digits[2]
    assert targets.completion("47+38", "85") == "<think>7+8=15 4+3+1=8</think> <answer>85</answer>"
    assert targets.completion("47+38", "85", drop_carry=True) == "<think>7+8=15 4+3=7</think> <answer>75</answer>"
    assert targets.completion("2*3+1", "7") == "<think>2*3+1</think> <answer>7</answer>"


def test_target_noise_is_the_fraction_of_slipped_targets():
    ds = dict(DATASET, train_size=2000)
    clean = targets.training_texts(ds, 0.0, seed=0)
    noisy = targets.training_texts(ds, 0.5, seed=0)
    assert all(c.endswith(f"<answer>{eval(p)}</answer>") for p, c in clean)  # noqa: S307 — generated digits and +-
    changed = sum(c != n for (_, c), (_, n) in zip(clean, noisy))
    carries = sum(targets.working(*_split(p)) != targets.working(*_split(p), carry=False) for p, _ in clean)
    assert 0.4 * carries < changed < 0.6 * carries  # noise applies to problems with a carry or borrow only


def _split(prompt: str):
    q = prompt.strip()
    op = "+" if "+" in q else "-"
    a, b = q.split(op)
    return int(a), op, int(b)


def test_cold_start_is_cached_by_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    calls = []
    real_train = tiny_stage.train
    monkeypatch.setattr(tiny_stage, "train", lambda *a, **k: (calls.append(1), real_train(*a, **k, log_every=0))[1])
    model_cfg = dict(name="tiny", path=None, **ARCH, cold_start=COLD)
    model, tok = load_policy(model_cfg, DATASET, seed=0)
    assert len(calls) == 1 and tok.padding_side == "left"
    model2, _ = load_policy(model_cfg, DATASET, seed=0)  # cache hit: no training
    assert len(calls) == 1
    for p, q in zip(model.parameters(), model2.parameters()):
        torch.testing.assert_close(p, q)
    load_policy(model_cfg, DATASET, seed=1)  # the seed is part of the key
    load_policy(dict(model_cfg, cold_start=dict(COLD, steps=3)), DATASET, seed=0)  # so is the cold_start block
    load_policy(model_cfg, dict(DATASET, digits=1), seed=0)  # and the dataset knobs
    assert len(calls) == 4 and len([p for p in tmp_path.glob("coldstart-tiny-*") if p.is_dir()]) == 4


def test_bad_configs_name_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match="target_noise"):
        load_policy(dict(name="tiny", **ARCH, cold_start=dict(COLD, target_noise=2)), DATASET, 0)
    with pytest.raises(ValueError, match="model.path"):
        load_policy(dict(name="qwen3-8b", path=None), DATASET, 0)
    with pytest.raises(ValueError, match="dataset.name"):
        load_policy(dict(name="tiny", **ARCH, cold_start=COLD), dict(DATASET, name="gsm8k"), 0)
    with pytest.raises(ValueError, match="hidden_size"):
        load_policy(dict(name="tiny", cold_start=COLD), DATASET, 0)


@pytest.mark.slow
def test_short_cold_start_learns_arithmetic(tmp_path, monkeypatch):
    """A short SFT on correct targets takes held-out greedy accuracy from 0 to far above chance."""
    from sspo_exp.data.arithmetic import ArithmeticConfig, build_prompt, generate

    torch.set_num_threads(1)
    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    arch = dict(ARCH, hidden_size=64, intermediate_size=192, num_hidden_layers=2, max_position_embeddings=64)
    ds = dict(DATASET, digits=1, train_size=2000, test_size=40)
    cold = dict(COLD, steps=250, batch_size=32, learning_rate=3e-3, warmup_steps=20, target_noise=0.0)
    test = generate(ArithmeticConfig.from_config(ds), "test", seed=0)

    def accuracy(model, tok) -> float:
        enc = tok([build_prompt(r["question"]) for r in test], return_tensors="pt", padding=True)
        out = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)
        return sum(t.strip().endswith(f"<answer>{r['answer']}</answer>") for t, r in zip(texts, test)) / len(test)

    tok = tiny.build_tokenizer()
    assert accuracy(tiny.build_model(arch, tok, seed=0).eval(), tok) == 0.0
    model, tok = load_policy(dict(name="tiny", **arch, cold_start=cold), ds, seed=0)
    assert accuracy(model.eval(), tok) >= 0.25  # 19 answers -9..18 per operator: chance ~5%; measured 0.42
