"""The objective registry (issue 19 item 4): a sixth objective is one class that registers itself, and every user of
objectives (make_objective, the spec's checks, labels and tags, the config's validation, the run's identity) serves
it without naming it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from sspo_exp import identity
from sspo_exp.objectives import (
    OBJECTIVES, ObjectiveDef, make_objective, objective_names, objective_spec, register_objective,
    spec_from_config, unregister_objective)
from sspo_exp.objectives.registry import is_number
from sspo_exp.errors import ConfigError
from sspo_exp.train.config import objective_spec as plan_objective_spec

from test_objectives import padded_batch


class Toy(ObjectiveDef):
    """A throwaway objective: SSPO's siglog gate with one width for both signs, taken as a NEW hyper-parameter."""

    params = ("width",)

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        if not is_number(values["width"]) or not values["width"] > 0:
            raise ValueError(f"{self.name}: width must be a number > 0; got {values['width']!r}")
        return values

    def hyper_label(self, spec) -> str:
        return f"w{float(spec.param('width'))}"

    def tags(self, spec) -> list[str]:
        return [self.name, "family:toy"]

    def build(self, spec, kit):
        width = spec.param("width")
        return kit.Objective(spec.label, kit.bind(kit.GATES["siglog"], width, width), geometric=True,
                             loss_agg=spec.loss_agg)  # fmt: skip


@pytest.fixture
def toy():
    register_objective("toy")(Toy)
    try:
        yield "toy"
    finally:
        unregister_objective("toy")
    assert "toy" not in objective_names()


def test_a_registered_objective_builds_and_computes(toy):
    obj = make_objective(toy, width=0.5)
    reference = make_objective("sspo", gate="siglog", tau_pos=0.5, tau_neg=0.5)
    out, ref = obj(*padded_batch()), reference(*padded_batch())
    assert obj.name == "toy" and out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-6)
    assert torch.equal(out.sums, ref.sums)


def test_a_registered_objective_has_its_spec_labels_and_checks(toy):
    spec = objective_spec(toy, width=2)
    assert (spec.label, spec.hyper_label, spec.tags, spec.param("width")) == ("toy", "w2.0", ["toy", "family:toy"], 2)
    assert toy in objective_names() and toy not in OBJECTIVES  # OBJECTIVES: the shipped ones
    with pytest.raises(ValueError, match="toy: width must be a number > 0"):
        make_objective(toy, width=-1.0)
    with pytest.raises(ValueError, match="takes no eps_low .*toy takes width"):
        make_objective(toy, width=1.0, eps_low=0.2)
    with pytest.raises(ValueError, match="takes no width"):  # a shipped objective refuses the new parameter
        make_objective("grpo", width=1.0)


def test_a_registered_objective_is_validated_from_config_and_named_in_the_run_identity(toy):
    from hydra import compose, initialize_config_dir

    from sspo_exp import CONF_DIR

    assert spec_from_config({"name": toy, "width": 0.5}).param("width") == 0.5
    with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="train"):
        cfg = compose("train", overrides=["objective=grpo"])
    cfg.objective = OmegaConf.create({"name": toy, "width": 0.5, "loss_agg": "seq-mean-token-mean"})
    assert plan_objective_spec(cfg).param("width") == 0.5
    assert identity.setting_label(cfg) == "tiny·arithmetic·toy·w0.5·μ2"
    assert identity.tags(cfg)[:2] == ["toy", "family:toy"]
    other_gate = cfg.copy()
    other_gate.gate.name = "gumbel"  # a gate group the objective does not read is not part of its run
    assert identity.run_id(other_gate, 1) == identity.run_id(cfg, 1) and identity.run_id(cfg, 1).startswith("toy-s0-")
    cfg.objective.width = 0.0
    with pytest.raises(ConfigError, match="width must be a number > 0"):
        plan_objective_spec(cfg)


def test_registering_a_name_twice_is_refused(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_objective(toy)(Toy)


def test_unknown_objectives_list_the_registered_ones_in_the_specs_order(toy):
    assert OBJECTIVES == ("grpo", "gspo", "gmpo", "sapo", "sspo")  # SPEC.md's equation order
    with pytest.raises(ValueError, match="valid values: grpo, gspo, gmpo, sapo, sspo, toy"):
        make_objective("ppo")


def test_no_code_outside_the_registry_branches_on_an_objective_name():
    """No `== "sspo"` (or any shipped objective's name) in a comparison in identity or the objectives' shared code:
    only the objective's own file knows its name."""
    root = Path(__file__).resolve().parents[1] / "sspo_exp"
    files = [root / "identity.py", root / "train" / "run_card.py", *(root / "objectives").glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in OBJECTIVES}
                assert not names, f"{path.name}:{node.lineno} compares with {names}"
