"""The multi-turn CodeAct loop over token ids: policy turns (loss mask 1) and observation turns (loss mask 0).

An episode's completion is ``turn_1 obs_1 turn_2 obs_2 … turn_k [eos]``: the concatenated **token ids** of what
the policy sampled and of the rendered observations. Nothing is re-tokenized, so the trainer's forward pass over
``prompt + completion`` scores exactly the sampled tokens in exactly the context they were sampled in.
``env_mask`` is 1 on policy tokens and 0 on observation tokens (and on the EOS appended after a solution,
which the policy did not sample); TRL multiplies it into the loss mask, so every objective's ``1/|y_i|`` and
sequence-level ratio count only the policy's own tokens (``docs/codeact.md``).

One sandbox per episode (:class:`sspo_exp.sandbox.Sandbox`), opened at the episode's first ``<execute>`` (an
episode that never executes costs no sandbox) after running the task's ``setup`` code (e.g. M3ToolEval's tool
functions), closed when the episode ends. Sandbox failures never raise: a killed sandbox's observation says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sspo_exp.codeact.format import EXECUTE, SOLUTION, Action, format_score, parse_turn
from sspo_exp.sandbox import Sandbox, SandboxConfig

log = logging.getLogger(__name__)

#: ``policy(contexts, budgets) -> new token ids per context``: samples one turn per context (token-id lists),
#: at most ``budgets[i]`` tokens, stopping after ``</execute>`` / ``</solution>`` or EOS.
Policy = Callable[[Sequence[Sequence[int]], Sequence[int]], list[list[int]]]


@dataclass(frozen=True)
class EnvConfig:
    """The environment's knobs (``conf/dataset/codeact.yaml`` ``env`` block, documented there)."""

    max_turns: int = 5  #: policy turns per episode (CodeAct's MINT setting: 5 interactions)
    max_completion_tokens: int = 512  #: policy + observation tokens per episode (TRL's max_completion_length)
    max_observation_chars: int = 1000  #: an observation longer than this is cut (and says so)
    observation_template: str = "\nObservation:\n{output}\n"  #: text of an observation turn (no chat template)
    sandbox: Any = None  #: a ``SandboxConfig`` (None: the sandbox's defaults)
    #: ``model.chat_template_kwargs``: observation turns are rendered with them as the first prompt is (a Qwen3 run
    #: without thinking must not reopen thinking after each observation); not an ``env`` key of a dataset block
    chat_template_kwargs: dict | None = None

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_completion_tokens", "max_observation_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"codeact env.{name}={value!r}: must be an integer >= 1")
        if "{output}" not in self.observation_template:
            raise ValueError(f"codeact env.observation_template={self.observation_template!r}: must contain '{{output}}'")


@dataclass
class Episode:
    """One rollout: its ids, masks, turns and statistics (``stats`` keys are logged as ``codeact/<key>``)."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    solution: str | None = None
    end: str = ""  #: solution | no_action | max_turns | budget | eos
    executions: int = 0
    errors: int = 0  #: cells that raised (a traceback) or hit a limit
    timeouts: int = 0  #: cells that hit the CPU or wall-time limit
    kills: int = 0  #: cells whose sandbox died (timeout, exit, protocol)
    truncated_outputs: int = 0
    sandbox_error: str = ""  #: why the sandbox could not be started (then every execute observes this)

    @property
    def turns(self) -> int:
        return len(self.actions)

    @property
    def format(self) -> float:
        return format_score(self.actions)

    def stats(self) -> dict[str, float]:
        return {"turns": self.turns, "executions": self.executions, "errors": self.errors, "timeouts": self.timeouts,
                "sandbox_kills": self.kills, "truncated_outputs": self.truncated_outputs,
                "ended_with_solution": float(self.end == SOLUTION),
                "policy_tokens": sum(self.env_mask), "observation_tokens": len(self.env_mask) - sum(self.env_mask)}


def observation_text(obs: Any, max_chars: int) -> str:
    """What the policy sees of one cell: output, then the error/limit note; cut to ``max_chars``."""
    parts = [obs.output.rstrip("\n")] if obs.output else []
    if obs.error:
        parts.append(obs.error.rstrip("\n"))
    text = "\n".join(parts) if parts else "[executed, no output]"
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[observation cut at {max_chars} characters]"
    return text


class ObservationRenderer:
    """Token ids of an observation turn.

    Without a chat template: ``observation_template`` (CodeAct's ``Observation:`` block) appended inline. With one:
    the template's own boundary (end of the assistant turn, a user turn holding ``Observation:\\n…``, the start of
    the next assistant turn), taken as the text a two-turn render adds after the assistant's content.
    """

    def __init__(self, tokenizer: Any, cfg: EnvConfig):
        self.tokenizer, self.cfg = tokenizer, cfg
        self._chat = bool(getattr(tokenizer, "chat_template", None))

    def text(self, observation: str) -> str:
        if not self._chat:
            return self.cfg.observation_template.format(output=observation)
        mark = "\x00ASSISTANT\x00"
        msgs = [{"role": "user", "content": "task"}, {"role": "assistant", "content": mark}]
        full = self.tokenizer.apply_chat_template(
            msgs + [{"role": "user", "content": f"Observation:\n{observation}"}], tokenize=False,
            add_generation_prompt=True, **dict(self.cfg.chat_template_kwargs or {}))
        return full[full.index(mark) + len(mark) :]

    def ids(self, observation: str) -> list[int]:
        return self.tokenizer(self.text(observation), add_special_tokens=False)["input_ids"]


def _open_sandbox(cfg: EnvConfig, setup: str | None):
    sc = cfg.sandbox if cfg.sandbox is not None else SandboxConfig.from_mapping({})
    box = Sandbox.from_config(sc)
    box.start()
    if setup:
        obs = box.run(setup)
        if obs.error or obs.killed:
            box.close()
            raise RuntimeError(f"the task's setup code failed in the sandbox: {(obs.error or obs.killed)[:300]}")
    return box


def run_episodes(prompt_ids: Sequence[Sequence[int]], policy: Policy, tokenizer: Any, cfg: EnvConfig,
                 setups: Sequence[str | None] | None = None, workers: int = 4) -> list[Episode]:
    """Run one episode per prompt, all turns batched across the still-active episodes; sandboxes are opened
    lazily and run a turn's cells in parallel threads (each sandbox is its own process)."""
    episodes = [Episode(list(p)) for p in prompt_ids]
    setups = list(setups) if setups is not None else [None] * len(episodes)
    boxes: dict[int, Any] = {}
    renderer = ObservationRenderer(tokenizer, cfg)
    eos = tokenizer.eos_token_id
    active = list(range(len(episodes)))
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for _turn in range(cfg.max_turns):
                if not active:
                    break
                budgets = [cfg.max_completion_tokens - len(episodes[i].completion_ids) for i in active]
                new = policy([episodes[i].prompt_ids + episodes[i].completion_ids for i in active], budgets)
                to_run = []
                for i, ids in zip(active, new, strict=True):
                    ep = episodes[i]
                    ids = list(ids)[: cfg.max_completion_tokens - len(ep.completion_ids)]
                    ended_eos = bool(ids) and ids[-1] == eos
                    ep.completion_ids += ids
                    ep.env_mask += [1] * len(ids)
                    action = parse_turn(tokenizer.decode(ids, skip_special_tokens=True))
                    ep.actions.append(action)
                    if action.kind == SOLUTION:
                        ep.solution, ep.end = action.content, SOLUTION
                        if not ended_eos and eos is not None and len(ep.completion_ids) < cfg.max_completion_tokens:
                            ep.completion_ids.append(eos)  # terminates the sequence for TRL; not sampled: mask 0
                            ep.env_mask.append(0)
                    elif action.kind == EXECUTE:
                        to_run.append(i)
                    else:
                        ep.end = "eos" if ended_eos else "no_action"
                results = list(pool.map(lambda i: _execute(episodes[i], boxes, i, cfg, setups[i]), to_run))
                still = []
                for i, text in zip(to_run, results):
                    ep = episodes[i]
                    room = cfg.max_completion_tokens - len(ep.completion_ids)
                    obs_ids = renderer.ids(text)[: max(room, 0)]
                    ep.observations.append(text)
                    ep.completion_ids += obs_ids
                    ep.env_mask += [0] * len(obs_ids)
                    if len(ep.completion_ids) >= cfg.max_completion_tokens:
                        ep.end = "budget"
                    else:
                        still.append(i)
                active = still
            for i in active:
                episodes[i].end = episodes[i].end or "max_turns"
    finally:
        for box in boxes.values():
            box.close()
    return episodes


def _execute(ep: Episode, boxes: dict, key: int, cfg: EnvConfig, setup: str | None) -> str:
    """Run the last action's code in the episode's sandbox; update the statistics; return the observation text."""
    ep.executions += 1
    if ep.sandbox_error:
        ep.errors += 1
        return ep.sandbox_error
    if key not in boxes:
        try:
            boxes[key] = _open_sandbox(cfg, setup)
        except Exception as e:  # SandboxUnavailable, a failed setup: the episode continues, unsolvable by code
            log.warning("codeact: sandbox could not start: %s", e)
            ep.sandbox_error = f"[sandbox unavailable: {type(e).__name__}: {str(e)[:200]}]"
            ep.errors += 1
            return ep.sandbox_error
    was_alive = boxes[key].alive
    obs = boxes[key].run(ep.actions[-1].content)
    ep.errors += bool(obs.error or obs.killed)
    ep.timeouts += bool(obs.timed_out)
    ep.kills += bool(was_alive and obs.killed)  # the kill itself; later cells of a dead sandbox are errors only
    ep.truncated_outputs += bool(obs.truncated)
    return observation_text(obs, cfg.max_observation_chars)
