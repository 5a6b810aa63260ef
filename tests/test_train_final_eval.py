"""``final_eval`` (benchmarks scored inside a training run): config checks, the held-out/benchmark sharing rule,
summary keys, stored before-results. Fast: no model is run (the end-to-end part is in test_train_e2e.py)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from sspo_exp import keys
from sspo_exp.evaluation.evaluator import Evaluator, load_benchmarks
from sspo_exp.evaluation.settings import final_eval_settings
from sspo_exp.rundir import RunDir
from sspo_exp.train.config import ConfigError, validate
from sspo_exp.train.run import prompt_of, run_id
from train_helpers import small_cfg


@pytest.fixture
def cfg(tmp_path):
    c = small_cfg(tmp_path / "runs", tmp_path / "model")
    c.final_eval = {"benchmarks": ["arithmetic"], "before": True}
    return c


@pytest.mark.parametrize("block, field", [
    ({"benchmarks": ["gsm8k", "mmlu"]}, "final_eval.benchmarks"),
    ({"benchmarks": ["gsm8k", "gsm8k"]}, "final_eval.benchmarks"),
    ({"data": {"mmlu": "/x"}}, "final_eval.data"),
    ({"before": "yes"}, "final_eval.before"),
    ({"every_steps": -1}, "final_eval.every_steps"),
    ({"batch_size": 0}, "final_eval.batch_size"),
    ({"max_new_tokens": 1.5}, "final_eval.max_new_tokens"),
])  # fmt: skip
def test_bad_final_eval_is_rejected_before_compute(cfg, block, field):
    cfg.final_eval = block
    with pytest.raises(ConfigError, match=field):
        validate(cfg, world_size=1)


def test_defaults_and_absent_block(cfg):
    assert final_eval_settings(cfg).max_new_tokens == cfg.trainer.max_completion_length
    del cfg["final_eval"]
    assert final_eval_settings(cfg).benchmarks == () and final_eval_settings(cfg).before is False


def test_final_eval_is_not_part_of_the_run_id(cfg):
    other = cfg.copy()
    other.final_eval = {"benchmarks": ["gsm8k"], "before": False, "every_steps": 5}
    assert run_id(cfg) == run_id(other)


def _evaluator(cfg):
    from sspo_exp.models import tiny
    from sspo_exp.train.run import dataset_rows

    tok = tiny.build_tokenizer()
    heldout = dataset_rows(cfg.dataset, "heldout")[: cfg.trainer.eval_samples]
    settings = final_eval_settings(cfg)
    return Evaluator(settings, tok, heldout, lambda q, t: prompt_of(q, t, cfg.dataset),
                     load_benchmarks(settings), RunDir(cfg.output_root, run_id(cfg)), write=False)


def test_arithmetic_benchmark_is_the_heldout_set_only_when_rows_and_budget_match(cfg):
    assert _evaluator(cfg).shared == "arithmetic"  # test_size = eval_samples = 8, same prompts, same budget
    fewer = cfg.copy()
    fewer.trainer.eval_samples = 4  # held-out = first 4 rows of the 8: a different set
    assert _evaluator(fewer).shared is None
    longer = cfg.copy()
    longer.final_eval.max_new_tokens = 64
    assert _evaluator(longer).shared is None
    other_style = cfg.copy()
    other_style.dataset.prompt_style = "instruct"  # benchmark knobs follow the run's dataset: still the same prompts
    assert _evaluator(other_style).shared == "arithmetic"


def test_arithmetic_knobs_come_from_conf_when_training_on_other_data(cfg):
    assert cfg.final_eval.benchmarks == ["arithmetic"]
    from sspo_exp.evaluation import evaluator as evaluation  # the prompt builder the Evaluator uses

    seen = []
    real = evaluation.prompt_fn_for
    evaluation.prompt_fn_for = lambda name, knobs, *rest: seen.append(knobs) or real(name, knobs, *rest)
    try:
        load_benchmarks(final_eval_settings(cfg))
        assert seen[-1] == OmegaConf.to_container(cfg.dataset, resolve=True)  # the run's own arithmetic block
        cfg.dataset = OmegaConf.create({"name": "gsm8k"})
        rows, _ = load_benchmarks(final_eval_settings(cfg))["arithmetic"]
    finally:
        evaluation.prompt_fn_for = real
    knobs = seen[-1]
    assert knobs["name"] == "arithmetic" and knobs["test_size"] == 200 and len(rows) == 200


def test_summary_keys_and_stored_results(cfg):
    results = {"arithmetic": {"pass@1": 12.5, "n": 8}}
    assert keys.summary_keys(results, "eval") == {"eval/arithmetic/pass@1": 12.5, "eval/arithmetic/n": 8}
    assert keys.summary_keys(results, "eval_before") == {"eval_before/arithmetic/pass@1": 12.5,
                                                         "eval_before/arithmetic/n": 8}
    ev = _evaluator(cfg)  # a resumed run reads the initial policy's results from disk instead of evaluating again
    ev.run.results_dir("eval_before").mkdir(parents=True)
    (ev.run.results_dir("eval_before") / "arithmetic.json").write_text(json.dumps({"pass@1": 50.0, "n": 8, "samples": []}))
    (ev.run.results_dir("eval_before") / "heldout.json").write_text(json.dumps({"accuracy": 0.5, "n": 8}))
    assert ev.initial(model=None) == {keys.HELDOUT_BEFORE: 0.5, "eval_before/arithmetic/pass@1": 50.0,
                                      "eval_before/arithmetic/n": 8}
