"""Greedy generation backends: HF ``generate`` (CPU or GPU, batched) and vLLM (GPU; imported lazily).

Both return one entry per prompt: the decoded completion (``skip_special_tokens=True``, as TRL decodes rollouts),
or a :class:`GenerationFailure` carrying the reason, so the caller can record the sample as incorrect instead of
dropping it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sspo_exp.evaluation.settings import BACKENDS  # noqa: E402,F401  (one definition)


@dataclass(frozen=True)
class GenerationFailure:
    reason: str


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="sample")


def greedy_config(model: Any, tokenizer: Any, max_new_tokens: int):
    """Plain greedy decoding: only the model's stop/pad/bos ids are kept from its ``generation_config``.

    ``generate`` fills every field left unset with the model's ``generation_config``, so a checkpoint's own
    defaults would otherwise apply on top of greedy decoding (Qwen2.5-Instruct ships ``repetition_penalty: 1.05``;
    others set ``num_beams``, ``no_repeat_ngram_size``, ...). Stops at every eos id the model declares (Qwen:
    ``<|im_end|>`` and ``<|endoftext|>``) and the tokenizer's, as vLLM and TRL's rollouts do.
    """
    from transformers import GenerationConfig

    own = model.generation_config
    eos = own.eos_token_id if own is not None else None
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.insert(0, tokenizer.eos_token_id)
    return GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=eos or None,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=getattr(own, "bos_token_id", None))


def generate_hf(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
                progress: bool = False, desc: str = "generate") -> list[str | GenerationFailure]:
    """Greedy completions with ``model.generate`` in batches (left padding). A batch that raises is retried one
    prompt at a time; a prompt that still fails becomes a :class:`GenerationFailure`."""
    import torch

    from sspo_exp.models import ensure_pad_token

    ensure_pad_token(tokenizer)
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"

    greedy = greedy_config(model, tokenizer, max_new_tokens)

    def run(batch: Sequence[str]) -> list[str]:
        # add_special_tokens as TRL tokenizes string prompts (build_prompt drops a template BOS the encoder adds)
        enc = tokenizer(list(batch), return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=greedy)
        return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    results: list[str | GenerationFailure] = []
    own_config, model.generation_config = model.generation_config, greedy
    try:
        with _progress(len(prompts), desc, progress) as bar:
            for start in range(0, len(prompts), batch_size):
                batch = prompts[start : start + batch_size]
                try:
                    results += run(batch)
                except Exception:
                    for prompt in batch:
                        try:
                            results += run([prompt])
                        except Exception as e:  # recorded per sample, never dropped
                            results.append(GenerationFailure(f"generation error: {type(e).__name__}: {str(e)[:200]}"))
                bar.update(len(batch))
    finally:
        model.generation_config = own_config
        tokenizer.padding_side = side
        model.train(was_training)
    return results


def generate_vllm(model_path: str, prompts: Sequence[str], max_new_tokens: int, *, seed: int = 0,
                  tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, dtype: str = "auto",
                  max_model_len: int | None = None) -> list[str | GenerationFailure]:
    """Greedy completions with vLLM (temperature 0). The prompts are already rendered strings."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise RuntimeError("eval.backend=vllm needs vLLM: pip install 'sspo-exp[vllm]' (GPU only)") from e
    llm = LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, seed=seed, dtype=dtype,
              gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
    outputs = llm.generate(list(prompts), params)
    return [o.outputs[0].text if o.outputs else GenerationFailure("vllm returned no output") for o in outputs]
