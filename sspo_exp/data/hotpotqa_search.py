"""CodeActInstruct's HotpotQA environment offline: ``wikipedia_search`` over the question's own HotpotQA paragraphs.

CodeActInstruct's HotpotQA tasks (``xingyaoww/code-act``, ``scripts/data/interaction/process_hotpotQA.py``: the
question of a "hard" HotpotQA training example) were solved in MINT with a ``wikipedia_search(query)`` tool that
queries Wikipedia online. Offline, each HotpotQA example carries its own ``context``: the two gold paragraphs and
eight distractors, as ``[title, [sentences…]]``. Given HotpotQA's training file (``dataset.hotpotqa_file``,
``hotpot_train_v1.1.json``), :class:`HotpotSearch` finds a task's example by its question and gives the sandbox
setup defining ``wikipedia_search(query)`` over those ten paragraphs: the paragraph whose title equals the query
(case-insensitive), else the one sharing most words with it; ``"No page found."`` when nothing overlaps. This is
our approximation (a closed set of ten pages, not Wikipedia, not MINT's tool output format).
"""

from __future__ import annotations

import json
from pathlib import Path

from sspo_exp.data.schema import DataError

SETUP = '''def wikipedia_search(query: str) -> str:
    """Search the (offline) Wikipedia for a page and return its text."""
    import re
    pages = {pages!r}
    q = str(query).strip().lower()
    for title, text in pages:
        if title.lower() == q:
            return f"Page: {{title}}\\nSummary: {{text}}"
    words = set(re.findall(r"\\w+", q))
    best = max(pages, key=lambda p: len(words & set(re.findall(r"\\w+", p[0].lower() + " " + p[1].lower()))),
               default=None)
    if best is None or not words & set(re.findall(r"\\w+", best[0].lower() + " " + best[1].lower())):
        return "No page found."
    return f"Page: {{best[0]}}\\nSummary: {{best[1]}}"
'''


def _key(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?. ")


class HotpotSearch:
    """HotpotQA examples by question (its training file: a JSON list of ``{question, context, …}``)."""

    def __init__(self, path: str | Path):
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text())
            assert isinstance(data, list)
        except (OSError, ValueError, AssertionError) as e:
            raise DataError(f"dataset.hotpotqa_file={path}: expected HotpotQA's training JSON (a list of "
                            f"{{question, context}} examples): {type(e).__name__}") from e
        self.pages = {_key(ex["question"]): [(t, " ".join(s)) for t, s in ex.get("context") or []]
                      for ex in data if isinstance(ex, dict) and ex.get("question")}

    def setup(self, task: str) -> str | None:
        """The setup defining ``wikipedia_search`` for the task one of whose lines is a HotpotQA question (None: not
        found)."""
        for line in task.splitlines():
            pages = self.pages.get(_key(line.strip().removeprefix("Task:")))
            if pages is not None:
                return SETUP.format(pages=pages)
        return None
