"""Training through TRL 1.16's ``rollout_func``: multi-turn CodeAct episodes as GRPO completions.

``GRPOTrainer(rollout_func=f)`` calls ``f(prompts, trainer)`` with this process's prompts (the dataset's
``prompt`` strings, each already repeated ``num_generations`` times by TRL's sampler) and expects
``prompt_ids``, ``completion_ids`` and ``logprobs`` back; any other key is forwarded to the reward functions as a
per-sample column, and ``env_mask`` becomes TRL's ``tool_mask``: the loss mask is ``completion_mask * tool_mask``
(TRL ``_generate_and_score_completions``), the logged completion lengths count only mask-1 tokens, and our
``SSPOTrainer._compute_loss`` multiplies it in too. ``logprobs`` is ``None``: π_old is recomputed by TRL's forward
pass over the same ids (as for HF rollouts), so sampling and training log-probs agree.

Who samples the turns: the HF model (:class:`HFPolicy`, ``trainer.rollout=hf``) or TRL's colocated vLLM engine
(:class:`VLLMPolicy`, ``trainer.rollout=vllm_colocate``), at the trainer's temperature / top-p / top-k. With vLLM,
TRL 1.16's ``_generate`` pushes the training weights into its engine (``vllm_generation.sync_weights``, once per
optimizer step) *before* it calls the rollout function, so every episode batch is sampled by the current policy;
the rollout itself syncs nothing. The episodes, masks and rewards are the same whichever engine samples.

Episode ``i`` of the batch is episode ``i`` of the returned lists; its solution, checker verdict and statistics
go to the reward functions through the extra columns ``codeact_solution`` and ``codeact_format``. Per-batch
statistics are appended to ``trainer._metrics[mode]`` as ``codeact/<stat>`` (logged with TRL's own metrics).

What a sequence is. The completion ``y_i`` of episode i is all of its turns (policy and observation tokens); the
objectives see ``mask = completion_mask * env_mask``, so ``|y_i|`` is the number of **policy** tokens over all
turns, the token-mean aggregation averages over those, and a sequence-level ratio (GSPO/SSPO: ``exp(mean of the
token log-ratios)``) is the geometric mean over the policy tokens of all turns: one weight per episode, the
observation tokens carrying none. The reward (one per episode) is likewise the episode's.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from sspo_exp import keys
from sspo_exp.codeact.checkers import check
from sspo_exp.codeact.episode import EnvConfig, run_episodes
from sspo_exp.codeact.format import STOP_STRINGS
from sspo_exp.codeact.policy import HFPolicy, VLLMPolicy


def make_rollout_func(env: EnvConfig, setups: Mapping[str, str] | None = None, policy_factory=None,
                      golds: Mapping[str, tuple[str, str]] | None = None):
    """A TRL ``rollout_func``; ``setups`` maps a prompt string to its task's sandbox setup code, ``golds`` to its
    ``(answer, checker)`` (the judge of ``env.retry``: without one, the first solution ends the episode);
    ``policy_factory(model, tokenizer, args)`` builds the turn sampler (default: :func:`trainer_policy`)."""
    setups, golds = dict(setups or {}), dict(golds or {})

    def judge(prompt):
        if prompt not in golds:
            return None
        answer, checker = golds[prompt]
        return lambda solution: check(solution, answer, checker, env.sandbox, env.answer_check)[0]

    def solved(prompt, solution) -> bool | None:
        """The reward's verdict, by the judge's own check (the episode's sandbox config and answer check)."""
        verdict = judge(prompt) if isinstance(prompt, str) else None
        return None if verdict is None else bool(verdict(solution))

    def rollout_func(prompts: Sequence[Any], trainer: Any) -> dict[str, Any]:
        tok = trainer.processing_class
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] if isinstance(p, str) else p for p in prompts]
        if policy_factory is not None:
            policy = policy_factory(trainer.accelerator.unwrap_model(trainer.model), tok, trainer.args)
        else:
            policy = trainer_policy(trainer, env.actions.stop_strings)
        episodes = run_episodes(prompt_ids, policy, tok, env, [setups.get(p) for p in prompts],
                                judges=[judge(p) if isinstance(p, str) else None for p in prompts])
        mode = "train" if trainer.model.training else "eval"
        log_stats(trainer._metrics[mode], [e.stats() for e in episodes])
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": None,
            "env_mask": [e.env_mask for e in episodes],
            "codeact_solution": [e.solution for e in episodes],
            "codeact_format": [e.format for e in episodes],
            "codeact_answer_check": [env.answer_check] * len(episodes),
            # the verdict the reward uses, checked as the in-episode judge checks (env.sandbox: code rows run under
            # the episode's own sandbox settings, not the defaults); None where the prompt has no gold here
            "codeact_solved": [solved(p, e.solution) for p, e in zip(prompts, episodes, strict=True)],
        }

    return rollout_func


def trainer_policy(trainer: Any, stop_strings: Sequence[str] = STOP_STRINGS):
    """The turn sampler of a TRL trainer, at its temperature / top-p / top-k (so π_old, recomputed by TRL's forward
    pass, is the distribution sampled from), stopping at ``stop_strings`` (the environment's action format's; the
    rollout passes them, the tags' by default):
    :class:`VLLMPolicy` on TRL's colocated engine when the trainer uses vLLM, else :class:`HFPolicy` on the unwrapped
    training model."""
    args, tok = trainer.args, trainer.processing_class
    sampling = dict(temperature=args.temperature, top_p=args.top_p, top_k=getattr(args, "top_k", None),
                    stop_strings=stop_strings)
    if not getattr(args, "use_vllm", False):
        return HFPolicy(trainer.accelerator.unwrap_model(trainer.model), tok, **sampling)
    gen = trainer.vllm_generation
    if gen.mode != "colocate" or gen.tensor_parallel_size != 1 or gen.enable_sleep_mode:
        raise ValueError(f"CodeAct episodes sample with a colocated vLLM engine on one device (vllm_mode=colocate, "
                         f"tensor_parallel_size=1, no sleep mode); got mode={gen.mode}, "
                         f"tensor_parallel_size={gen.tensor_parallel_size}, sleep={gen.enable_sleep_mode}")
    return VLLMPolicy(gen.llm, tok, **sampling)


def log_stats(metrics: Mapping[str, list], stats: Sequence[Mapping[str, float]]) -> None:
    """Batch means of the per-episode statistics as ``codeact/<key>`` (one value per rollout batch)."""
    for key in stats[0] if stats else ():
        metrics[keys.codeact_key(key)].append(statistics.fmean(s[key] for s in stats))


def solved_reward(prompts, completions, answer, checker, codeact_solution, **kwargs) -> list[float]:
    """``r_answer``: 1 if the episode's last answer passes the task's checker (``exact`` rows under the
    environment's ``answer_check``), else 0."""
    modes = kwargs.get("codeact_answer_check") or ["upstream"] * len(answer)
    verdicts = kwargs.get("codeact_solved") or [None] * len(answer)
    return [float(v) if v is not None else float(check(s, a, c, answer_check=m)[0])
            for s, a, c, m, v in zip(codeact_solution, answer, checker, modes, verdicts, strict=True)]


def format_reward(prompts, completions, codeact_format, **kwargs) -> list[float]:
    """``r_format``: the episode's CodeAct format level (``sspo_exp.codeact.format``)."""
    return [float(f) for f in codeact_format]


#: ``r = r_answer + r_format`` for CodeAct episodes (the paper's reward structure, this format).
REWARD_FUNCS = (solved_reward, format_reward)


def trainer_kwargs(env: EnvConfig | None, train_dataset: Any) -> dict[str, Any]:
    """``SSPOTrainer`` arguments that switch a run to CodeAct episodes (``{}`` when ``env`` is None, the plan's for
    a non-CodeAct dataset): the reward functions and the rollout function in environment ``env``.
    ``train_dataset`` must carry the ``checker`` and ``setup`` columns (rows of ``sspo_exp.data.codeact``)."""
    if env is None:
        return {}
    setups, golds = {}, {}
    if "setup" in train_dataset.column_names:
        setups = {p: s for p, s in zip(train_dataset["prompt"], train_dataset["setup"]) if s}
    if env.retry and {"answer", "checker"} <= set(train_dataset.column_names):
        golds = dict(zip(train_dataset["prompt"], zip(train_dataset["answer"], train_dataset["checker"])))
    return {"reward_funcs": list(REWARD_FUNCS), "rollout_func": make_rollout_func(env, setups, golds=golds)}
