"""Datasets as rows ``{"id", "question", "answer", "source"}`` (see :mod:`sspo_exp.data.schema`).

Entry points:

* :func:`load_dataset_rows` ``(cfg, split)``: training (``split="train"``) or held-out (``split="heldout"``) rows of a
  ``conf/dataset/*.yaml`` block, single dataset or mixture (``components``).
* :func:`load_benchmark` ``(name, path=None)``: a whole evaluation benchmark (strict: no row is dropped).
* :func:`sspo_exp.data.prompts.build_prompt`, :func:`sspo_exp.data.prompts.rows_to_dataset`: prompts / TRL dataset.

A dataset config (single dataset; a mixture has the same keys per entry of ``components``)::

    name: gsm8k            # a loader in LOADERS (gsm8k, deepmath, dapo_math, math500, aime24, aime25, arithmetic)
    path: null             # local file/dir instead of the Hub
    hub_id / hub_config    # Hub location (defaults from sspo_exp.data.loaders.SPECS)
    train_split: train
    heldout_split: null    # null -> carve heldout_size training rows (our configs: a benchmark's test split must
                           # not select configurations); a split name -> that split (the default if the key is absent)
    heldout_size: 0
    limit: null            # keep N training rows (after the seeded shuffle)
    seed: 0                # shuffle / carve seed

Other loaders register in :data:`LOADERS` as ``fn(cfg, split) -> rows`` with ``split`` in ``{"train", "test"}``;
a name missing from it is looked up by importing ``sspo_exp.data.<name>`` (the generated ``arithmetic`` task).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Mapping
from typing import Any

from sspo_exp.data.loaders import SPECS, HubSplit, hub_splits, load_rows, load_solutions
from sspo_exp.data.prompts import build_prompt, rows_to_dataset
from sspo_exp.data.schema import FIELDS, DataError, validate_rows

__all__ = ["LOADERS", "BENCHMARKS", "DataError", "FIELDS", "HubSplit", "benchmark_hub_splits", "build_prompt",
           "dataset_hub_splits", "load_benchmark", "load_dataset_rows", "load_rows", "register_hub_splits",
           "register_loader", "rows_to_dataset", "training_solutions"]

Loader = Callable[[Mapping[str, Any], str], list]
#: name -> ``fn(cfg, split)``; the Hub datasets are registered below, others register themselves.
LOADERS: dict[str, Loader] = {}
#: benchmark name -> its evaluation split (SPEC.md: GSM8K test, MATH-500, AIME24, AIME25; plus the toy task)
BENCHMARKS = {"gsm8k": "test", "math500": "test", "aime24": "test", "aime25": "test", "arithmetic": "test",
              "codeact": "test"}  # codeact: M3ToolEval, solved rate of multi-turn episodes (sspo_exp.data.codeact)


HubSplits = Callable[[Mapping[str, Any], str], list]
#: name -> ``fn(cfg, split) -> [HubSplit]``: the Hub splits a loader of :data:`LOADERS` reads (none = local or
#: generated data). The Hub datasets of ``loaders.SPECS`` are answered by ``loaders.hub_splits``; others register.
HUB_SPLITS: dict[str, HubSplits] = {}


def register_hub_splits(name: str) -> Callable[[HubSplits], HubSplits]:
    def deco(fn: HubSplits) -> HubSplits:
        HUB_SPLITS[name] = fn
        return fn

    return deco


def register_loader(name: str) -> Callable[[Loader], Loader]:
    def deco(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return deco


def _get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    try:
        value = cfg.get(key, default)
    except AttributeError:
        value = getattr(cfg, key, default)
    return default if value is None else value


def _hub_loader(name: str) -> Loader:
    def load(cfg: Mapping[str, Any], split: str) -> list:
        return load_rows(name, split, _get(cfg, "path"), hub_id=_get(cfg, "hub_id"),
                         hub_config=_get(cfg, "hub_config"))

    return load


for _name in SPECS:
    LOADERS[_name] = _hub_loader(_name)


def _arithmetic(cfg: Mapping[str, Any], split: str) -> list:
    mod = importlib.import_module("sspo_exp.data.arithmetic")
    return mod.generate(mod.ArithmeticConfig.from_config(cfg), split, seed=int(_get(cfg, "seed", 0)))


LOADERS.setdefault("arithmetic", _arithmetic)


def get_loader(name: str) -> Loader:
    if name not in LOADERS:
        try:
            importlib.import_module(f"sspo_exp.data.{name}")  # a module may register itself
        except ModuleNotFoundError:
            pass
    if name not in LOADERS:
        raise DataError(f"dataset.name={name!r} is not a known dataset; valid: {sorted(LOADERS)}")
    return LOADERS[name]


def _split_rows(cfg: Mapping[str, Any], split: str) -> list:
    rows = get_loader(_get(cfg, "name"))(cfg, split)
    validate_rows(rows, where=f"dataset {_get(cfg, 'name')!r} ({split})")
    return rows


def _component(cfg: Mapping[str, Any], split: str, seed: int) -> list:
    """train or heldout rows of one dataset, after the seeded shuffle, carve and limit."""
    # no heldout_split key: the dataset's "test" split; an explicit null: carve heldout_size rows out of train
    heldout_split = cfg["heldout_split"] if "heldout_split" in cfg else "test"
    carve = int(_get(cfg, "heldout_size", 0))
    if split == "heldout" and heldout_split is not None:
        return _split_rows(cfg, heldout_split)
    train = sorted(_split_rows(cfg, _get(cfg, "train_split", "train")), key=lambda r: r["id"])
    random.Random(seed).shuffle(train)
    if heldout_split is None and carve >= len(train):
        raise DataError(f"dataset {_get(cfg, 'name')!r}: heldout_size={carve} leaves no training rows (has {len(train)})")
    if split == "heldout":
        return train[:carve]
    train = train if heldout_split is not None else train[carve:]
    limit = _get(cfg, "limit")
    return train[: int(limit)] if limit is not None else train


def load_dataset_rows(cfg: Mapping[str, Any], split: str = "train") -> list[dict[str, str]]:
    """Training or held-out rows of a dataset config (single dataset or mixture, see the module docstring).

    A mixture (``components: {name: cfg, ...}``) concatenates its components' rows and shuffles them with
    ``seed``; ids stay unique because every id is prefixed by or unique within its source.
    """
    if split not in ("train", "heldout", "test"):
        raise DataError(f"split must be 'train' or 'heldout' ('test' is an alias of 'heldout'), got {split!r}")
    split = "heldout" if split == "test" else split
    seed = int(_get(cfg, "seed", 0))
    components = _get(cfg, "components")
    if not components:
        return _component(cfg, split, seed)
    rows: list = []
    for key, sub in components.items():
        sub = dict(sub)
        sub.setdefault("name", key)
        rows += _component(sub, split, seed)
    if split == "train":
        random.Random(seed).shuffle(rows)
    validate_rows(rows, where=f"mixture {_get(cfg, 'name')!r} ({split})")
    return rows


def load_benchmark(name: str, path: str | None = None, cfg: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """Every row of an evaluation benchmark (``BENCHMARKS``), strictly validated: a malformed row is an error,
    so Pass@1 is always over the whole benchmark. ``cfg`` carries generator knobs (``arithmetic``) or
    ``hub_id``/``hub_config`` overrides."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; valid: {sorted(BENCHMARKS)}")
    sub = dict(cfg or {})
    sub["name"] = name
    if path is not None:
        sub["path"] = path
    return _split_rows(sub, BENCHMARKS[name])


def training_solutions(cfg: Mapping[str, Any]) -> dict[str, str]:
    """``{row id: worked reference solution}`` for the training rows of a dataset config (single or mixture) whose
    dataset ships one (GSM8K; see ``DatasetSpec.solution``). Keys match :func:`load_dataset_rows`' ids; rows of
    datasets without solutions (DeepMath, DAPO, generated ones) are absent."""
    components = _get(cfg, "components") or {_get(cfg, "name"): cfg}
    out: dict[str, str] = {}
    for key, sub in components.items():
        sub = dict(sub)
        name = sub.get("name") or key
        if name in SPECS:
            out.update(load_solutions(name, _get(sub, "train_split", "train"), _get(sub, "path"),
                                      hub_id=_get(sub, "hub_id"), hub_config=_get(sub, "hub_config")))
    return out


# ------------------------------------------------------------------------------------- what is read from the Hub
def _hub_of(cfg: Mapping[str, Any], split: str) -> list[HubSplit]:
    """The Hub splits ``get_loader(name)(cfg, split)`` reads."""
    name = _get(cfg, "name")
    get_loader(name)  # imports a module that registers itself (codeact)
    if name in SPECS:
        if _get(cfg, "path") is not None:
            return []
        return hub_splits(SPECS[name], split, _get(cfg, "hub_id"), _get(cfg, "hub_config"))
    return HUB_SPLITS[name](cfg, split) if name in HUB_SPLITS else []


def dataset_hub_splits(cfg: Mapping[str, Any], split: str = "train") -> list[HubSplit]:
    """The Hub splits :func:`load_dataset_rows` ``(cfg, split)`` reads (single dataset or mixture; [] when every
    row is local or generated): what must be in the HF cache for it to run with ``HF_HUB_OFFLINE=1``."""
    split = "heldout" if split == "test" else split
    components = _get(cfg, "components") or {_get(cfg, "name"): cfg}
    out: list[HubSplit] = []
    for key, sub in components.items():
        sub = dict(sub)
        sub.setdefault("name", key)
        heldout_split = sub["heldout_split"] if "heldout_split" in sub else "test"  # as _component reads it
        which = heldout_split if split == "heldout" and heldout_split is not None else _get(sub, "train_split", "train")
        out += _hub_of(sub, which)
    return out


def benchmark_hub_splits(name: str, path: str | None = None, cfg: Mapping[str, Any] | None = None) -> list[HubSplit]:
    """The Hub splits :func:`load_benchmark` ``(name, path, cfg)`` reads."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r}; valid: {sorted(BENCHMARKS)}")
    sub = {**dict(cfg or {}), "name": name, **({"path": path} if path is not None else {})}
    return _hub_of(sub, BENCHMARKS[name])
