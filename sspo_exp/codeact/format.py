"""The action formats of a CodeAct policy turn (``env.action_format``) and the format reward of an episode.

An :class:`ActionFormat` owns everything that depends on how the policy writes its actions: where a turn's sampling
stops, how a turn is parsed into an :class:`Action`, the instruction of the prompt, and the messages the environment
answers with. Two are registered in :data:`ACTION_FORMATS`:

* ``upstream`` (the ``codeact`` benchmark's default, conf/dataset/codeact.yaml): M3ToolEval's own format, as its
  authors' harness runs it (:mod:`sspo_exp.codeact.upstream`): code between ``Action:`` and ``End Action``, the answer
  as ``Answer: …``; a turn stops at ``End Action`` (an answer at EOS / the chat template's end of turn); the reply is
  post-processed and parsed as upstream does; upstream's prompt, invalid and retry messages and extra reminders.
* ``tags`` (``codeact_arith``, and the neutral value of a config written before the key existed): CodeActInstruct's
  tags, for models trained on its trajectories (e.g. CodeActAgent) and for the tiny model. A turn stops after the
  first ``</execute>`` or ``</solution>``; :func:`parse_turn` takes the **first** opening tag (tag names
  case-insensitive, spaces inside the brackets allowed): ``<execute>CODE</execute>`` → an execution,
  ``<solution>TEXT</solution>`` → the answer; an opening tag without its closing tag (EOS or the budget) → the same
  action with the text up to the end of the turn, ``closed=False`` (the code still runs); a closing tag of the other
  kind, a second opening tag or a blank body → ``well_formed=False``; no opening tag → ``kind="none"``.

The format reward adapts the paper's four levels (1 / 0.5 / 0.25 / 0, ``sspo_exp.rewards``) to either format:

* **1.0**: the episode ended with a closed, non-blank answer and every turn was well formed;
* **0.5**: it ended with an answer, but some turn was malformed;
* **0.25**: no answer, but at least one well-formed execution;
* **0**: otherwise.

Well formed, ``tags``: exactly one open/close pair of one kind, a non-blank body, no other tag. ``upstream``: exactly
one ``Action:``/``Answer:`` marker in the turn as sampled, a non-blank body, and for an action its ``End Action``
(an answer has no end marker: it is always closed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sspo_exp.codeact import upstream
from sspo_exp.data.codeact import split_m3tool_question

EXECUTE, SOLUTION = "execute", "solution"
#: The tags' messages: upstream's retry message, verbatim, and its invalid-turn message in our tags.
RETRY_MESSAGE = upstream.RETRY_MESSAGE
INVALID_MESSAGE = "Invalid generation. Your output should contain either <execute> or <solution>."
_OPEN = re.compile(r"<\s*(execute|solution)\s*>", re.I)
_ANY_TAG = re.compile(r"<\s*/?\s*(execute|solution)\s*>", re.I)
_MARKER = re.compile(r"Answer:|Action:")


@dataclass(frozen=True)
class Action:
    """What one turn asks for: ``kind`` in ``execute | solution | none``; ``content`` the code or answer text."""

    kind: str
    content: str = ""
    closed: bool = False  #: the end of the action was written (``</execute>``, ``</solution>``, ``End Action``)
    well_formed: bool = False  #: see the module docstring, per format
    reminder: str = ""  #: upstream's ``extra_info``: appended to the environment's answer to this turn
    reply: str = ""  #: ``kind="none"``: the message the environment answers the turn with (the format's invalid one)


@dataclass(frozen=True)
class ActionFormat:
    """One way of writing actions (module docstring). ``prompt_text(question, max_turns, retry)`` is the user
    message (before any chat template); ``fixed_texts(max_turns, retry)`` every fixed text of the format, which the
    evaluation profile's prompt id hashes."""

    name: str
    stop_strings: tuple[str, ...]
    parse: Callable[[str], Action]
    retry_message: str
    reminder_prefix: str
    prompt_text: Callable[[str, int, bool], str]
    fixed_texts: Callable[[int, bool], tuple[str, ...]]

    def with_reminder(self, text: str, action: Action) -> str:
        """``text`` (an observation or the retry message) with the turn's reminder appended, as upstream does."""
        return text + self.reminder_prefix + action.reminder if action.reminder else text


# ------------------------------------------------------------------------------------------------ tags
TAG_INSTRUCTION = (
    "You are solving a task with the help of an interactive Python interpreter. At each turn, think step by step, "
    "then either run Python code by enclosing it in <execute> </execute> (you will see its output; variables persist "
    "between turns) or give the final answer by enclosing it in <solution> </solution>. You have {max_turns} turns; "
)
TAG_ENDINGS = {False: "the first <solution> ends the task.",
               True: "if your <solution> is wrong you will be told so and may try again."}


def instruction(max_turns: int, retry: bool) -> str:
    """The tags' instruction for an environment with ``max_turns`` turns and (no) retries."""
    return TAG_INSTRUCTION.format(max_turns=max_turns) + TAG_ENDINGS[bool(retry)]


def parse_turn(text: str) -> Action:
    """The action of one policy turn in tags (see the module docstring). Never raises; linear time."""
    m = _OPEN.search(text)
    if m is None:
        return Action("none", reply=INVALID_MESSAGE)
    kind = m.group(1).lower()
    rest = text[m.end() :]
    close = re.search(rf"<\s*/\s*{kind}\s*>", rest, re.I)
    body = rest[: close.start()] if close else rest
    tail = rest[close.end() :] if close else ""
    stray = _ANY_TAG.search(body) is not None or _ANY_TAG.search(tail) is not None
    content = body.strip("\n") if kind == EXECUTE else body.strip()
    well_formed = bool(close) and not stray and bool(body.strip())
    return Action(kind, content, closed=bool(close), well_formed=well_formed)


def _tags_prompt(question: str, max_turns: int, retry: bool) -> str:
    task = question if question.lstrip().startswith("Task:") else f"Task:\n{question}"
    return f"{instruction(max_turns, retry)}\n\n{task}"


# ------------------------------------------------------------------------------------------------ upstream
def parse_upstream(text: str) -> Action:
    """The action of one policy turn in M3ToolEval's format: upstream's ``postprocess_fn`` then its
    ``parse_generation`` decide the action (:mod:`sspo_exp.codeact.upstream`); well-formedness is read off the turn
    as sampled (module docstring)."""
    parsed = upstream.parse_generation(upstream.postprocess(text))
    if parsed["type"] == "invalid":
        return Action("none", reply=parsed["content"])
    one_marker = len(_MARKER.findall(text)) == 1
    reminder = parsed.get("extra_info") or ""
    content = parsed["content"]
    if parsed["type"] == "answer":
        return Action(SOLUTION, content, True, one_marker and bool(content.strip()), reminder)
    closed = upstream.END_ACTION in text[text.find("Action:") :]
    return Action(EXECUTE, content, closed, one_marker and closed and bool(content.strip()), reminder)


def _upstream_prompt(question: str, max_turns: int, retry: bool) -> str:
    """Upstream's ``get_prompt``: an M3ToolEval row's tool list and instruction; any other task (CodeActInstruct's)
    with the tool list left out and its ``Task:`` header dropped (upstream's prompt names the task ``Instruction:``)."""
    parts = split_m3tool_question(question)
    if parts is not None:
        return upstream.prompt(parts[1], parts[0])
    task = question.strip()
    task = task[len("Task:") :].strip() if task.startswith("Task:") else task
    return upstream.prompt(task, None)


TAGS = ActionFormat("tags", ("</execute>", "</solution>"), parse_turn, RETRY_MESSAGE, "", _tags_prompt,
                    lambda turns, retry: (instruction(turns, retry), RETRY_MESSAGE, INVALID_MESSAGE))
UPSTREAM = ActionFormat(
    "upstream", (upstream.END_ACTION,), parse_upstream, upstream.RETRY_MESSAGE, upstream.REMINDER, _upstream_prompt,
    lambda turns, retry: (upstream.CODE_AS_ACTION + upstream.START + upstream.CLOSING, upstream.RETRY_MESSAGE,
                          upstream.REMINDER, upstream.INVALID_BOTH, upstream.INVALID_NONE, upstream.MORE_ANSWERS,
                          upstream.MORE_ACTIONS, upstream.END_ACTION))
#: ``env.action_format`` values.
ACTION_FORMATS: dict[str, ActionFormat] = {f.name: f for f in (UPSTREAM, TAGS)}
#: The tags' stop strings (kept for callers that predate the formats; the environment passes its format's).
STOP_STRINGS = TAGS.stop_strings


def format_score(actions: Sequence[Action]) -> float:
    """The episode's format reward from its turns' actions (levels in the module docstring)."""
    if not actions:
        return 0.0
    last = actions[-1]
    if last.kind == SOLUTION and last.closed and last.content:
        return 1.0 if all(a.well_formed for a in actions) else 0.5
    return 0.25 if any(a.kind == EXECUTE and a.well_formed for a in actions) else 0.0
