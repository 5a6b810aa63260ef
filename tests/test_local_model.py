"""``model.path=<dir>`` / ``eval.model=<dir>`` with a real-looking pretrained model: a miniature Qwen2.5-Instruct
(byte-level BPE, special tokens after the vocabulary, chat template, bf16 weights, sampling defaults in its
generation config; ``local_model_helpers``) through prompts, greedy evaluation, ``sspo-exp eval`` and
``sspo-exp train``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from local_model_helpers import DEFAULT_SYSTEM, GENERATION_PROMPT, local_qwen_dir  # noqa: F401 (fixture)
from sspo_exp import keys
from sspo_exp.data.prompts import INSTRUCTION, build_prompt
from waiting import CEILING

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline", WANDB_SILENT="true",
           TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")  # fmt: skip
QUESTION = "Ben has 8 apples and eats 3. How many apples are left?"


@pytest.fixture(scope="module")
def qwen(local_qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    return AutoModelForCausalLM.from_pretrained(local_qwen_dir), AutoTokenizer.from_pretrained(local_qwen_dir)


def _run(code: str, cwd: Path, timeout: float = CEILING) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# ------------------------------------------------------------------------------------------ the model itself
def test_local_dir_loads_like_a_qwen_instruct_checkpoint(qwen):
    model, tok = qwen
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.bfloat16  # dtype "auto" = the file's
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    ids = [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]
    assert ids == [len(tok) - 3, len(tok) - 2, len(tok) - 1] and model.config.vocab_size > len(tok)
    assert tok("<|im_start|>user")["input_ids"][0] == ids[1]  # a special token is one id, not split into bytes
    text = "<think> 12 + 3 = 15 </think> <answer> 15 </answer>"
    pieces = tok.convert_tokens_to_ids(tok.tokenize(text))
    assert len(pieces) < len(text) / 2 and tok.decode(pieces) == text  # learned BPE merges, lossless byte-level
    assert model.generation_config.do_sample and model.generation_config.repetition_penalty == 1.05


# ------------------------------------------------------------------------------------------------- prompts
def test_build_prompt_renders_the_chat_template(qwen):
    _, tok = qwen
    prompt = build_prompt(QUESTION, tok)
    assert prompt == (f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
                      f"<|im_start|>user\n{INSTRUCTION}\n\n{QUESTION}<|im_end|>\n{GENERATION_PROMPT}")  # fmt: skip
    ids = tok(prompt)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")  # no BOS (Qwen has none) is prepended
    assert tok.decode(ids) == prompt


# ---------------------------------------------------------------------------------------- greedy decoding
def _argmax_continuation(model, tok, prompt: str, n: int) -> str:
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    stop = {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
    new = []
    with torch.inference_mode():
        for _ in range(n):
            nxt = int(model(ids).logits[0, -1].argmax())
            if nxt in stop:
                break
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tok.decode(new, skip_special_tokens=True)


def test_greedy_eval_ignores_the_checkpoints_sampling_defaults(qwen):
    """Pass@1 is plain greedy decoding: a checkpoint's repetition penalty / n-gram ban must not leak into it
    (Qwen2.5-Instruct ships repetition_penalty=1.05; 2.0 and a 1-gram ban make a leak visible on a random model)."""
    from sspo_exp.evaluation.generate import generate_hf

    model, tok = qwen
    prompts = [build_prompt(QUESTION, tok), build_prompt("What is 45 * 3?", tok)]
    expected = [_argmax_continuation(model, tok, p, 10) for p in prompts]
    own = model.generation_config
    leaky = {**own.to_dict(), "repetition_penalty": 2.0, "no_repeat_ngram_size": 1}
    model.generation_config = own.__class__.from_dict(leaky)
    try:
        assert generate_hf(model, tok, prompts, max_new_tokens=10, batch_size=2) == expected
        assert model.generation_config.repetition_penalty == 2.0  # the model's own config is restored afterwards
    finally:
        model.generation_config = own


# ------------------------------------------------------------------------------------------ command line
def test_sspo_exp_eval_on_a_local_model_dir(local_qwen_dir, tmp_path):
    args = [f"eval.model={local_qwen_dir}", "eval.benchmarks=[gsm8k]",
            f"eval.data.gsm8k={FIX / 'gsm8k' / 'test.jsonl'}", f"output_root={tmp_path}",
            "eval.max_new_tokens=8", "eval.batch_size=4", "eval.progress=false"]  # fmt: skip
    _run(f"import sys; from sspo_exp.cli import main; sys.exit(main(['eval', *{args!r}]))", tmp_path)
    (result,) = (tmp_path / "eval").glob("*/gsm8k.json")
    r = json.loads(result.read_text())
    n_fixture = len((FIX / "gsm8k" / "test.jsonl").read_text().splitlines())
    assert r["n"] == len(r["samples"]) == n_fixture == 4 and r["n_failed"] == 0
    assert all(s["prompt"].startswith("<|im_start|>system\n") and s["prompt"].endswith(GENERATION_PROMPT)
               for s in r["samples"])  # fmt: skip
    assert r["config"]["eval"]["model"] == str(local_qwen_dir)


TRAIN = """
import sys, torch
torch.set_num_threads(1)
import sspo_exp.rewards as rewards

def digit_reward(prompts, completions, **kw):  # dense stand-in: a random model never earns the answer reward
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]

rewards.REWARD_FUNCS = (digit_reward, rewards.format_reward)
from sspo_exp.cli import main
sys.exit(main(["train", *{args!r}]))
"""


def test_sspo_exp_train_on_a_local_model_dir_then_eval_the_run(local_qwen_dir, tmp_path):
    """Two optimizer steps (μ=2: one rollout, the second step one update stale) through ``sspo-exp train``'s entry
    point with ``model.path=<dir>`` on GSM8K-format data; the weights move; the run's checkpoint is a complete HF
    model directory (chat template included) that ``sspo-exp eval`` evaluates with the same prompts."""
    from safetensors.torch import load_file

    runs = tmp_path / "runs"
    args = ["model=local", "model.name=qwen2.5-mini", f"model.path={local_qwen_dir}", "dataset=gsm8k",
            f"dataset.path={FIX / 'gsm8k'}", f"output_root={runs}",
            "trainer.num_generations=4", "trainer.prompts_per_step=2", "trainer.per_device_batch_size=4",
            "trainer.mu=2", "trainer.max_steps=2", "trainer.save_steps=2", "trainer.max_prompt_length=256",
            "trainer.max_completion_length=8", "trainer.eval_samples=2", "dataset.heldout_size=1", "wandb.mode=offline"]  # fmt: skip
    proc = _run(TRAIN.format(args=args), tmp_path)
    (summary_path,) = runs.glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["global_step"] == 2, proc.stdout[-2000:]
    assert summary[keys.HELDOUT_BEFORE] is not None and summary[keys.HELDOUT] is not None
    assert summary["train_reward_first"] is not None
    assert "step 2/2" in proc.stdout

    run_dir, ckpt = summary_path.parent, summary_path.parent / "checkpoint-2"
    before, after = load_file(local_qwen_dir / "model.safetensors"), load_file(ckpt / "model.safetensors")
    moved = [k for k in before if not torch.equal(before[k].float(), after[k].float())]
    assert moved, "no parameter changed in two optimizer steps"
    assert (ckpt / "chat_template.jinja").is_file() or "chat_template" in (ckpt / "tokenizer_config.json").read_text()

    args = [f"eval.model={run_dir}", "eval.benchmarks=[gsm8k]", f"eval.data.gsm8k={FIX / 'gsm8k' / 'test.jsonl'}",
            f"output_root={runs}", "eval.max_new_tokens=8", "eval.batch_size=4", "eval.progress=false"]  # fmt: skip
    _run(f"import sys; from sspo_exp.cli import main; sys.exit(main(['eval', *{args!r}]))", tmp_path)
    r = json.loads((run_dir / "reeval" / "hf-auto-8tok" / "gsm8k.json").read_text())  # beside training's eval/
    assert r["n"] == 4 and all(s["prompt"].endswith(GENERATION_PROMPT) for s in r["samples"])


def test_cpu_training_loads_a_bf16_checkpoint_in_float32(local_qwen_dir):
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR
    from sspo_exp.stages.policy import load_policy
    from sspo_exp.train.config import make_plan

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train",
                      overrides=["model=local", "model.name=qwen2.5-mini", f"model.path={local_qwen_dir}"])
    assert cfg.trainer.bf16 is False
    model, _ = load_policy(cfg.model, cfg.dataset, cfg.seed, make_plan(cfg, world_size=1).dtype)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
