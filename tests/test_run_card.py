"""What a run's W&B config and README say (sspo_exp/train/run_card.py): only the blocks its objective reads, its
hyper-parameters in one place whatever the objective, and a README that says what the run is."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from sspo_exp import CONF_DIR
from sspo_exp.train.config import make_plan
from sspo_exp.train.run_card import readme, wandb_config

CODE = {"version": "0.1.0", "commit": "0123456789abcdef", "dirty": False}


def _plan(*overrides, tmp_path):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"output_root={tmp_path}", *overrides])
    return make_plan(cfg, world_size=1)


def test_a_baselines_wandb_config_has_no_gate_and_its_eps_under_hparams(tmp_path):
    config = wandb_config(_plan("objective=grpo", "objective.eps_low=0.1", tmp_path=tmp_path), CODE)
    assert "gate" not in config  # a dashboard filter on gate.* finds SSPO runs only
    assert config["hparams"] == {"label": "grpo", "name": "grpo", "loss_agg": "seq-mean-token-mean",
                                 "eps_low": 0.1, "eps_high": 0.1}


def test_tau_is_under_hparams_for_sspo_and_sapo_alike(tmp_path):
    sspo = wandb_config(_plan("gate.tau_neg=0.3", "gate.tau_pos=0.2", tmp_path=tmp_path), CODE)
    sapo = wandb_config(_plan("objective=sapo", tmp_path=tmp_path), CODE)
    assert sspo["gate"]["name"] == "atanlog" and sspo["hparams"]["label"] == "sspo-atanlog"
    assert (sspo["hparams"]["tau_neg"], sspo["hparams"]["tau_pos"]) == (0.3, 0.2)
    assert "gate" not in sapo and {"tau_pos", "tau_neg"} <= set(sapo["hparams"]) and "eps_low" not in sapo["hparams"]
    assert sspo["identity"]["run_id"] == _plan("gate.tau_neg=0.3", "gate.tau_pos=0.2", tmp_path=tmp_path).run.run_id


def test_the_run_readme_says_what_the_run_is_and_how_to_resume_and_report(tmp_path):
    plan = _plan(tmp_path=tmp_path)
    text = readme(plan, CODE)
    assert text.startswith(f"# {plan.identity.name}\n")
    assert plan.run.run_id in text and plan.identity.group in text and "0123456789ab" in text
    assert "sspo-atanlog" in text and "Resume" in text and f"sspo-exp report --offline {plan.run.root}" in text
    assert "fine-tuned version" not in text
    assert "(uncommitted changes)" in readme(plan, {**CODE, "dirty": True})
