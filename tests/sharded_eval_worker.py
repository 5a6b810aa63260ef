"""One process of tests/test_sharded_eval.py (run under ``torchrun`` with gloo): greedy evaluation of the local
Qwen2 model, full and then sharded with FSDP2 (``fully_shard`` per decoder layer and at the root, what accelerate's
``TRANSFORMER_BASED_WRAP`` does with ``fsdp_version: 2``); each rank writes its completions to ``<out>/rank<k>.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from sspo_exp.data.prompts import build_prompt
from sspo_exp.evaluation.core import evaluate


def main(model_dir: str, rows_path: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    rows = json.loads(Path(rows_path).read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)

    def completions():
        result = evaluate(model, tokenizer, rows, max_new_tokens=12, batch_size=4, prompt_fn=build_prompt)
        assert not [r.error for r in result.records if r.error.startswith("generation error")], result.records
        return [r.completion for r in result.records]

    full = completions()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shard_shapes = [(list(p.to_local().shape), list(p.shape)) for p in model.parameters()]
    sharded = completions()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"full": full, "sharded": sharded, "shards": shard_shapes}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
