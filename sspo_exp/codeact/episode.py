"""The multi-turn CodeAct loop over token ids: policy turns (loss mask 1) and observation turns (loss mask 0).

An episode's completion is ``turn_1 obs_1 turn_2 obs_2 … turn_k [eos]``: the concatenated **token ids** of what
the policy sampled and of the rendered observations. Nothing is re-tokenized, so the trainer's forward pass over
``prompt + completion`` scores exactly the sampled tokens in exactly the context they were sampled in.
``env_mask`` is 1 on policy tokens and 0 on observation tokens (and on the EOS appended after a solution,
which the policy did not sample); TRL multiplies it into the loss mask, so every objective's ``1/|y_i|`` and
sequence-level ratio count only the policy's own tokens (``docs/codeact.md``).

One sandbox per episode from a bounded pool (:class:`sspo_exp.sandbox.SandboxPool`, ``sandbox.pool_size`` alive at
once), opened at the episode's first execution (an episode that never executes costs no sandbox) after running
the task's ``setup`` code (e.g. M3ToolEval's tool functions), released when the episode ends. The episodes of a
call run in waves of ``pool_size`` (an episode keeps its sandbox for all its turns), a wave's cells in parallel
(one per CPU core), all in the pool's memory budget (``pool_memory_mb``).
Sandbox failures never raise: a killed sandbox's observation says so.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sspo_exp.codeact.checkers import ANSWER_CHECKS
from sspo_exp.codeact.format import ACTION_FORMATS, EXECUTE, SOLUTION, TAGS, Action, ActionFormat, format_score
from sspo_exp.sandbox import SandboxConfig, SandboxPool

log = logging.getLogger(__name__)

#: ``policy(contexts, budgets) -> new token ids per context``: samples one turn per context (token-id lists),
#: at most ``budgets[i]`` tokens, stopping after the action format's stop strings or EOS.
Policy = Callable[[Sequence[Sequence[int]], Sequence[int]], list[list[int]]]
#: ``judge(solution) -> solved``: the task's checker bound to its gold (retries need the verdict inside the episode).
Judge = Callable[[str], bool]

BUDGETS = ("per_turn", "episode")
EMPTY_OUTPUT = "[Executed Successfully with No Output, Did you forget to print?]"  #: M3ToolEval's REPL, verbatim
TRUNCATED = "...\n[Output Truncated]"  #: M3ToolEval's REPL appends this to an output cut at 2,000 characters


@dataclass(frozen=True)
class EnvConfig:
    """The environment's knobs (``conf/dataset/codeact.yaml`` ``env`` block, documented there). The defaults are
    M3ToolEval's protocol as its authors run it (``docs/codeact.md``, "upstream vs ours"), except ``action_format``,
    whose default is ``tags``, the format of every config written before the key existed (a run's saved ``env``
    block without it was trained in tags); the ``codeact`` benchmark's yaml sets ``upstream``."""

    max_turns: int = 10  #: policy turns per episode (M3ToolEval: ``--n_turns_limit 10``)
    #: the token budget: new tokens per policy turn (``budget=per_turn``, M3ToolEval's ``max_tokens=512``;
    #: observations outside it) or policy + observation tokens of the whole episode (``budget=episode``)
    max_completion_tokens: int = 512
    budget: str = "per_turn"
    max_episode_tokens: int | None = None  #: per_turn only: a cap on all completion tokens (None: no cap)
    max_observation_chars: int = 2000  #: an observation is cut here, with M3ToolEval's "...[Output Truncated]"
    #: a wrong solution is answered with the format's retry message and a turn without action with its invalid
    #: message; the episode goes on until solved or out of turns (needs a judge per episode)
    retry: bool = True
    #: how the policy writes actions: upstream (M3ToolEval's Action: … End Action / Answer:) | tags (<execute>,
    #: <solution>): ``codeact.format.ACTION_FORMATS``
    action_format: str = TAGS.name
    answer_check: str = "upstream"  #: how ``exact`` rows are judged: upstream | strict (``codeact.checkers``)
    observation_template: str = "\nObservation:\n{output}\n"  #: text of an observation turn (no chat template)
    observation_prefix: str = ""  #: with a chat template: the user turn is prefix + output (M3ToolEval: none)
    sandbox: Any = None  #: a ``SandboxConfig`` (None: the sandbox's defaults)
    #: ``model.chat_template_kwargs``: observation turns are rendered with them as the first prompt is (a Qwen3 run
    #: without thinking must not reopen thinking after each observation); not an ``env`` key of a dataset block
    chat_template_kwargs: dict | None = None

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_completion_tokens", "max_observation_chars", "max_episode_tokens"):
            value = getattr(self, name)
            if value is None and name == "max_episode_tokens":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"codeact env.{name}={value!r}: must be an integer >= 1")
        for name, allowed in (("budget", BUDGETS), ("answer_check", ANSWER_CHECKS),
                              ("action_format", tuple(ACTION_FORMATS))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"codeact env.{name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        if not isinstance(self.retry, bool):
            raise ValueError(f"codeact env.retry={self.retry!r}: must be true or false")
        if "{output}" not in self.observation_template:
            raise ValueError(f"codeact env.observation_template={self.observation_template!r}: must contain '{{output}}'")

    @property
    def actions(self) -> ActionFormat:
        """The :class:`~sspo_exp.codeact.format.ActionFormat` of ``action_format``."""
        return ACTION_FORMATS[self.action_format]

    def turn_budget(self, used: int) -> int:
        """New tokens the next policy turn may sample after ``used`` completion tokens."""
        room = self.room(used)
        return min(self.max_completion_tokens, room) if self.budget == "per_turn" else room

    def room(self, used: int) -> int:
        """Completion tokens (policy and observation) the episode may still add; large when uncapped."""
        cap = self.max_completion_tokens if self.budget == "episode" else self.max_episode_tokens
        return cap - used if cap is not None else 1 << 30


@dataclass
class Episode:
    """One rollout: its ids, masks, turns and statistics (``stats`` keys are logged as ``codeact/<key>``)."""

    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    observations: list[str] = field(default_factory=list)
    solution: str | None = None  #: the last answer given (with retries: the last attempt)
    end: str = ""  #: solution | no_action | max_turns | budget | eos
    executions: int = 0
    errors: int = 0  #: cells that raised (a traceback) or hit a limit
    timeouts: int = 0  #: cells that hit the CPU or wall-time limit
    kills: int = 0  #: cells whose sandbox died (timeout, exit, protocol)
    truncated_outputs: int = 0
    wrong_answers: int = 0  #: solutions the judge rejected and the episode went on after (retries)
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


_OUT_PROMPT = re.compile(r"Out\[\d+\]:")


def observation_text(obs: Any, max_chars: int) -> str:
    """What the policy sees of one cell, as M3ToolEval's code-as-action environment renders it: the output then
    the error; :data:`EMPTY_OUTPUT` for none; cut to ``max_chars`` + :data:`TRUNCATED`; then its
    ``execute_action`` post-processing: ``Out[n]:`` removed and the text replaced by ``str(literal_eval(text))``
    when it parses (``"[1,2]\n"`` → ``[1, 2]``), else kept."""
    parts = [obs.output.rstrip("\n")] if obs.output else []
    if obs.error:
        parts.append(obs.error.rstrip("\n"))
    text = "\n".join(parts) if parts else EMPTY_OUTPUT
    if len(text) > max_chars:
        text = text[:max_chars] + TRUNCATED
    text = _OUT_PROMPT.sub("", text)
    try:
        return str(ast.literal_eval(text.strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class ObservationRenderer:
    """Token ids of an observation turn.

    Without a chat template: ``observation_template`` (CodeAct's ``Observation:`` block) appended inline. With one:
    the template's own boundary (end of the assistant turn, a user turn holding ``observation_prefix`` + the
    output — M3ToolEval's user turn is the bare output —, the start of the next assistant turn), taken as the text
    a two-turn render adds after the assistant's content.
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
            msgs + [{"role": "user", "content": f"{self.cfg.observation_prefix}{observation}"}], tokenize=False,
            add_generation_prompt=True, **dict(self.cfg.chat_template_kwargs or {}))
        return full[full.index(mark) + len(mark) :]

    def ids(self, observation: str) -> list[int]:
        return self.tokenizer(self.text(observation), add_special_tokens=False)["input_ids"]


class _Loop:
    """The state of one batch of episodes across turns (:func:`run_episodes`)."""

    def __init__(self, episodes, tokenizer, cfg: EnvConfig, judges):
        self.episodes, self.tokenizer, self.cfg, self.judges = episodes, tokenizer, cfg, judges
        self.renderer = ObservationRenderer(tokenizer, cfg)
        self.eos = tokenizer.eos_token_id

    def policy_turn(self, i: int, ids: Sequence[int], last_turn: bool) -> str | None:
        """Append turn ``ids`` of episode ``i``; return ``"execute"`` (run its code), ``"reply"`` (answer it with an
        environment message: a retry or an invalid turn) or None (the episode ended)."""
        ep, cfg = self.episodes[i], self.cfg
        ids = list(ids)[: cfg.turn_budget(len(ep.completion_ids))]
        ended_eos = bool(ids) and ids[-1] == self.eos
        ep.completion_ids += ids
        ep.env_mask += [1] * len(ids)
        action = cfg.actions.parse(self.tokenizer.decode(ids, skip_special_tokens=True))
        ep.actions.append(action)
        if action.kind == EXECUTE:
            return EXECUTE
        if action.kind == SOLUTION:
            ep.solution, ep.end = action.content, SOLUTION
            judge = self.judges[i]
            if cfg.retry and judge is not None and not last_turn and not judge(action.content):
                ep.wrong_answers += 1
                ep.end = ""
                return "reply"
            if not ended_eos and self.eos is not None and cfg.room(len(ep.completion_ids)) > 0:
                ep.completion_ids.append(self.eos)  # terminates the sequence for TRL; not sampled: mask 0
                ep.env_mask.append(0)
            return None
        if cfg.retry and not last_turn:
            return "reply"
        ep.end = "eos" if ended_eos else "no_action"
        return None

    def reply(self, action: Action) -> str:
        """The environment's answer to a turn it does not execute: the format's retry message (with the turn's
        reminder) after a wrong answer, the format's invalid message after a turn without a usable action."""
        if action.kind == SOLUTION:
            return self.cfg.actions.with_reminder(self.cfg.actions.retry_message, action)
        return action.reply

    def observe(self, i: int, text: str, shown: bool = True) -> bool:
        """Append observation ``text`` to episode ``i``; False when the budget ended the episode."""
        ep = self.episodes[i]
        obs_ids = self.renderer.ids(text)
        if ep.completion_ids and ep.completion_ids[-1] == self.eos and obs_ids[:1] == [self.eos]:
            obs_ids = obs_ids[1:]  # the turn ended with the template's end-of-turn token, which the boundary opens with
        obs_ids = obs_ids[: max(self.cfg.room(len(ep.completion_ids)), 0)]
        if shown:
            ep.observations.append(text)
        ep.completion_ids += obs_ids
        ep.env_mask += [0] * len(obs_ids)
        if self.cfg.room(len(ep.completion_ids)) <= 0:
            ep.end = "budget"
            return False
        return True


def run_episodes(prompt_ids: Sequence[Sequence[int]], policy: Policy, tokenizer: Any, cfg: EnvConfig,
                 setups: Sequence[str | None] | None = None,
                 judges: Sequence[Judge | None] | None = None) -> list[Episode]:
    """Run one episode per prompt, in waves of ``sandbox.pool_size`` episodes: a wave's turns are batched across
    its still-active episodes, its cells run in parallel threads, each episode in its own pooled sandbox.
    ``judges[i]`` checks episode ``i``'s solutions inside the episode (``cfg.retry``: a wrong one is answered with
    the format's retry message); without a judge the first solution ends the episode."""
    sc = cfg.sandbox if cfg.sandbox is not None else SandboxConfig()
    setups = list(setups) if setups is not None else [None] * len(prompt_ids)
    judges = list(judges) if judges is not None else [None] * len(prompt_ids)
    episodes: list[Episode] = []
    with SandboxPool(sc) as pool, ThreadPoolExecutor(max_workers=pool.cells) as workers:
        for lo in range(0, len(prompt_ids), pool.size):
            wave = slice(lo, lo + pool.size)
            episodes += _run_wave(prompt_ids[wave], setups[wave], judges[wave], policy, tokenizer, cfg, pool, workers)
    return episodes


def _run_wave(prompt_ids: Sequence[Sequence[int]], setups: list[str | None], judges: list[Judge | None],
              policy: Policy, tokenizer: Any, cfg: EnvConfig, pool: SandboxPool,
              workers: ThreadPoolExecutor) -> list[Episode]:
    episodes = [Episode(list(p)) for p in prompt_ids]
    loop = _Loop(episodes, tokenizer, cfg, judges)
    boxes: dict[int, Any] = {}
    active = list(range(len(episodes)))
    try:
        for turn in range(cfg.max_turns):
            if not active:
                break
            budgets = [cfg.turn_budget(len(episodes[i].completion_ids)) for i in active]
            new = policy([episodes[i].prompt_ids + episodes[i].completion_ids for i in active], budgets)
            last = turn == cfg.max_turns - 1
            steps = {i: loop.policy_turn(i, ids, last) for i, ids in zip(active, new, strict=True)}
            to_run = [i for i in active if steps[i] == EXECUTE]
            results = dict(zip(to_run, workers.map(lambda i: _execute(episodes[i], boxes, i, cfg, setups[i], pool),
                                                   to_run)))  # fmt: skip
            still = []
            for i in active:
                action = episodes[i].actions[-1]
                if steps[i] == EXECUTE and loop.observe(i, cfg.actions.with_reminder(results[i], action)):
                    still.append(i)
                elif steps[i] == "reply" and loop.observe(i, loop.reply(action), shown=False):
                    still.append(i)
            active = still
        for i in active:
            episodes[i].end = episodes[i].end or "max_turns"
    finally:
        for box in boxes.values():
            pool.release(box)
    return episodes


def _execute(ep: Episode, boxes: dict, key: int, cfg: EnvConfig, setup: str | None, pool: SandboxPool) -> str:
    """Run the last action's code in the episode's sandbox; update the statistics; return the observation text."""
    ep.executions += 1
    if ep.sandbox_error:
        ep.errors += 1
        return ep.sandbox_error
    if key not in boxes:
        try:
            boxes[key] = pool.open(setup)
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
