"""Run identity survives upgrades (sspo_exp/identity.py): pinned ids, every config key accounted for, readable names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sspo_exp import CONF_DIR, identity
from sspo_exp.stages.spec import stage_version

BASELINE = Path(identity.__file__).parent / "resources" / "identity_baseline.txt"
#: The config options that existed when ids were first defined (v0.1): their runs' ids must never change.
V01_OPTIONS = {
    "model": ["tiny", "qwen2.5-7b-instruct", "qwen3-8b", "qwen3-14b", "qwen3-30b-a3b", "local"],
    "dataset": ["arithmetic", "gsm8k", "deepmath", "gsm8k_deepmath", "dapo_math"],
    "trainer": ["cpu", "gpu"],
    "objective": ["grpo", "gspo", "gmpo", "sapo", "sspo"],
    "gate": ["expsig", "expatan", "gumbel", "atanlog", "siglog"],
}
V01_EXPERIMENTS = [None, "table1", "table2_math", "cpu_minigrid"]


def run_id(cfg):
    """The run id of ``cfg`` with its cold start's version, as ``make_plan`` gives it to ``identity``."""
    return identity.run_id(cfg, stage_version(cfg.model))


def group_name(cfg):
    return identity.group_name(cfg, stage_version(cfg.model))


def setting_hash(cfg):
    return identity.setting_hash(cfg, stage_version(cfg.model))


def _compose(*overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


# v0.1's default was model=tiny trainer=cpu; the default job now uses the cheaper tiny-fast / cpu-fast presets (a
# new experiment, so new ids: pinned below), and v0.1's configs, named explicitly, keep their ids
V01 = ("model=tiny", "trainer=cpu")


@pytest.mark.parametrize("overrides, expected", [
    (V01, "sspo-atanlog-s0-805128aa"),
    (("objective=grpo", "seed=1", *V01), "grpo-s1-19567047"),
    (("gate=siglog", "gate.tau_neg=0.6", "gate.tau_pos=0.5", "trainer.mu=4", *V01), "sspo-siglog-s0-2c2559ad"),
    (("experiment=cpu_minigrid",), "sspo-atanlog-s0-805128aa"),  # the tiny model and CPU trainer, whatever the default
    # v0.1's Table 1 started RL from the base model; the preset now starts from the paper's cold start (§4.3,
    # issue 11 item 3), so its runs are new ones, and disabling the cold start gives the v0.1 run back
    (("experiment=table1", "objective=gspo", "model.cold_start.enabled=false"), "gspo-s0-7e2ab864"),
])  # fmt: skip
def test_run_ids_of_v01_configs_are_pinned(overrides, expected):
    """Ids computed by v0.1 (before identity.py existed): an upgrade that renames them retrains finished work."""
    assert run_id(_compose(*overrides)) == expected


@pytest.mark.parametrize("overrides, expected", [
    (("experiment=table1", "objective=gspo"), "gspo-s0-371c4440"),  # Table 1 from its SFT cold start (batch_size)
    (("experiment=cpu_codeact",), "sspo-atanlog-s0-be663cdc"),  # names model=tiny, trainer=cpu since the default moved
    ((), "sspo-atanlog-s0-76667be3"),  # the default job since its cold start of 600 steps of 28 in 2 shards
])  # fmt: skip
def test_run_ids_of_later_configs_are_pinned(overrides, expected):
    assert run_id(_compose(*overrides)) == expected


def _flat(d, prefix=""):
    out = set()
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}"}
    return out


def test_every_config_key_of_a_v01_option_is_in_the_baseline_or_declared_neutral():
    """A key added to an existing config must be declared in identity.ADDED_KEYS with the value that keeps the old
    behaviour, or every existing run would be renamed."""
    baseline = {line for line in BASELINE.read_text().split("\n") if line and not line.startswith("#")}
    unknown = set()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        configs = [compose("train", overrides=[f"{group}={option}"] + ([f"experiment={experiment}"] if experiment else [])
                           + (["model.path=/x", "model.name=x"] if option == "local" else []))
                   for experiment in V01_EXPERIMENTS for group, options in V01_OPTIONS.items() for option in options]
    for cfg in configs:
        data = OmegaConf.to_container(cfg, resolve=False)
        for key in identity.LOGGING_KEYS:
            data.pop(key, None)
        for key in identity.TRAINER_LOGGING_KEYS:
            data["trainer"].pop(key, None)
        data["model"].pop("resources", None)  # the job shape (meaningful_config drops it)
        if "enabled" in (data["model"].get("cold_start") or {}) and "model.cold_start" in identity.ADDED_KEYS:
            data["model"].pop("cold_start")  # an SFT block (conf/cold_start/sft.yaml) is declared as a whole (neutral:
            # none); the tiny model's own block stays checked key by key (its configs have no SFT block)
        unknown |= _flat(data) - baseline
    declared = {k for k in unknown if any(k == a or k.startswith(a + ".") for a in identity.ADDED_KEYS)}
    assert not unknown - declared, "declare these in identity.ADDED_KEYS"


def test_an_added_key_at_its_neutral_value_keeps_the_id_and_another_value_changes_it():
    cfg = _compose()
    before = run_id(cfg)
    key, neutral = next(iter(identity.ADDED_KEYS.items()))
    OmegaConf.update(cfg, key, neutral, force_add=True)
    assert run_id(cfg) == before
    OmegaConf.update(cfg, key, {"enable_thinking": False}, force_add=True)
    assert run_id(cfg) != before


def test_qwen3_presets_default_to_non_thinking_prompts_which_is_a_new_run_id():
    """Qwen3 runs from before model.chat_template_kwargs were prompted in thinking mode: the presets' non-thinking
    default is another experiment, so it gets another id (Qwen2.5 / tiny ids are pinned above and do not move)."""
    cfg = _compose("experiment=table2_math")
    assert OmegaConf.to_container(cfg.model.chat_template_kwargs) == {"enable_thinking": False}
    thinking = _compose("experiment=table2_math", "model.chat_template_kwargs=null")
    assert run_id(cfg) != run_id(thinking)


def test_group_and_run_names_are_readable_and_the_group_is_unique_per_setting():
    cfg = _compose("gate.tau_neg=0.3", "gate.tau_pos=0.2")
    assert group_name(cfg) == f"tiny·arithmetic·sspo-atanlog·τ0.3/0.2·μ2·{setting_hash(cfg)}"
    assert identity.run_name(cfg) == "tiny·arithmetic·sspo-atanlog·τ0.3/0.2·μ2·s0"
    # The report pools a group's runs as the seeds of one configuration: a setting that differs outside the label
    # (here the learning rate) must get its own group, or its runs would be averaged with the other's.
    lr = _compose("gate.tau_neg=0.3", "gate.tau_pos=0.2", "trainer.learning_rate=0.5")
    assert identity.setting_label(lr) == identity.setting_label(cfg) and group_name(lr) != group_name(cfg)
    assert group_name(_compose("gate.tau_neg=0.3", "gate.tau_pos=0.2", "seed=3")) == group_name(cfg)
    other = _compose("gate.tau_neg=0.6", "gate.tau_pos=0.5")
    assert group_name(other) != group_name(cfg)  # two τ settings differ in the legend, not by a hash
    assert setting_hash(cfg) == setting_hash(_compose("gate.tau_neg=0.3", "gate.tau_pos=0.2", "seed=3"))
    assert identity.setting_label(_compose("objective=grpo", "objective.eps_low=0.1")) == "tiny·arithmetic·grpo·ε0.1·μ2"
    assert group_name(_compose("objective=sapo")).startswith("tiny·arithmetic·sapo·τ")


def test_runs_from_different_cold_starts_never_share_a_run_id(monkeypatch):
    """The run id covers the cold start the initial policy comes from: every field of its key (config) and the
    stage's format version (code), so a changed cold start is a new run; the tiny default keeps its v0.1 id."""
    from sspo_exp.stages import sft
    from sspo_exp.stages import spec as cold_start_spec

    def ids(*overrides):
        cfg = _compose("model=local", "model.path=/m", "model.name=m", "dataset=gsm8k",
                       "+cold_start@model.cold_start=sft", *overrides)
        spec = cold_start_spec.cold_start_spec(cfg.model, cfg.model.cold_start, cfg.dataset, cfg.seed)
        return spec and spec.stage_id, run_id(cfg)

    base = ids()
    variants = [ids(o) for o in ("model.cold_start.learning_rate=2e-5", "model.cold_start.max_examples=100",
                                 "model.cold_start.seed=3", "model.path=/other", "dataset.limit=10")]
    variants.append(ids("model.cold_start.enabled=false"))
    monkeypatch.setattr(sft, "FORMAT_VERSION", sft.FORMAT_VERSION + 1)
    variants.append(ids())
    stages, runs = zip(base, *variants)
    assert len(set(stages)) == len(stages) and len(set(runs)) == len(runs)
    assert ids("model.cold_start.enabled=false")[1] == run_id(
        _compose("model=local", "model.path=/m", "model.name=m", "dataset=gsm8k"))  # disabled = no cold start

    default = run_id(_compose())
    monkeypatch.setattr(cold_start_spec, "TINY_VERSION", 2)
    assert run_id(_compose()) != default


def _float_keys_of_shipped_configs() -> tuple[set[str], set[str]]:
    """(keys holding a float in some shipped config, keys holding an int in some shipped config)."""
    floats, ints = set(), set()

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, float):
                floats.add(prefix + k)
            elif isinstance(v, int) and not isinstance(v, bool):
                ints.add(prefix + k)

    experiments = [None] + sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for experiment in experiments:
            for group, options in V01_OPTIONS.items():
                for option in options:
                    if option == "local":
                        continue
                    cfg = compose("train", overrides=[f"{group}={option}"] + ([f"experiment={experiment}"] if experiment else []))
                    walk(OmegaConf.to_container(cfg, resolve=True))
    return floats, ints


def test_float_keys_are_every_float_of_the_shipped_configs_and_never_an_int_there():
    """identity.FLOAT_KEYS is complete (a new float key must join it) and renames no shipped config's run."""
    floats, ints = _float_keys_of_shipped_configs()
    trained = {k for k in floats if k.split(".")[0] not in identity.LOGGING_KEYS
               and not any(k.startswith(f"trainer.{t}") for t in identity.TRAINER_LOGGING_KEYS)
               and not k.startswith("model.resources.")}  # the job shape: never in the id
    assert trained <= set(identity.FLOAT_KEYS), "add these to identity.FLOAT_KEYS"
    assert not ints & set(identity.FLOAT_KEYS)


@pytest.mark.parametrize("as_int, as_float", [
    (("objective=sapo", "objective.tau_neg=1"), ("objective=sapo",)),  # the grid's [1, 1.05] is SAPO's default 1.0
    (("gate.tau_neg=1", "gate.tau_pos=2"), ("gate.tau_neg=1.0", "gate.tau_pos=2.0")),
    (("objective=grpo", "objective.eps_low=1", "trainer.temperature=1"), ("objective=grpo", "objective.eps_low=1.0")),
])  # fmt: skip
def test_an_integer_in_a_float_key_is_the_same_run_as_its_float(as_int, as_float):
    """`1` and `1.0` are one setting: one run id, one W&B group (hash and label), so the report has one row."""
    a, b = _compose(*as_int), _compose(*as_float)
    assert run_id(a) == run_id(b) and group_name(a) == group_name(b)


@pytest.mark.parametrize("experiment, as_int, as_float", [
    ("table1", "model.cold_start.max_grad_norm=1", "model.cold_start.max_grad_norm=1.0"),  # the SFT cold start
    (None, "model.cold_start.learning_rate=1", "model.cold_start.learning_rate=1.0"),  # the tiny model's
    ("cpu_codeact", "model.cold_start.execute_rate.above=0", "model.cold_start.execute_rate.above=0.0"),
])  # fmt: skip
def test_a_run_and_its_cold_start_read_an_integer_in_a_float_key_alike(experiment, as_int, as_float):
    """The run id treats 1 as 1.0, so the cold start's cache key must too: else one run asks for two cold starts."""
    from sspo_exp.stages.spec import cold_start_spec

    exp = [f"experiment={experiment}"] if experiment else []
    a, b = _compose(*exp, as_int), _compose(*exp, as_float)
    stage = [cold_start_spec(c.model, c.model.get("cold_start"), c.dataset, c.seed).stage_id for c in (a, b)]
    assert run_id(a) == run_id(b) and stage[0] == stage[1]
