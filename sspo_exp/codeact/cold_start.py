"""Supervised cold start of the tiny model on the CodeAct format (``codeact_arith``), cached like the arithmetic one.

Targets are episodes in the environment's own text (the observation rendered by ``episode.ObservationRenderer``
with the dataset's ``env``), trained on the policy's turns only (observations are context, ``labels = -100``):

* with probability ``execute_rate``: ``<execute>print(482*739)</execute>`` · ``\\nObservation:\\n356198\\n`` ·
  ``<solution>356198</solution>`` (run the product, copy the printed result);
* otherwise a direct guess: ``<solution>N</solution>`` with N a random number of the answer's length (what a
  model that cannot multiply in its head writes).

**Deliberately a minority of executions** (default ``execute_rate: 0.3``): the cold-started policy samples
``<execute>`` about 30% of the time (a group of 8 usually holds solved and unsolved episodes), but its greedy first
action is the direct guess, so its greedy solved rate is near 0. RL with the solved reward has one decision to
repair (execute rather than guess), which a CPU budget can do; the control with shuffled advantages cannot.
The same reasoning as the arithmetic cold start's ``target_noise`` (``sspo_exp/models/cold_start.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sspo_exp.models import tiny
from sspo_exp.models.cold_start import cache_root, train

FIELDS = ("steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay", "execute_rate")


def targets(dataset: Mapping[str, Any], execute_rate: float, seed: int) -> list[tuple[str, list[tuple[str, bool]]]]:
    """``(prompt, [(text, trained), …])`` cold-start pairs of the ``codeact_arith`` train split."""
    from sspo_exp.codeact.episode import ObservationRenderer
    from sspo_exp.codeact.prompts import prompt_fn
    from sspo_exp.codeact.settings import env_config
    from sspo_exp.data.codeact_arith import rows

    renderer = ObservationRenderer(tiny.build_tokenizer(tiny.CODEACT_TAGS), env_config(dataset, 10_000))
    build = prompt_fn(dataset)
    rng = random.Random(seed)
    pairs = []
    for r in rows(dataset, "train"):
        answer = r["answer"]
        if rng.random() < execute_rate:
            segments = [(f"<execute>print({r['question']})</execute>", True), (renderer.text(answer), False),
                        (f"<solution>{answer}</solution>", True)]
        else:
            digits = len(answer.lstrip("-"))
            guess = str(rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits))
            segments = [(f"<solution>{guess}</solution>", True)]
        pairs.append((build(r["question"], None), segments))
    return pairs


def cold_started(arch: Mapping[str, Any], cold_start: Mapping[str, Any], dataset: Mapping[str, Any], seed: int) -> Path:
    """Directory of the CodeAct-cold-started tiny model (trained and cached on a miss)."""
    missing = [f for f in FIELDS if f not in cold_start]
    if missing:
        raise ValueError(f"model.cold_start is missing {missing}; the codeact_arith cold start needs {list(FIELDS)}")
    rate = float(cold_start["execute_rate"])
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"model.cold_start.execute_rate must be in [0, 1], got {cold_start['execute_rate']!r}")
    from omegaconf import OmegaConf

    ds = OmegaConf.to_container(dataset, resolve=True) if OmegaConf.is_config(dataset) else dict(dataset)
    payload = {"arch": {f: arch[f] for f in tiny.ARCH_FIELDS}, "cold_start": {f: cold_start[f] for f in FIELDS},
               "dataset": ds, "seed": int(seed), "format": "codeact-2"}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_root() / f"tiny-codeact-{key}"
    if (path / "config.json").exists():
        return path
    tokenizer = tiny.build_tokenizer(tiny.CODEACT_TAGS)  # the tags as single tokens: episodes half as long
    model = tiny.build_model(arch, tokenizer, seed)
    print(f"cold start (codeact): {int(cold_start['steps'])} SFT steps, cached at {path}", flush=True)
    train(model, tokenizer, targets(ds, rate, seed), cold_start, seed)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tiny.save(model, tokenizer, tmp)
    if path.exists():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(path)
    return path
