"""One policy turn of the CodeAct format, parsed robustly, and the format reward of an episode.

A turn is generated until the first ``</execute>`` or ``</solution>`` (or EOS / the token budget), so it holds at
most one closing tag. :func:`parse_turn` takes the **first** opening tag (``<execute>`` or ``<solution>``; tag names
case-insensitive, spaces inside the brackets allowed):

* ``<execute>CODE</execute>`` → an execution; ``<solution>TEXT</solution>`` → the final answer (ends the episode);
* an opening tag without its closing tag (the turn hit EOS or the budget) → the same action with the text up to the
  end of the turn, marked ``closed=False`` (the code still runs: CodeAct's environment runs what it gets);
* a closing tag of the other kind, a second opening tag or a blank body → ``well_formed=False``;
* no opening tag → ``kind="none"`` (the episode ends unsolved: nothing to run and no answer).

The format reward adapts the paper's four levels (1 / 0.5 / 0.25 / 0, ``sspo_exp.rewards``) to this format:

* **1.0**: the episode ended with a closed, non-blank ``<solution>`` and every turn was well formed;
* **0.5**: it ended with a solution, but some turn was malformed (unclosed tag, stray/duplicate tag, blank body);
* **0.25**: no solution, but at least one well-formed ``<execute>`` turn;
* **0**: otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

EXECUTE, SOLUTION = "execute", "solution"
#: Generation of one turn stops right after the first of these.
STOP_STRINGS = ("</execute>", "</solution>")
_OPEN = re.compile(r"<\s*(execute|solution)\s*>", re.I)
_ANY_TAG = re.compile(r"<\s*/?\s*(execute|solution)\s*>", re.I)


@dataclass(frozen=True)
class Action:
    """What one turn asks for: ``kind`` in ``execute | solution | none``; ``content`` the code or answer text."""

    kind: str
    content: str = ""
    closed: bool = False  #: the closing tag was written
    well_formed: bool = False  #: exactly one open/close pair of one kind, non-blank body, nothing else tagged


def parse_turn(text: str) -> Action:
    """The action of one policy turn (see the module docstring). Never raises; linear time."""
    m = _OPEN.search(text)
    if m is None:
        return Action("none")
    kind = m.group(1).lower()
    rest = text[m.end() :]
    close = re.search(rf"<\s*/\s*{kind}\s*>", rest, re.I)
    body = rest[: close.start()] if close else rest
    tail = rest[close.end() :] if close else ""
    stray = _ANY_TAG.search(body) is not None or _ANY_TAG.search(tail) is not None
    content = body.strip("\n") if kind == EXECUTE else body.strip()
    well_formed = bool(close) and not stray and bool(body.strip())
    return Action(kind, content, closed=bool(close), well_formed=well_formed)


def format_score(actions: Sequence[Action]) -> float:
    """The episode's format reward from its turns' actions (levels in the module docstring)."""
    if not actions:
        return 0.0
    last = actions[-1]
    if last.kind == SOLUTION and last.closed and last.content:
        return 1.0 if all(a.well_formed for a in actions) else 0.5
    return 0.25 if any(a.kind == EXECUTE and a.well_formed for a in actions) else 0.0
