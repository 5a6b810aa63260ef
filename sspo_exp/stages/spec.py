"""The cold start a training config asks for, checked and named before any compute (no torch, no model, no data).

``cold_start_spec(model_cfg, cold_start_cfg, dataset_cfg, seed)`` is what ``sspo_exp.train.config.make_plan`` calls
(a bad block is a :class:`~sspo_exp.errors.ConfigError` naming the field) and what the loader
(``sspo_exp.stages.policy.cold_started_path``) computes from. It returns None when RL starts from ``model.path``
as is, else a :class:`ColdStartSpec`:

* ``model.path`` null (``model=tiny``): the tiny model's cold start on the arithmetic task (``kind="tiny"``,
  ``sspo_exp.stages.tiny``);
* ``model.path`` set and ``model.cold_start.enabled: true`` (``conf/cold_start/sft.yaml``): the SFT cold start of
  that model on the training split (``kind="sft"``, ``sspo_exp.stages.sft``).

The spec's ``stage_id`` (``coldstart-<model.name>-s<seed>-<hash of key>``) names the stage's cache directory and is
recorded in the RL run's ``run.json`` and W&B config; ``version`` (the stage's format version, bumped when the
demonstrations or the recipe change meaning) enters the RL run's id (``sspo_exp.identity``), so two runs from
different cold starts never share a run id.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sspo_exp.codeact.format import TAGS
from sspo_exp.data.arithmetic import ArithmeticConfig
from sspo_exp.data.loaders import SPECS
from sspo_exp.errors import ConfigError
from sspo_exp.identity import drop_neutral, floats_as_floats
from sspo_exp.models import TINY_ARCH_FIELDS
from sspo_exp.plain import to_plain
from sspo_exp.stages import sft
from sspo_exp.stages.cache import key_hash

#: Fields of the tiny model's ``cold_start`` block (``conf/model/tiny.yaml``).
TINY_FIELDS = ("steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay", "target_noise")
#: Its optional fields and their defaults (a default leaves the key, and so the cache directory, as before the field)
TINY_OPTIONAL = {"shards": 1}
#: Bump when the tiny cold start's targets or training loop change meaning (renames its cache and its RL runs).
TINY_VERSION = 1


@dataclass(frozen=True)
class ColdStartSpec:
    """One cold start: what it is, its name and everything its weights depend on."""

    kind: str  #: "tiny" | "tiny-codeact" | "sft"
    stage_id: str  #: coldstart-<model.name>-s<seed>-<hash of key>: cache directory, run.json and W&B record
    key: dict  #: everything the weights depend on (hashed into stage_id; written to the stage's stage.json)
    seed: int  #: the stage's own seed
    version: int  #: format version of the stage's code (part of ``key``; enters the RL run id when not 1)


def cold_start_spec(model_cfg: Mapping[str, Any], cold_start_cfg: Mapping[str, Any] | None,
                    dataset_cfg: Mapping[str, Any], seed: int) -> ColdStartSpec | None:
    """The checked cold start of a config (see the module docstring); None = RL starts from ``model.path``."""
    if not model_cfg.get("path") and dataset_cfg.get("name") == "codeact_arith":  # the CodeAct format's cold start
        key = codeact_key(model_cfg, cold_start_cfg, dataset_cfg, seed)
        return ColdStartSpec("tiny-codeact", f"coldstart-tiny-codeact-s{int(seed)}-{key_hash(key)}", key, int(seed),
                             TINY_VERSION)
    if not model_cfg.get("path"):
        key = tiny_key(model_cfg, cold_start_cfg, dataset_cfg, seed)
        return ColdStartSpec("tiny", f"coldstart-tiny-s{int(seed)}-{key_hash(key)}", key, int(seed), TINY_VERSION)
    if cold_start_cfg is None:
        return None
    if not isinstance(cold_start_cfg, Mapping) or "enabled" not in cold_start_cfg:
        raise ConfigError(f"model.cold_start={to_plain(cold_start_cfg)!r}: with model.path set it must be an SFT block "
                          "with `enabled: true|false` (+cold_start@model.cold_start=sft, conf/cold_start/sft.yaml) or null")
    if cold_start_cfg["enabled"] is False:
        return None
    sft.validate(cold_start_cfg)
    demonstration_sources(dataset_cfg)
    sft_seed = int(seed if cold_start_cfg["seed"] is None else cold_start_cfg["seed"])
    key = sft.stage_key(model_cfg, cold_start_cfg, dataset_cfg, sft_seed)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model_cfg.get("name") or "model"))  # a directory name
    return ColdStartSpec("sft", f"coldstart-{name}-s{sft_seed}-{key_hash(key)}", key, sft_seed, sft.FORMAT_VERSION)


def demonstration_sources(dataset_cfg: Mapping[str, Any]) -> list[str]:
    """The datasets of ``dataset_cfg`` (one, or a mixture's components) that give SFT demonstrations: those shipping a
    worked solution (``DatasetSpec.solution``: GSM8K) and the generated arithmetic task; ConfigError if none does."""
    components = dataset_cfg.get("components") or {dataset_cfg.get("name"): dataset_cfg}
    names = [str((sub or {}).get("name") or key) for key, sub in components.items()]
    usable = [n for n in names if n == "arithmetic" or (n in SPECS and SPECS[n].solution is not None)]
    if not usable:
        with_solutions = sorted(n for n, spec in SPECS.items() if spec.solution is not None)
        raise ConfigError(f"dataset.name={dataset_cfg.get('name')!r}: an SFT cold start (model.cold_start.enabled=true) "
                          f"needs training rows with a worked solution; {names} have none. Datasets with one: "
                          f"{with_solutions + ['arithmetic']} (or model.cold_start.enabled=false)")
    return usable


def stage_version(model_cfg: Mapping[str, Any]) -> int | None:
    """The format version of the cold start ``model_cfg`` asks for (None: none), without checking the block: what
    ``sspo_exp.identity`` hashes beside the config (the rest of the stage's key is config, already in the run id)."""
    if not model_cfg.get("path"):
        return TINY_VERSION
    cold = model_cfg.get("cold_start")
    if isinstance(cold, Mapping) and cold.get("enabled") is True:
        return sft.FORMAT_VERSION
    return None


def tiny_key(arch: Mapping[str, Any], cold_start: Mapping[str, Any] | None, dataset: Mapping[str, Any],
             seed: int) -> dict:
    """Everything the tiny model's cold-started weights depend on (architecture, cold-start block, task knobs, seed),
    after checking them."""
    if arch.get("name") != "tiny":
        raise ConfigError(f"model.path is required for model.name={arch.get('name')!r}; only 'tiny' is built locally")
    if dataset.get("name") != "arithmetic":
        raise ConfigError(f"dataset.name={dataset.get('name')!r}: model=tiny is cold-started on, and trains on, "
                          "dataset=arithmetic only")
    if not isinstance(cold_start, Mapping):
        raise ConfigError(f"model.cold_start={to_plain(cold_start)!r}: model=tiny needs its block {list(TINY_FIELDS)} "
                          "(conf/model/tiny.yaml)")
    for block, fields, have in (("model", TINY_ARCH_FIELDS, arch), ("model.cold_start", TINY_FIELDS, cold_start)):
        missing = [f for f in fields if f not in have]
        if missing:
            raise ConfigError(f"{block} is missing {missing}; the tiny model needs all of {list(fields)}")
    unknown = sorted(set(cold_start) - set(TINY_FIELDS) - set(TINY_OPTIONAL))
    if unknown:  # e.g. experiment=table1 model=tiny: the SFT block of an HF model merged into the tiny one
        raise ConfigError(f"model.cold_start has {unknown}, which the tiny model's cold start does not use (its fields: "
                          f"{list(TINY_FIELDS) + list(TINY_OPTIONAL)}); the SFT cold start (conf/cold_start/sft.yaml) is for a model.path model")
    for field, low in (("steps", 1), ("batch_size", 1), ("warmup_steps", 0)):
        value = cold_start[field]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"model.cold_start.{field}={value!r}: must be an integer >= {low}")
    for field, low, high in (("learning_rate", 0.0, None), ("weight_decay", 0.0, None), ("target_noise", 0.0, 1.0)):
        value = cold_start[field]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise ConfigError(f"model.cold_start.{field}={value!r}: must be a number in "
                              + (f"[{low}, {high}]" if high is not None else f"[{low}, inf)"))
    shards = cold_start.get("shards", TINY_OPTIONAL["shards"])
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1 or cold_start["batch_size"] % shards:
        raise ConfigError(f"model.cold_start.shards={shards!r}: must be an integer >= 1 that divides "
                          f"model.cold_start.batch_size={cold_start['batch_size']!r}")
    try:
        task = ArithmeticConfig.from_config(dataset)
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"dataset (arithmetic): {err}") from err
    return {
        "arch": {f: arch[f] for f in TINY_ARCH_FIELDS},
        "cold_start": floats_as_floats({f: cold_start[f] for f in TINY_FIELDS}
                                       | {f: cold_start[f] for f, neutral in TINY_OPTIONAL.items()
                                          if cold_start.get(f, neutral) != neutral}, "model.cold_start"),
        "dataset": floats_as_floats({
            **{k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(task).items()},
            "seed": int(dataset.get("seed", 0)),
            "prompt_style": dataset.get("prompt_style", "compact"),
        }, "dataset"),
        "seed": int(seed),
        "format": TINY_VERSION,
    }


def check_cold_start(cold_start: Any) -> None:
    """The ``model.cold_start`` block of the tiny model's CodeAct cold start (``sspo_exp/stages/codeact.py``)."""
    block = dict(to_plain(cold_start) or {})
    rate, split = block.get("execute_rate"), block.get("execute_split")
    ok = isinstance(rate, dict) and set(rate) == {"below", "above"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in rate.values())
    if not ok:
        raise ConfigError(f"model.cold_start.execute_rate={rate!r}: must be {{below: p, above: p}} with each p in [0, 1] "
                          "(the share of executing cold-start targets below / above execute_split)")  # fmt: skip
    if not isinstance(split, int) or isinstance(split, bool):
        raise ConfigError(f"model.cold_start.execute_split={split!r}: must be an integer (a first operand)")


#: the CodeAct cold start's block (conf/experiment/cpu_codeact.yaml)
COLD_START_FIELDS = ("steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay", "execute_rate",
                     "execute_split")


def codeact_key(arch: Any, cold_start: Any, dataset: Any, seed: int) -> dict:
    """Everything the CodeAct-cold-started tiny model's weights depend on, after checking the block (torch-free:
    ``sspo_exp.stages.spec`` names the stage with it before anything loads)."""
    if dict(to_plain(arch) or {}).get("name") != "tiny":
        raise ConfigError(f"model.path is required for model.name={dict(to_plain(arch) or {}).get('name')!r}; only 'tiny' is built "
                          "locally")
    block = dict(to_plain(cold_start) or {})
    missing = [f for f in COLD_START_FIELDS if f not in block]
    if missing:
        raise ConfigError(f"model.cold_start is missing {missing}; the codeact_arith cold start needs "
                          f"{list(COLD_START_FIELDS)}")
    check_cold_start(block)
    if block.get("shards", 1) != 1:  # its demonstrations are multi-turn rows of any length: trained in one piece
        raise ConfigError(f"model.cold_start.shards={block['shards']!r}: the codeact_arith cold start trains each batch "
                          "in one piece; choose 1 (or leave it out)")
    action_format = ((to_plain(dataset) or {}).get("env") or {}).get("action_format", TAGS.name)
    if action_format != TAGS.name:
        raise ConfigError(f"dataset.env.action_format={action_format!r}: the codeact_arith cold start writes its "
                          f"demonstrations in tags (<execute>/<solution>); choose {TAGS.name}")
    arch = dict(to_plain(arch) or {})
    return {"arch": {f: arch.get(f) for f in TINY_ARCH_FIELDS},
            "cold_start": floats_as_floats({f: block[f] for f in COLD_START_FIELDS}, "model.cold_start"),
            "dataset": drop_neutral(floats_as_floats(dict(to_plain(dataset) or {}), "dataset"), "dataset."),
            "seed": int(seed), "format": "codeact-3"}
