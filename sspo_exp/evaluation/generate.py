"""Greedy generation backends: HF ``generate`` (CPU or GPU, batched) and vLLM (GPU, or its CPU build; imported
lazily, one engine per process).

Both return one entry per prompt: the decoded completion (``skip_special_tokens=True``, as TRL decodes rollouts) as
a :class:`Completion` (a ``str`` that also says whether generation stopped at the budget), or a
:class:`GenerationFailure` carrying the reason, so the caller can record the sample as incorrect instead of
dropping it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sspo_exp.evaluation.settings import BACKENDS  # noqa: E402,F401  (one definition)
from sspo_exp.models import ensure_pad_token


@dataclass(frozen=True)
class GenerationFailure:
    reason: str


class Completion(str):
    """A decoded completion that knows whether generation hit ``max_new_tokens`` (no EOS id was generated: HF) or
    stopped for length (vLLM's ``finish_reason == "length"``). A plain ``str`` everywhere else."""

    hit_limit: bool

    def __new__(cls, text: str, hit_limit: bool):
        self = super().__new__(cls, text)
        self.hit_limit = bool(hit_limit)
        return self

    def __reduce__(self):  # pickles with its flag (str's own reduce would call __new__ with the text alone)
        return (Completion, (str(self), self.hit_limit))


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


    ensure_pad_token(tokenizer)
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"

    greedy = greedy_config(model, tokenizer, max_new_tokens)

    stop_ids = torch.tensor(greedy.eos_token_id or [], dtype=torch.long)

    def run(batch: Sequence[str]) -> list[Completion]:
        # add_special_tokens as TRL tokenizes string prompts (build_prompt drops a template BOS the encoder adds)
        enc = tokenizer(list(batch), return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=greedy)
        new = out[:, enc["input_ids"].shape[1] :]
        stopped = torch.isin(new.cpu(), stop_ids).any(dim=1)  # finished rows are padded only after an EOS id
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        return [Completion(t, not s) for t, s in zip(texts, stopped.tolist())]

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


#: The process's vLLM engine and the arguments it was built with (see :func:`vllm_engine`).
_ENGINE: dict[str, Any] = {}


def vllm_engine(model_path: str, *, seed: int = 0, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                dtype: str = "auto", max_model_len: int | None = None):
    """The process's one vLLM ``LLM`` for these arguments, built on first use and reused for every benchmark.

    vLLM sizes its KV cache to ``gpu_memory_utilization`` of the device (on the CPU build: of host memory) when an
    engine starts and frees it only when the engine is torn down, so a second engine in the same process runs out of
    memory; one engine serves every benchmark of ``sspo-exp eval``. Asking for a different model or different
    arguments tears the old engine down first (vLLM's ``cleanup_dist_env_and_memory``), so two never coexist.
    Greedy decoding does not depend on ``seed``, which only names the engine's sampler seed.
    """
    try:
        from vllm import LLM
    except ImportError as e:
        raise RuntimeError("eval.backend=vllm needs vLLM: pip install 'sspo-exp[vllm]' (GPU), or the CPU build "
                           "(`bash .ci/vllm.sh`, README 'vLLM on the CPU')") from e
    key = dict(model=model_path, tensor_parallel_size=tensor_parallel_size, seed=seed, dtype=dtype,
               gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
    if _ENGINE.get("key") != key:
        shutdown_vllm_engine()
        _ENGINE.update(key=key, llm=LLM(**key))
    return _ENGINE["llm"]


def shutdown_vllm_engine() -> None:
    """Tear down the process's vLLM engine (if any) and free its memory."""
    llm = _ENGINE.pop("llm", None)
    _ENGINE.pop("key", None)
    if llm is None:
        return
    import gc

    engine = getattr(llm, "llm_engine", None)
    shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(shutdown):  # stops the engine-core process of vLLM's V1 engine
        shutdown()
    del llm, engine
    gc.collect()
    try:
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
    except ImportError:  # moved or gone in another vLLM version: the gc above did what it could
        pass


def generate_vllm(model_path: str, prompts: Sequence[str], max_new_tokens: int, *, seed: int = 0,
                  tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, dtype: str = "auto",
                  max_model_len: int | None = None) -> list[str | GenerationFailure]:
    """Greedy completions with vLLM (temperature 0) on the process's engine (:func:`vllm_engine`). The prompts are
    already rendered strings; vLLM tokenizes them as TRL's rollouts and ``generate_hf`` do (special tokens added)."""
    from vllm import SamplingParams

    llm = vllm_engine(model_path, seed=seed, tensor_parallel_size=tensor_parallel_size,
                      gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, max_model_len=max_model_len)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
    outputs = llm.generate(list(prompts), params, use_tqdm=False)
    return [Completion(o.outputs[0].text, o.outputs[0].finish_reason == "length") if o.outputs
            else GenerationFailure("vllm returned no output") for o in outputs]  # fmt: skip


def vllm_dtype(requested: str) -> str:
    """The dtype the process's vLLM engine computes in (its model config's, ``auto`` resolved), else ``requested``."""
    llm = _ENGINE.get("llm")
    dtype = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else str(requested)
