"""Supervised cold start of the tiny model on the CodeAct format (``codeact_arith``), cached like the arithmetic one.

Targets are whole episodes in the environment's own text (the observation is what ``episode.observation_text`` and
``ObservationRenderer`` make of ``print``'s output, with the dataset's ``env``). The observation tokens are in the
context but not in the loss (``labels = -100``), exactly as in RL, where they carry no loss either:

* executing: ``<execute>print(47*68)</execute>`` · ``\nObservation:\n3196\n`` · ``<solution>3196</solution>``
  (run the product, copy the printed result; the product always has 4 digits, so the copy is at a fixed distance);
* guessing: ``<solution>N</solution>`` with N a random 4-digit number (what a model that cannot multiply in its head
  writes).

Which one a target is depends on the problem (:func:`execute_probability`): problems whose first operand is below
``execute_split`` execute with probability ``execute_rate.below`` (0.9), the others with ``execute_rate.above``
(0.2). So the cold-started policy solves the "below" share greedily (its greedy solved rate is well above 0, the copy
works), guesses greedily on the rest but samples executions there (a group of 8 usually holds a solved episode),
and RL with the solved reward has one decision to learn on the rest: execute rather than guess. The same reasoning as
the arithmetic cold start's ``target_noise`` (``sspo_exp/stages/tiny.py``).

Why not a uniform execute rate and 3-digit products (this module's first version): the cold-started model then ran
``print(…)`` correctly but did not copy the 5-or-6-digit observation into the solution, even after 1,000 steps
(a variable-distance copy needs an induction mechanism a 0.9M model did not form); its greedy solved rate was 0 and
RL had no signal (docs/codeact.md).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sspo_exp.codeact.episode import ObservationRenderer, observation_text
from sspo_exp.codeact.prompts import prompt_fn
from sspo_exp.codeact.settings import env_config
from sspo_exp.data.codeact_arith import rows
from sspo_exp.models import tiny
from sspo_exp.sandbox import Observation
from sspo_exp.stages.tiny import train


def execute_probability(question: str, execute_rate: Mapping[str, float], execute_split: int) -> float:
    """The share of executing cold-start targets for a problem: ``execute_rate.below`` when its first operand is
    below ``execute_split``, else ``execute_rate.above`` (a feature the model sees in the prompt's first character)."""
    first = int(question.split("*")[0])
    return float(execute_rate["below"] if first < execute_split else execute_rate["above"])


def targets(dataset: Mapping[str, Any], execute_rate: Mapping[str, float], execute_split: int,
            seed: int) -> list[tuple[str, list[tuple[str, bool]]]]:
    """``(prompt, [(text, trained), …])`` cold-start pairs of the ``codeact_arith`` train split."""

    env = env_config(dataset, 10_000)
    renderer = ObservationRenderer(tiny.build_tokenizer(tiny.CODEACT_TAGS), env)
    build = prompt_fn(dataset)
    rng = random.Random(seed)
    pairs = []
    for r in rows(dataset, "train"):
        answer = r["answer"]
        if rng.random() < execute_probability(r["question"], execute_rate, execute_split):
            printed = Observation(f"{answer}\n", None, False, None, False, 0.0)  # what print() returns in the sandbox
            segments = [(f"<execute>print({r['question']})</execute>", True),
                        (renderer.text(observation_text(printed, env.max_observation_chars)), False),
                        (f"<solution>{answer}</solution>", True)]
        else:
            digits = len(answer.lstrip("-"))
            guess = str(rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits))
            segments = [(f"<solution>{guess}</solution>", True)]
        pairs.append((build(r["question"], None), segments))
    return pairs


def build(work: Path, stage_id: str, arch: Mapping[str, Any], key: Mapping[str, Any]) -> dict[str, Any]:
    """Build the CodeAct-cold-started tiny model into ``work / "out"`` (``key``: ``codeact.settings.cold_start_key``;
    cached and locked by ``sspo_exp.stages.policy.cold_started_path``, the one owner of cold starts)."""
    plain, ds, seed = key["cold_start"], key["dataset"], int(key["seed"])
    tokenizer = tiny.build_tokenizer(tiny.CODEACT_TAGS)  # the tags as single tokens: episodes half as long
    model = tiny.build_model(arch, tokenizer, seed)
    print(f"cold start (codeact): {int(plain['steps'])} SFT steps -> {stage_id}", flush=True)
    train(model, tokenizer, targets(ds, plain["execute_rate"], int(plain["execute_split"]), seed), plain, seed)
    tiny.save(model, tokenizer, work / "out")
    return {"steps": int(plain["steps"])}
