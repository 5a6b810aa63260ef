"""One loader per dataset, all through ``datasets.load_dataset``, each normalised to the row schema.

Where the data comes from (same for every dataset):

* ``path=None``: the Hugging Face Hub (``hub_id``, ``hub_config``, ``hub_split``). With ``HF_HUB_OFFLINE=1`` only
  the local HF cache is tried, which fails in about a second with a :class:`DataError` saying how to provide data.
* ``path=FILE``: a ``.jsonl`` / ``.json`` / ``.parquet`` file in the dataset's own (Hub) schema.
* ``path=DIR``: the files of that directory (recursively) whose name contains the split (``*test*.parquet``); if
  none does, every data file in it. A snapshot of the Hub repo works as is (``huggingface-cli download
  --repo-type dataset openai/gsm8k --local-dir DIR``): the ``hub_config`` subdirectory (``main/``) is used if present. A directory written by ``Dataset.save_to_disk`` is read with
  ``load_from_disk``.

Columns (the Hub schema of each dataset, which local files must keep):

========== =============================== ============================== ========================================
name       Hub default                     question                       answer
========== =============================== ============================== ========================================
gsm8k      openai/gsm8k (main)             ``question``                   ``answer``: text ending ``#### N``;
                                                                          ``N`` with commas stripped
deepmath   zwhe99/DeepMath-103K            ``question``                   ``final_answer``
dapo_math  BytedTsinghua-SIA/DAPO-Math-17k ``prompt`` (user message; the  ``reward_model.ground_truth``
                                           DAPO instruction is removed)   (rows deduplicated by question)
math500    HuggingFaceH4/MATH-500          ``problem``                    ``answer``
aime24     HuggingFaceH4/aime_2024         ``problem`` | ``question``     ``answer`` | ``final_answer``
aime25     opencompass/AIME2025 (I + II)   ``problem`` | ``question``     ``answer`` | ``final_answer``
========== =============================== ============================== ========================================

Column names are matched exactly first, then case-insensitively (``Problem``/``Answer`` copies load too).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sspo_exp.data.schema import DataError, first_key, normalize_rows

log = logging.getLogger(__name__)

DATA_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


# ------------------------------------------------------------------------------------- answer parsers
def gsm8k_answer(text: Any) -> Any:
    """GSM8K's final answer: the text after the last ``####``, commas removed (``"... #### 1,234"`` → ``"1234"``).
    A bare number (a pre-extracted copy) is accepted as is; anything else raises ValueError."""
    if not isinstance(text, str):
        return text
    if "####" in text:
        final = text.rsplit("####", 1)[1].strip().replace(",", "")
        if not final:
            raise ValueError("empty after '####'")
        return final
    bare = text.strip().replace(",", "")
    if bare.lstrip("-").replace(".", "", 1).isdigit():
        return bare
    raise ValueError("has no '#### N' final answer")


def gsm8k_solution(text: Any) -> Any:
    """GSM8K's worked solution: the text before the last ``####`` with the calculator annotations ``<<48/2=24>>``
    removed (``"20 * 0.25 = $<<20*0.25=5>>5."`` → ``"20 * 0.25 = $5."``); None when there is no ``####``."""
    if not isinstance(text, str) or "####" not in text:
        return None
    return re.sub(r"<<[^<>]*>>", "", text.rsplit("####", 1)[0]).strip() or None


DAPO_PREFIX_END = "\n\n"  # "Solve the following math problem step by step. The last line ... \n\n<problem>"
DAPO_SUFFIX = "\n\nRemember to put your answer on its own line after"


def dapo_question(raw: Mapping[str, Any]) -> Any:
    """The problem text of a DAPO-Math-17k row: the user message of ``prompt`` without DAPO's own answer-format
    instruction (we ask for ``<answer>`` tags instead). Flattened copies with ``problem``/``question`` work too."""
    _, prompt = first_key(raw, ("prompt",))
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, Mapping) and m.get("role", "user") == "user"]
        prompt = users[-1] if users else None
    if isinstance(prompt, str):
        if prompt.startswith("Solve the following math problem") and DAPO_PREFIX_END in prompt:
            prompt = prompt.split(DAPO_PREFIX_END, 1)[1]
        return prompt.split(DAPO_SUFFIX, 1)[0]
    return first_key(raw, ("problem", "question"))[1] if prompt is None else prompt


def dapo_answer(raw: Mapping[str, Any]) -> Any:
    _, rm = first_key(raw, ("reward_model",))
    if isinstance(rm, Mapping) and rm.get("ground_truth") is not None:
        return rm["ground_truth"]
    return first_key(raw, ("solution", "answer", "final_answer"))[1]


def dapo_id(raw: Mapping[str, Any]) -> Any:
    _, extra = first_key(raw, ("extra_info",))
    return extra.get("index") if isinstance(extra, Mapping) else None


def _column(*keys: str, parse: Callable[[Any], Any] | None = None) -> Callable[[Mapping[str, Any]], Any]:
    def get(raw: Mapping[str, Any]) -> Any:
        value = first_key(raw, keys)[1]
        return parse(value) if parse and value is not None else value

    get.__doc__ = " | ".join(keys)
    return get


# ---------------------------------------------------------------------------------------- the specs
@dataclass(frozen=True)
class DatasetSpec:
    """How to find and read one dataset. ``hub_split`` maps our split name to the Hub's."""

    name: str
    hub_id: str
    question: Callable[[Mapping[str, Any]], Any]
    answer: Callable[[Mapping[str, Any]], Any]
    row_id: Callable[[Mapping[str, Any]], Any] | None = None
    hub_config: str | Sequence[str] | None = None
    hub_split: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    columns: tuple[str, ...] = ()  # raw columns the getters read; others are dropped before rows reach Python
    dedup: bool = False  # drop rows whose question repeats (DAPO-Math-17k ships each problem many times)
    benchmark: bool = False  # evaluated as a benchmark: strict validation (no row may be dropped)
    #: the worked reference solution (text, no final-answer line), for cold-start demonstrations; None = the
    #: dataset ships none we read (DeepMath's R1 traces are ~5 GB and far longer than a 512-token completion)
    solution: Callable[[Mapping[str, Any]], Any] | None = None


_Q_OR = _column("problem", "question")
_A_OR = _column("answer", "final_answer")
_AIME_COLUMNS = ("problem", "question", "answer", "final_answer", "id")
SPECS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec("gsm8k", "openai/gsm8k", _column("question"), _column("answer", parse=gsm8k_answer),
                    hub_config="main", columns=("question", "answer"),
                    solution=_column("answer", parse=gsm8k_solution)),
        # DeepMath's three r1_solution_* columns are ~5 GB in total: never materialised
        DatasetSpec("deepmath", "zwhe99/DeepMath-103K", _column("question", "problem"),
                    _column("final_answer", "answer"), hub_split={"train": "train"},
                    columns=("question", "problem", "final_answer", "answer")),
        DatasetSpec("dapo_math", "BytedTsinghua-SIA/DAPO-Math-17k", dapo_question, dapo_answer, dapo_id,
                    hub_split={"train": "train"}, dedup=True,
                    columns=("prompt", "problem", "question", "reward_model", "solution", "answer", "final_answer",
                             "extra_info")),
        DatasetSpec("math500", "HuggingFaceH4/MATH-500", _column("problem"), _column("answer"),
                    _column("unique_id"), hub_split={"test": "test"}, benchmark=True,
                    columns=("problem", "answer", "unique_id")),
        DatasetSpec("aime24", "HuggingFaceH4/aime_2024", _Q_OR, _A_OR, _column("id"),
                    hub_split={"test": "train"}, benchmark=True, columns=_AIME_COLUMNS),
        DatasetSpec("aime25", "opencompass/AIME2025", _Q_OR, _A_OR, _column("id"),
                    hub_config=("AIME2025-I", "AIME2025-II"), hub_split={"test": "test"}, benchmark=True,
                    columns=_AIME_COLUMNS),
    )
}


# ----------------------------------------------------------------------------------------- reading
def _local_files(path: Path, split: str) -> tuple[str, list[str]]:
    if path.is_file():
        if path.suffix not in DATA_SUFFIXES:
            raise DataError(f"dataset.path={path}: unsupported file type {path.suffix!r}; use one of {sorted(DATA_SUFFIXES)}")
        return DATA_SUFFIXES[path.suffix], [str(path)]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
    named = [p for p in files if split in p.name]
    files = named or files
    kinds = {DATA_SUFFIXES[p.suffix] for p in files}
    if not files:
        raise DataError(f"dataset.path={path}: no {'/'.join(sorted(DATA_SUFFIXES))} files in this directory")
    if len(kinds) > 1:
        raise DataError(f"dataset.path={path}: mixes json and parquet files for split {split!r}; keep one format")
    return kinds.pop(), [str(p) for p in files]


def read_raw(spec: DatasetSpec, split: str, path: str | os.PathLike | None = None, hub_id: str | None = None,
             hub_config: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Raw rows of one split, from local files (``path``) or the Hub."""
    import datasets

    if split not in spec.hub_split:
        raise DataError(f"dataset {spec.name!r} has no split {split!r}; valid: {sorted(spec.hub_split)}")
    if path is not None:
        p = Path(path).expanduser()
        config = hub_config if hub_config is not None else spec.hub_config
        if isinstance(config, str) and (p / config).is_dir():  # a Hub snapshot: gsm8k/{main,socratic}/
            p = p / config
        if not p.exists():
            raise DataError(f"dataset {spec.name!r}: data path {p} does not exist (set by dataset.path or "
                            f"eval.data.{spec.name})")
        if p.is_dir() and ((p / "state.json").exists() or (p / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[spec.hub_split[split]] if spec.hub_split[split] in ds else ds[split]
            return _materialise(ds, spec)
        kind, files = _local_files(p, split)
        try:
            ds = datasets.load_dataset(kind, data_files=files, split="train")
        except Exception as e:
            raise DataError(f"dataset.path={p}: could not read {kind} files {files[:3]}: {type(e).__name__}: {e}") from e
        return _materialise(ds, spec)

    rows: list[dict[str, Any]] = []
    for hub in hub_splits(spec, split, hub_id, hub_config):
        hub_id, config = hub.repo, hub.config
        try:
            ds = hub.load()
        except Exception as e:
            offline = datasets.config.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE") == "1"
            raise DataError(
                f"dataset {spec.name!r}: cannot load {hub_id!r}{f' ({config})' if config else ''} split "
                f"{spec.hub_split[split]!r} from the Hub{' (HF_HUB_OFFLINE is set)' if offline else ''}: "
                f"{type(e).__name__}: {str(e)[:200]}. Provide the data locally: dataset.path=FILE_OR_DIR for training "
                f"(dataset.components.<name>.path for a mixture), eval.data.{spec.name}=FILE_OR_DIR for evaluation "
                f"(jsonl/json/parquet in the Hub schema, see sspo_exp/data/loaders.py); or fetch {hub_id!r} once into the HF "
                f"cache where the Hub is reachable (`sspo-exp prefetch <train overrides | sweep file>`, or unset "
                f"HF_HUB_OFFLINE)."
            ) from e
        rows += _materialise(ds, spec)
    return rows


# ------------------------------------------------------------------------------------- the Hub and its cache
@dataclass(frozen=True)
class HubSplit:
    """One split of one Hub dataset config, exactly as :func:`read_raw` loads it (``datasets.load_dataset(repo,
    config, split=split)``; no revision: the Hub's default branch)."""

    repo: str
    config: str | None
    split: str

    def __str__(self) -> str:
        return f"{self.repo}{f' ({self.config})' if self.config else ''} split {self.split}"

    def load(self):
        """The split through ``datasets.load_dataset`` (a download fills the HF cache; offline, the cache is read)."""
        import datasets

        return datasets.load_dataset(self.repo, self.config, split=self.split)


def hub_splits(spec: DatasetSpec, split: str, hub_id: str | None = None,
               hub_config: str | Sequence[str] | None = None) -> list[HubSplit]:
    """The Hub splits our ``split`` of ``spec`` is read from (one per Hub config: AIME 2025 has two)."""
    if split not in spec.hub_split:
        raise DataError(f"dataset {spec.name!r} has no split {split!r}; valid: {sorted(spec.hub_split)}")
    configs = hub_config if hub_config is not None else spec.hub_config
    configs = [configs] if configs is None or isinstance(configs, str) else list(configs)
    return [HubSplit(hub_id or spec.hub_id, config, spec.hub_split[split]) for config in configs]


def _snake(name: str) -> str:
    """``datasets.naming.camelcase_to_snakecase`` (copied so that the cache check needs no ``datasets`` import, ~2 s;
    tests/test_prefetch.py fails if the two differ)."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


def hub_split_cached(hub: HubSplit, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The prepared copy of ``hub`` that ``datasets`` reads with ``HF_HUB_OFFLINE=1`` (its cache
    ``<HF_DATASETS_CACHE>/<org>___<name>/<config>/<version>/<hash>/``, holding the split), or None.

    Mirrors the offline lookup of ``datasets`` 5 (``packaged_modules/cache/cache.py``: the newest prepared copy of
    that config) without importing it. ``cache_dir``: ``$HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``."""
    import json

    if cache_dir is None:
        home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        cache_dir = os.environ.get("HF_DATASETS_CACHE") or os.path.join(home, "datasets")
    *org, name = hub.repo.split("/")
    root = Path(cache_dir).expanduser() / "___".join([*org, _snake(name)])
    found = []
    for d in root.glob(f"{hub.config or '*'}/*/*"):
        try:
            info = json.loads((d / "dataset_info.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (hub.config is None or info.get("config_name") == hub.config) and hub.split in (info.get("splits") or {}):
            found.append(d)
    return max(found, key=lambda d: d.stat().st_mtime) if found else None


def _materialise(ds, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Python rows of the columns the spec reads (matched case-insensitively); the Arrow table stays on disk."""
    wanted = {c.lower() for c in spec.columns}
    keep = [c for c in ds.column_names if c.lower() in wanted] if wanted else ds.column_names
    return ds.select_columns(keep).to_list()


def load_solutions(name: str, split: str = "train", path: str | os.PathLike | None = None, *,
                   hub_id: str | None = None, hub_config: str | Sequence[str] | None = None) -> dict[str, str]:
    """``{row id: worked solution}`` of one dataset split, ids as :func:`load_rows` gives them (``{}`` when the
    dataset has no ``solution`` column). Rows without a parseable solution are left out."""
    spec = SPECS.get(name)
    if spec is None or spec.solution is None:
        return {}
    if spec.dedup:
        raise NotImplementedError(f"{name}: solutions of a deduplicated dataset are not supported")
    raw = read_raw(spec, split, path, hub_id, hub_config)
    rows = normalize_rows(raw, source=name, split=split, question=spec.question, answer=spec.solution,
                          row_id=spec.row_id, strict=False, max_skip_frac=1.0)
    return {r["id"]: r["answer"] for r in rows}


def load_rows(name: str, split: str = "train", path: str | os.PathLike | None = None, *, hub_id: str | None = None,
              hub_config: str | Sequence[str] | None = None, strict: bool | None = None,
              limit: int | None = None) -> list[dict[str, str]]:
    """Rows ``{"id", "question", "answer", "source"}`` of one dataset split (see the module docstring).

    ``strict`` defaults to True for benchmarks (math500, aime24, aime25) and for every ``test`` split; see
    :mod:`sspo_exp.data.schema` for what it changes. ``limit`` keeps the first N rows (after dedup).
    """
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}; valid: {sorted(SPECS)}")
    spec = SPECS[name]
    raw = read_raw(spec, split, path, hub_id, hub_config)
    if spec.dedup:
        seen, unique = set(), []
        for r in raw:
            q = spec.question(r)
            key = q.strip() if isinstance(q, str) else id(r)
            if key not in seen:
                seen.add(key)
                unique.append(r)
        if len(unique) < len(raw):
            log.info("%s: %d duplicate questions dropped (%d unique)", name, len(raw) - len(unique), len(unique))
        raw = unique
    strict = (spec.benchmark or split == "test") if strict is None else strict
    rows = normalize_rows(raw, source=name, split=split, question=spec.question, answer=spec.answer,
                          row_id=spec.row_id, strict=strict)
    return rows[:limit] if limit is not None else rows
