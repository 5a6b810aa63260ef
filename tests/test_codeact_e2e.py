"""`sspo-exp train` on CodeActInstruct-schema data and `sspo-exp eval` on the `codeact` benchmark, end to end
through the hooks in train/run.py, train/config.py, evaluation/run.py (an untrained tiny model: plumbing, not
learning; the learning run is test_codeact_learning.py)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from sspo_exp.data.codeact import SAMPLE_TEST, SAMPLE_TRAIN
from sspo_exp.train.config import ConfigError, validate
from test_codeact import needs_sandbox
from train_helpers import ARCH, small_cfg


def _cfg(tmp_path):
    from sspo_exp.models import tiny

    tok = tiny.build_tokenizer(tiny.CODEACT_TAGS)
    tiny.save(tiny.build_model({**ARCH, "max_position_embeddings": 512}, tok, 0), tok, tmp_path / "m")
    cfg = small_cfg(tmp_path / "runs", tmp_path / "m", max_completion_length=24, max_prompt_length=400, mu=1,
                    max_steps=1, save_steps=1, eval_samples=1, num_generations=2, per_device_batch_size=4)
    cfg.dataset = OmegaConf.load("sspo_exp/conf/dataset/codeact.yaml")
    cfg.dataset.path, cfg.dataset.heldout_size, cfg.dataset.prompt_style = str(SAMPLE_TRAIN), 1, "compact"
    cfg.final_eval = {"benchmarks": ["codeact"], "data": {"codeact": str(SAMPLE_TEST)}, "before": False,
                      "batch_size": 4}
    return cfg


def test_codeact_config_errors_before_compute(tmp_path):
    cfg = _cfg(tmp_path)
    validate(cfg, world_size=1)
    bad = cfg.copy()
    bad.trainer.rollout, bad.trainer.use_cpu = "vllm_server", False
    with pytest.raises(ConfigError, match="trainer.rollout='vllm_server': CodeAct episodes.*hf, vllm_colocate"):
        validate(bad, world_size=1)
    ok = cfg.copy()
    ok.trainer.rollout, ok.trainer.use_cpu = "vllm_colocate", False
    validate(ok, world_size=1)  # vLLM colocate samples CodeAct episodes (tests/test_vllm_codeact.py)
    bad = cfg.copy()
    bad.dataset.env.sandbox.cpu_seconds = -1
    with pytest.raises(ConfigError, match="sandbox.cpu_seconds=-1"):
        validate(bad, world_size=1)
    bad = cfg.copy()
    bad.dataset.env.turns = 3
    with pytest.raises(ConfigError, match="unknown key\\(s\\) \\['turns'\\]"):
        validate(bad, world_size=1)


@needs_sandbox
def test_train_and_eval_codeact_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    from sspo_exp.evaluation.cli import main as eval_main
    from sspo_exp.train.run import train

    cfg = _cfg(tmp_path)
    summary = train(cfg)
    assert summary["global_step"] == 1 and summary["eval/codeact/n"] == 4  # Table 2's CodeAct column key
    record = json.loads((tmp_path / "runs" / summary["run_id"] / "eval" / "codeact.json").read_text())
    assert record["benchmark"] == "codeact" and record["n"] == 4 and len(record["samples"]) == 4
    assert record["config"]["final_eval"]["codeact_env"]["sandbox"] == dict(cfg.dataset.env.sandbox)  # its environment
    history = json.loads(next((tmp_path / "runs" / summary["run_id"]).glob("checkpoint-*/trainer_state.json"))
                         .read_text())["log_history"]
    assert "codeact/turns" in history[0] and "rewards/solved_reward/mean" in history[0]
    out = tmp_path / "eval_out"
    assert eval_main([f"eval.model={summary['run_dir']}", "eval.benchmarks=[codeact]", f"eval.data.codeact={SAMPLE_TEST}",
                      "eval.max_new_tokens=24", "eval.progress=false", f"eval.output_dir={out}",
                      "eval.wandb.log=false"]) == 0
    again = json.loads((out / "codeact.json").read_text())
    assert again["n"] == 4 and again["pass@1"] == record["pass@1"]  # the same greedy episodes
    assert again["provenance"]["git"] and again["model"]["run_id"] == summary["run_id"]  # solved rate with provenance
    assert again["generation"]["backend"] == "hf" and again["generation"]["greedy"]
    # the report reads the run's W&B files and fills Table 2's CodeAct column with the run's solved rate
    from sspo_exp.report.sources import load
    from sspo_exp.report.tables import SPECS, build_table

    runs, _ = load(offline=[str(tmp_path / "runs")], idle_seconds=0)
    table = build_table(runs, SPECS["2"])
    cell = table.cells[("tiny-untrained", "sspo", "codeact")]
    assert cell.n == 1 and "missing" not in cell.marks and cell.mean == summary["eval/codeact/pass@1"]
    assert "missing" in table.cells[("tiny-untrained", "sspo", "aime24")].marks  # only the trained column is filled
