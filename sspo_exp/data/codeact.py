"""CodeAct data: CodeActInstruct (training) and M3ToolEval (the ``codeact`` benchmark), both from their own schemas.

Rows are the project's schema (``sspo_exp.data.schema``) plus two columns the CodeAct environment needs:
``checker`` (``math | exact | tests``, see ``sspo_exp.codeact.checkers``) and ``setup`` (Python run in the episode's
sandbox before the first cell, e.g. the benchmark's tool functions; ``""`` for none).

**Training: CodeActInstruct** (Hub ``xingyaoww/code-act``, split ``codeact``, 7,139 rows; or local jsonl/json/
parquet files in its schema). Each row is a *successful* multi-turn trajectory ``{"id", "conversations": [{"role",
"content"}, …]}`` (system, user, assistant, user, …). As an RL prompt: the task is the first user message; the gold
answer is the content of the last ``<solution>`` in the trajectory's final assistant message (CodeActInstruct kept
only trajectories whose solution the MINT environment judged correct, so this is the checked answer). The subset is
read from the row id (``…/math/…``) or, failing that, from the task text:

============================  ================  =======================================================
subset                        checker           why
============================  ================  =======================================================
MATH (reasoning)              ``math``          a final answer; math-verify as in the paper's reward
HotpotQA, WikiTableQuestions  ``mint``          MINT's check: the gold contained in the answer, numbers
                                                within 5 % (``codeact.checkers.mint_match``)
APPS (code generation)        ``tests``         only if the row carries ``test_cases`` / ``input_output``
                                                (stdin/stdout cases); CodeActInstruct's rows do not, so
                                                they are skipped as unverifiable
ALFWorld                      — (skipped)       success needs the ALFWorld simulator, not an answer
============================  ================  =======================================================

By default only MATH and APPS are used (:data:`DEFAULT_SUBSETS`): HotpotQA and WikiTableQuestions tasks rely on an
environment (their search tool, their preloaded table), so they are opt-in (``dataset.subsets``); the table is
bound when ``dataset.wikitable_dir`` points at the WikiTableQuestions release (:mod:`sspo_exp.data.wikitable`), an
offline search over the question's own HotpotQA paragraphs when ``dataset.hotpotqa_file`` points at HotpotQA's
training file (:mod:`sspo_exp.data.hotpotqa_search`).
The rows used per subset are logged.

Skipped subsets are counted and logged (they are not malformed). Malformed rows (no user turn, no ``<solution>``
in the last assistant message) follow the project's policy (``schema.py``): training skips and counts them, with a
:class:`DataError` above 10%.

**Evaluation: M3ToolEval** (``codeact`` benchmark, split ``test``, strict). Upstream defines its 82 tasks as
Python objects (``scripts/eval/m3tooleval/tasks``, ``Task(name, tools, instruction, expected_output)``); the local
format is those fields, one JSON line per task: ``{"name", "instruction", "expected_output", "tools": [{"name",
"description", "fn_signature"}], "tool_code"}`` (``tool_code``: the tools' Python source, run in the sandbox as the
task's setup), optionally ``expected_output_repr`` (the gold's Python ``repr``, which keeps a tuple a tuple) and
``is_single_tool_task``; :mod:`sspo_exp.data.m3tooleval` exports an upstream checkout to it. The row's ``answer``
is ``repr(expected_output)``, so the gold's type reaches M3ToolEval's type-sensitive check. The prompt lists the tools as M3ToolEval does; solved = M3ToolEval's answer check (``exact``).
No Hub copy exists: ``eval.data.codeact=FILE`` (or ``final_eval.data.codeact``) is required; a tiny sample written
for this project ships in ``sspo_exp/resources/codeact/``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sspo_exp.data import register_hub_splits, register_loader
from sspo_exp.data.loaders import DatasetSpec, hub_splits, read_raw
from sspo_exp.data.schema import DataError, first_key, normalize_rows
from sspo_exp.data.hotpotqa_search import HotpotSearch
from sspo_exp.data.wikitable import WikiTables

log = logging.getLogger(__name__)

HUB_ID = "xingyaoww/code-act"
RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "codeact"
SAMPLE_TRAIN = RESOURCES / "codeactinstruct_sample.jsonl"
SAMPLE_TEST = RESOURCES / "m3tooleval_sample.jsonl"
SUBSETS = {"math": "math", "hotpotqa": "mint", "wikitablequestions": "mint", "apps": "tests", "alfworld": None}
_SUBSET_KEYS = (("alfworld", "alfworld"), ("hotpot", "hotpotqa"), ("wikitable", "wikitablequestions"),
                ("wiki_table", "wikitablequestions"), ("tabular", "wikitablequestions"), ("apps", "apps"),
                ("codegen", "apps"), ("math", "math"), ("reasoning", "math"))
#: Subsets trained on when ``dataset.subsets`` is null. HotpotQA and WikiTableQuestions are left out: their tasks
#: need an environment we do not rebuild (a ``wikipedia_search`` tool; the full table preloaded as ``conn``/``df``,
#: of which the task shows only 5 rows), so as prompts they would ask for tools the sandbox does not have. Opt in
#: with ``dataset.subsets`` knowing that (docs/codeact.md).
DEFAULT_SUBSETS = ("math", "apps")
_SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.S | re.I)


def subset_of(row_id: str, task: str) -> str | None:
    """The CodeActInstruct subset of a row: from its id's path segments, else from its task text; None = unknown."""
    rid = row_id.lower()
    for key, subset in _SUBSET_KEYS:
        if key in rid:
            return subset
    t = task.lower()
    if "you are in the middle of a room" in t:
        return "alfworld"
    if "write python code to solve the task" in t or "-----input-----" in t:
        return "apps"
    if "wikipedia_search" in t or "wikipedia search" in t:
        return "hotpotqa"
    if "pd.dataframe" in t or "sqlite3" in t or "table" in t and "sql" in t:
        return "wikitablequestions"
    return None


def _messages(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    conv = first_key(raw, ("conversations", "messages"))[1]
    if hasattr(conv, "tolist"):
        conv = conv.tolist()
    if not isinstance(conv, list):
        raise DataError(f"CodeActInstruct row {raw.get('id')!r}: field 'conversations' must be a list of "
                        f"{{role, content}} messages, got {type(conv).__name__}; check the dataset's columns")
    return [m for m in conv if isinstance(m, Mapping)]


def task_text(raw: Mapping[str, Any]) -> str | None:
    """The first user message (the task, as MINT posed it)."""
    users = [m.get("content") for m in _messages(raw) if m.get("role") in ("user", "human")]
    return users[0] if users else None


def gold_solution(raw: Mapping[str, Any]) -> str | None:
    """The last ``<solution>`` of the trajectory's final assistant message; ``None`` if it has none."""
    assistants = [m.get("content") for m in _messages(raw) if m.get("role") in ("assistant", "gpt")]
    if not assistants or not isinstance(assistants[-1], str):
        return None
    found = _SOLUTION.findall(assistants[-1])
    return found[-1].strip() if found else None


def _test_cases(raw: Mapping[str, Any]) -> str | None:
    key, value = first_key(raw, ("test_cases", "input_output"))
    if value is None:
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping) and "inputs" in value:  # APPS' own {"inputs": [...], "outputs": [...]}
        value = [{"input": i, "output": o} for i, o in zip(value["inputs"], value["outputs"])]
    return json.dumps(value)


def load_codeactinstruct(path: str | None, split: str = "train", hub_id: str | None = None,
                         subsets: tuple[str, ...] | None = None, wikitable_dir: str | None = None,
                         hotpotqa_file: str | None = None) -> list[dict[str, str]]:
    """RL rows of CodeActInstruct's verifiable subsets (see the module docstring); with ``wikitable_dir`` (the
    WikiTableQuestions release) a WikiTableQuestions row's setup binds its table as ``df``/``conn``
    (:mod:`sspo_exp.data.wikitable`), with ``hotpotqa_file`` a HotpotQA row's setup defines an offline
    ``wikipedia_search`` (:mod:`sspo_exp.data.hotpotqa_search`); a row whose environment is not found is skipped."""
    envs = {"wikitablequestions": WikiTables(wikitable_dir) if wikitable_dir else None,
            "hotpotqa": HotpotSearch(hotpotqa_file) if hotpotqa_file else None}
    spec = DatasetSpec("codeact", hub_id or HUB_ID, lambda r: None, lambda r: None, hub_split={"train": "codeact"},
                       columns=("id", "conversations", "messages", "test_cases", "input_output"))
    raw = read_raw(spec, "train", path, hub_id)
    wanted = set(subsets) if subsets else set(DEFAULT_SUBSETS)
    kept, skipped = [], {}
    for i, r in enumerate(raw):
        task = task_text(r) or ""
        subset = subset_of(str(r.get("id") or ""), task)
        checker = SUBSETS.get(subset) if subset else None
        if subset == "apps":
            checker = "tests" if _test_cases(r) else None
        setup = ""
        if envs.get(subset) is not None and subset in wanted:
            setup = envs[subset].setup(task)
            if setup is None:
                skipped[f"{subset} (environment not found)"] = skipped.get(f"{subset} (environment not found)", 0) + 1
                continue
        if subset not in wanted or checker is None:
            skipped[subset or "unknown"] = skipped.get(subset or "unknown", 0) + 1
            continue
        kept.append({**r, "_index": i, "_subset": subset, "_checker": checker, "_setup": setup})
    if skipped:
        log.info("codeact (%s): %d rows of unverifiable or unselected subsets skipped: %s", split, sum(skipped.values()),
                 ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))
    counts = {}
    for r in kept:
        counts[r["_subset"]] = counts.get(r["_subset"], 0) + 1
    log.info("codeact (%s): rows per subset used: %s", split, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if not kept:
        raise DataError(f"codeact: no rows of a verifiable subset ({sorted(wanted)}) in the data (skipped: {skipped})")
    rows = normalize_rows(kept, source="codeact", split=split, question=task_text,
                          answer=lambda r: _test_cases(r) if r["_checker"] == "tests" else gold_solution(r),
                          row_id=lambda r: r.get("id"))
    extra = {str(r.get("id") or f"codeact-{split}-{n}"): r for n, r in enumerate(kept)}
    by_index = {f"codeact-{split}-{n}": r for n, r in enumerate(kept)}
    for row in rows:
        r = extra.get(row["id"]) or by_index[row["id"]]
        row["checker"], row["setup"], row["subset"] = r["_checker"], r["_setup"], r["_subset"]
    return rows


M3TOOL_TOOLS_HEADER = "You have access to the following tools:"
M3TOOL_ANSWER_ONLY = "Answer with only the result (e.g., a single number)."
_M3TOOL_INSTRUCTION = "\n\nInstruction: "


def m3tool_question(instruction: str, tools: list[Mapping[str, Any]]) -> str:
    """M3ToolEval's task text for code-as-action: the tool list (upstream's ``get_prompt`` lines), then the
    instruction and :data:`M3TOOL_ANSWER_ONLY`. Format-neutral: the prompt builder of the action format takes it
    apart again (:func:`split_m3tool_question`)."""
    lines = [M3TOOL_TOOLS_HEADER]
    for k, t in enumerate(tools, 1):
        lines += [f"[{k}] {t.get('name')}: {t.get('description')}", f"    Signature: {t.get('fn_signature')}"]
    return "\n".join(lines) + f"{_M3TOOL_INSTRUCTION}{instruction}\n{M3TOOL_ANSWER_ONLY}"


def split_m3tool_question(question: str) -> tuple[str, str] | None:
    """``(tool_desc, instruction)`` of a :func:`m3tool_question` text (``tool_desc`` exactly upstream's tool list,
    ending with a newline); None for any other question (a CodeActInstruct task). The tool list ends at the first
    blank line followed by ``Instruction: `` (upstream's tool descriptions and signatures hold no such line)."""
    tail = "\n" + M3TOOL_ANSWER_ONLY
    if not (question.startswith(M3TOOL_TOOLS_HEADER + "\n") and question.endswith(tail)):
        return None
    k = question.find(_M3TOOL_INSTRUCTION)
    if k < 0:
        return None
    return question[:k] + "\n", question[k + len(_M3TOOL_INSTRUCTION) : -len(tail)]


def _expected(raw: Mapping[str, Any]) -> str | None:
    """``repr`` of upstream's typed ``expected_output`` (the exporter's ``expected_output_repr`` when present: JSON
    cannot tell a tuple from a list), so its type survives into the checker (``codeact.checkers.typed_gold``):
    M3ToolEval's check treats ``3.5`` and ``"3.5"`` differently."""
    if isinstance(raw.get("expected_output_repr"), str):
        return raw["expected_output_repr"]
    return None if "expected_output" not in raw else repr(raw["expected_output"])


def load_m3tooleval(path: str | None) -> list[dict[str, str]]:
    """The ``codeact`` benchmark's rows from a local M3ToolEval export (strict: no row may be dropped)."""
    if path is None:
        raise DataError(
            "benchmark 'codeact' (M3ToolEval) has no Hub copy: pass eval.data.codeact=FILE (or final_eval.data.codeact) "
            f"with one JSON line per task {{name, instruction, expected_output, tools, tool_code}}; a sample: {SAMPLE_TEST}")
    raw = read_json_rows(Path(path).expanduser())
    for i, r in enumerate(raw):
        if not isinstance(r.get("tools") or [], list):
            raise DataError(f"codeact (test) row {i}: field 'tools' must be a list of {{name, description, fn_signature}}")
        if not isinstance(r.get("tool_code") or "", str):
            raise DataError(f"codeact (test) row {i}: field 'tool_code' must be Python source (a string)")
    rows = normalize_rows(raw, source="codeact", split="test", strict=True,
                          question=lambda r: r.get("instruction") and m3tool_question(r["instruction"], r.get("tools") or []),
                          answer=_expected, row_id=lambda r: r.get("name"))
    for row, r in zip(rows, raw, strict=True):
        row["checker"], row["setup"], row["subset"] = "exact", r.get("tool_code") or "", "m3tooleval"
    single = [r.get("name") for r in raw if r.get("is_single_tool_task")]
    if single:  # upstream then also checks each execution's result; our loop checks solutions only
        log.warning("codeact (test): %d task(s) set is_single_tool_task (e.g. %s); their execution results are not "
                    "checked as answers here (docs/codeact.md)", len(single), single[0])
    return rows


def read_json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one object per line) or ``.json`` (a list) file, values kept as typed (M3ToolEval's
    ``expected_output`` mixes numbers, strings and lists, which an Arrow column cannot hold)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json"))
        if not files:
            raise DataError(f"eval.data.codeact={path}: no .jsonl/.json files in this directory")
        return [r for f in files for r in read_json_rows(f)]
    if not path.is_file():
        raise DataError(f"eval.data.codeact={path}: no such file")
    try:
        if path.suffix == ".json":
            rows = json.loads(path.read_text())
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as e:
        raise DataError(f"eval.data.codeact={path}: not valid JSON ({e}); expected one task object per line") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"eval.data.codeact={path}: expected JSON objects (one per line, or a list of them)")
    return rows


@register_hub_splits("codeact")
def hub_data(cfg: Mapping[str, Any], split: str) -> list:
    """The Hub split :func:`load` reads: CodeActInstruct's ``codeact`` split for ``train`` (M3ToolEval is local)."""
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    if split != "train" or get("path") is not None:
        return []
    return hub_splits(DatasetSpec("codeact", get("hub_id") or HUB_ID, lambda r: None, lambda r: None,
                                  hub_split={"train": "codeact"}), "train")


@register_loader("codeact")
def load(cfg: Mapping[str, Any], split: str) -> list[dict[str, str]]:
    """``train``: CodeActInstruct (``path`` or ``hub_id``, ``subsets``); ``test``: M3ToolEval (``path``)."""
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: getattr(cfg, k, d))
    if split == "test":
        return load_m3tooleval(get("path"))
    if split != "train":
        raise DataError(f"dataset 'codeact' has splits train (CodeActInstruct) and test (M3ToolEval), not {split!r}")
    subsets = get("subsets")
    bad = sorted(set(subsets or []) - {s for s, c in SUBSETS.items() if c})
    if bad:
        raise DataError(f"dataset.subsets has {bad}; choose from {sorted(s for s, c in SUBSETS.items() if c)}")
    return load_codeactinstruct(get("path"), split, get("hub_id"), tuple(subsets) if subsets else None,
                                get("wikitable_dir"), get("hotpotqa_file"))
