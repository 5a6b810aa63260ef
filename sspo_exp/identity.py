"""A run's identity: its id (the directory name and W&B run id), its W&B group and its readable names.

Scheme (Dora-like, stable across upgrades). The id hashes the run's *meaningful* config: the resolved config without
the keys that only say where and how to log, launch or evaluate (:data:`LOGGING_KEYS`, :data:`TRAINER_LOGGING_KEYS`)
and without the gate of a non-SSPO objective, plus one derived key: the format version of the cold start the initial
policy comes from (``model.cold_start_version``; its cache key is otherwise config already in the hash), so two runs
from different cold starts never share an id. That version is the plan's (``sspo_exp.train.config.make_plan`` reads
it off the checked cold start, ``sspo_exp.stages.spec``) and is passed in: identity knows nothing of stages. Keys added to the configs after ids were first defined are listed in
:data:`ADDED_KEYS` with their *neutral* value — the one that reproduces the behaviour from before the key existed —
and enter the hash only when they hold another value. So adding a key with a neutral default renames no run, and a
relaunched sweep skips the finished work of older versions; a key set to a new value makes a new run.
``resources/identity_baseline.txt`` lists the keys of the first version; ``tests/test_identity.py`` fails when a
config key is in neither that list nor :data:`ADDED_KEYS`, and pins the ids of a few configs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from sspo_exp.objectives.registry import reads_gate_group
from sspo_exp.objectives.spec import ObjectiveSpec, spec_as_written  # torch-free

#: Top-level keys that only say where/how to log, launch or evaluate; they never change what is trained.
LOGGING_KEYS = ("wandb", "output_root", "launcher", "hydra", "final_eval")
#: Trainer keys of the same kind: in-training evaluation and where a vLLM server runs.
TRAINER_LOGGING_KEYS = ("eval_steps", "eval_samples", "vllm")
#: Keys added after v0.1 (dotted path -> neutral value). Add every new meaningful key here with the value that keeps
#: the old behaviour; it then changes no existing run id.
ADDED_KEYS: dict[str, Any] = {
    "model.chat_template_kwargs": None,  # None: the template's own defaults (as before the key existed)
    "model.cold_start": None,  # a model.path model's SFT cold start (conf/cold_start/sft.yaml); None/disabled: none
    # derived (the plan's cold start: sspo_exp.stages.spec.stage_version), not a config key: 1 is the tiny cold start every run
    # before it started from; a run with no cold start has none
    "model.cold_start_version": 1,
    "dataset.env.action_format": "tags",  # CodeAct's <execute>/<solution> tags, the only format before the key existed
    "model.cold_start.shards": 1,  # the tiny cold start's batch in one piece (sspo_exp/stages/data_parallel.py)
}


#: The float-valued keys (every key whose value is a float in the shipped configs; ``tests/test_identity.py`` keeps the
#: list complete). An integer given for one of them (``gate.tau_pos=1``, a sweep's ``[1, 1.05]``) enters the id and
#: the labels as the float it means, so ``1`` and ``1.0`` name one run: before, the grid's SAPO (1, 1.05) and the
#: SAPO default (1.0, 1.05) were two settings. No shipped config holds an integer here, so no default id moves.
FLOAT_KEYS = (
    "objective.eps_low", "objective.eps_high", "objective.tau_pos", "objective.tau_neg",
    "gate.tau_pos", "gate.tau_neg",
    "trainer.learning_rate", "trainer.temperature", "trainer.top_p", "trainer.beta", "trainer.max_grad_norm",
    "trainer.warmup_ratio", "trainer.weight_decay",
    "dataset.word_problems",
    "model.cold_start.learning_rate", "model.cold_start.max_grad_norm", "model.cold_start.warmup_ratio",
    "model.cold_start.weight_decay", "model.cold_start.target_noise", "model.cold_start.execute_rate.above",
    "model.cold_start.execute_rate.below",
)  # fmt: skip


def as_float(value: Any) -> Any:
    """An integer (not a bool) as the float it stands for in a float-valued key; anything else unchanged."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _parent(data: Any, dotted: str) -> tuple[dict | None, str]:
    """The dict holding ``dotted``'s last part inside ``data`` (None when the path is absent), and that part."""
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else None), leaf


def _floats_as_floats(data: dict[str, Any], prefix: str = "") -> None:
    """:data:`FLOAT_KEYS` in ``data`` (the config block at ``prefix``; "" = the whole config) as floats, in place."""
    for dotted in FLOAT_KEYS:
        if dotted.startswith(prefix):
            node, leaf = _parent(data, dotted[len(prefix):])
            if node is not None and leaf in node:
                node[leaf] = as_float(node[leaf])


def floats_as_floats(block: Any, prefix: str) -> Any:
    """A copy of the config block at ``prefix`` (e.g. ``model.cold_start``) with :data:`FLOAT_KEYS` under it as
    floats: the cold starts' cache keys treat ``1`` and ``1.0`` as the run id does, so one run asks for one stage."""
    block = copy.deepcopy(block)
    _floats_as_floats(block, prefix + ".")
    return block


def meaningful_config(cfg: Mapping[str, Any], stage_version: int | None) -> dict[str, Any]:
    """The resolved config as it enters the id (see the module docstring); ``stage_version``: the format version of
    the cold start the initial policy comes from (None: none)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else json.loads(json.dumps(cfg))
    for key in LOGGING_KEYS:
        data.pop(key, None)
    for key in TRAINER_LOGGING_KEYS:
        data.get("trainer", {}).pop(key, None)
    data.get("model", {}).pop("resources", None)  # where a run is launched (its job shape), not what is trained
    if not reads_gate_group(data.get("objective", {}).get("name")):
        data.pop("gate", None)  # the gate group configures only the objectives that read it (SSPO)
    model = data.get("model")
    if isinstance(model, dict):
        cold = model.get("cold_start")
        if model.get("path") and isinstance(cold, dict) and cold.get("enabled") is False:
            model["cold_start"] = None  # a disabled SFT block: RL starts from model.path, as with no block
        if stage_version is not None:
            model["cold_start_version"] = stage_version
    _floats_as_floats(data)
    drop_neutral(data)
    return data


def drop_neutral(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` (the config block at ``prefix``; "" = the whole config) without the :data:`ADDED_KEYS` under it that
    hold their neutral value, in place (also returned): a cache key built from a block then ignores a new key as the
    run id does (the CodeAct cold start's key holds the whole dataset block)."""
    for dotted, neutral in ADDED_KEYS.items():
        if dotted.startswith(prefix):
            node, leaf = _parent(data, dotted[len(prefix):])
            if node is not None and leaf in node and node[leaf] == neutral:
                del node[leaf]
    return data


def digest(data: Any, n: int = 8) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:n]


def objective_of(cfg: Mapping[str, Any]) -> ObjectiveSpec:
    """The objective of the config's ``objective`` and ``gate`` groups as written (its labels; unchecked: the plan
    checks it)."""
    return spec_as_written(cfg["objective"], cfg.get("gate"))


def job_type(cfg: Mapping[str, Any]) -> str:
    """The objective's label (its registered definition's): ``grpo``, ``sspo-atanlog``."""
    return objective_of(cfg).label


def run_id(cfg: Mapping[str, Any], stage_version: int | None) -> str:
    """Deterministic W&B id and directory name: ``<job_type>-s<seed>-<hash of the meaningful config>``."""
    return f"{job_type(cfg)}-s{cfg['seed']}-{digest(meaningful_config(cfg, stage_version))}"


def setting_hash(cfg: Mapping[str, Any], stage_version: int | None) -> str:
    """The hash of the setting without the seed: the seeds of one setting share it (and the W&B group)."""
    setting = meaningful_config(cfg, stage_version)
    setting.pop("seed", None)
    return digest(setting, 6)


def hyper_label(cfg: Mapping[str, Any]) -> str:
    """The objective's swept hyper-parameters as a reader sees them: ``τ0.3/0.2`` (τ_neg/τ_pos), ``ε0.2`` (each
    objective's definition says how, ``sspo_exp.objectives.methods``)."""
    return objective_of(cfg).hyper_label


def setting_label(cfg: Mapping[str, Any]) -> str:
    """What a reader sees of a setting: ``tiny·arithmetic·sspo-atanlog·τ0.3/0.2·μ2`` (not unique: a learning-rate
    sweep's points share it)."""
    parts = [cfg["model"]["name"], cfg["dataset"]["name"], job_type(cfg), hyper_label(cfg), f"μ{cfg['trainer']['mu']}"]
    return "·".join(p for p in parts if p)


def group_name(cfg: Mapping[str, Any], stage_version: int | None) -> str:
    """The W&B group of a setting (its seeds): the label and the setting hash,
    ``tiny·arithmetic·sspo-atanlog·τ0.3/0.2·μ2·3f9a1c``. The report pools a group's runs as seeds of one
    configuration, so two settings that differ anywhere outside the label (a learning rate) must not share it."""
    return f"{setting_label(cfg)}·{setting_hash(cfg, stage_version)}"


def run_name(cfg: Mapping[str, Any]) -> str:
    """The W&B display name of one run: the setting's label and the seed."""
    return f"{setting_label(cfg)}·s{cfg['seed']}"


def tags(cfg: Mapping[str, Any]) -> list[str]:
    """W&B tags: the objective's own (``sspo``, ``gate:atanlog``), model, dataset, μ, seed, then ``wandb.tags``."""
    derived = [*objective_of(cfg).tags, f"model:{cfg['model']['name']}", f"dataset:{cfg['dataset']['name']}",
               f"mu:{cfg['trainer']['mu']}", f"seed:{cfg['seed']}"]  # fmt: skip
    return derived + [str(t) for t in (cfg.get("wandb") or {}).get("tags") or []]


@dataclass(frozen=True)
class Identity:
    """A run's names, derived once from its config and its cold start's version (``make_plan``)."""

    run_id: str  #: directory name and W&B run id
    setting_hash: str  #: the setting without the seed
    group: str  #: the W&B group (the setting's seeds)
    name: str  #: the W&B display name
    job_type: str  #: objective (and gate)
    tags: tuple[str, ...]  #: W&B tags


def identify(cfg: Mapping[str, Any], stage_version: int | None) -> Identity:
    """The :class:`Identity` of ``cfg`` whose initial policy comes from a cold start of ``stage_version``."""
    return Identity(run_id(cfg, stage_version), setting_hash(cfg, stage_version), group_name(cfg, stage_version),
                    run_name(cfg), job_type(cfg), tuple(tags(cfg)))
