"""CodeActInstruct's WikiTableQuestions environment: the task's full table preloaded as ``df`` and ``conn``.

Upstream's processing (``xingyaoww/code-act``, ``scripts/data/interaction/process_WikiTableQuestions.py``) poses each
task with the table's first 5 rows and "Write a SQL query to find the answer to the question: <utterance>." (the
SQLite3 connection ``conn``, table ``data_table``) or "Write a Pandas query …" (the DataFrame ``df``); the table
itself is not in the rows. Given the WikiTableQuestions release (``dataset.wikitable_dir``: its ``data/training.tsv``
and ``csv/`` tree), :class:`WikiTables` finds a task's table by its utterance and gives the sandbox setup that
binds it: ``df = pandas.read_csv(the table)`` (upstream's reader: the ``.csv``, else the ``.tsv`` beside it) and an
in-memory SQLite ``conn`` holding it as ``data_table``. How MINT itself loaded the table into SQLite (index column,
types) was not read; ``df.to_sql("data_table", conn, index=False)`` is our choice. The sandbox needs pandas
(``env.sandbox.site_packages: true``, the ``codeact`` default).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sspo_exp.data.schema import DataError

_QUESTION = re.compile(r"find the answer to the question: (.*?)\.?\n", re.S)
SETUP = """import io as _io, sqlite3 as _sqlite3
import pandas as _pd
df = _pd.read_csv(_io.StringIO({text!r}), sep={sep!r})
conn = _sqlite3.connect(":memory:")
df.to_sql("data_table", conn, index=False)
del _io, _sqlite3, _pd
"""


def utterance(task: str) -> str | None:
    """The WikiTableQuestions question inside a CodeActInstruct task text (None if the text is not in that form)."""
    m = _QUESTION.search(task)
    return m.group(1).strip() if m else None


class WikiTables:
    """Tables of a WikiTableQuestions release, found by a task's question (``data/*.tsv``: id, utterance, context)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        files = sorted((self.root / "data").glob("*.tsv")) if (self.root / "data").is_dir() else []
        if not files:
            raise DataError(f"dataset.wikitable_dir={self.root}: expected the WikiTableQuestions release "
                            "(data/training.tsv and csv/)")
        self.context: dict[str, str] = {}
        for f in files:
            with f.open(newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                    if row.get("utterance") and row.get("context"):
                        self.context.setdefault(row["utterance"].strip().rstrip("."), row["context"])

    def setup(self, task: str) -> str | None:
        """The sandbox setup binding the task's table as ``df`` and ``conn``; None if its table is not found."""
        question = utterance(task)
        context = self.context.get(question.rstrip(".")) if question else None
        if context is None:
            return None
        path = self.root / context
        if path.is_file():
            return SETUP.format(text=path.read_text(), sep=",")
        tsv = path.with_suffix(".tsv")
        return SETUP.format(text=tsv.read_text(), sep="\t") if tsv.is_file() else None
