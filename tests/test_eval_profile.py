"""Issue 11 items 1-2: the evaluation profile on every result, the report's refusal to mix profiles, Qwen3's
chat-template arguments on every prompt, and the share of completions cut by the budget before </answer>."""

from __future__ import annotations

import hashlib
import json
import pickle
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from sspo_exp import keys, rewards
from sspo_exp.evaluation import score
from sspo_exp.evaluation.generate import Completion, generate_hf
from sspo_exp.evaluation.profile import compute_dtype, make_profile, template_hash
from sspo_exp.tasks import prompt_id
from sspo_exp.report.frames import RunData, to_frames
from sspo_exp.report.tables import SPECS, MixedProfiles, build_table
from test_eval import build_tiny

#: A Qwen3-style template: the generation prompt closes an empty think block when enable_thinking is false.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
NO_THINK = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    path = build_tiny(tmp_path_factory.mktemp("tiny"))
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


# ------------------------------------------------------------------------------------------ checker version
def test_checker_version_names_our_rule_revision_and_math_verify():
    assert rewards.CHECKER_VERSION == f"sspo-r{rewards.CHECKER_REVISION}+math-verify-{metadata.version('math-verify')}"


# ------------------------------------------------------------------------------------------ cut share
def test_cut_before_answer_needs_the_budget_hit_and_no_closing_answer_tag():
    assert rewards.cut_before_answer("<think> long reasoning", True)
    assert not rewards.cut_before_answer("<think>r</think> <answer>3</answer> and more", True)  # answered in time
    assert not rewards.cut_before_answer("<think> stopped early", False)  # EOS: not cut, just wrong


def test_score_counts_a_truncated_completion_and_not_a_completed_one():
    rows = [{"id": str(i), "question": "q", "answer": "3"} for i in range(4)]
    completions = [Completion("<think> still thinking", True), Completion("<think>r</think> <answer>3</answer>", False),
                   Completion("<think>r</think> <answer>3</answer>", True), "<think> plain string"]  # fmt: skip
    result = score(rows, ["p"] * 4, completions)
    assert [r.cut for r in result.records] == [True, False, False, False]
    assert [r.hit_limit for r in result.records] == [True, False, True, False]
    assert result.cut_before_answer == 0.25 and result.to_dict()["cut_before_answer"] == 0.25
    assert result.n_correct == 2
    assert pickle.loads(pickle.dumps(completions[0])).hit_limit is True  # survives a process boundary


def test_generate_hf_says_which_completions_hit_the_budget(tiny):
    model, tok = tiny
    prompts = ["What is 1+1?", "What is 2+2?"]
    first = generate_hf(model, tok, prompts, max_new_tokens=4, batch_size=2)
    assert all(isinstance(c, Completion) and c.hit_limit for c in first)  # no EOS in 4 greedy tokens of a random model
    # make the model's own first greedy token an EOS id: generation then stops before the budget
    enc = tok(prompts[:1], return_tensors="pt")
    with torch.inference_mode():
        token = int(model(**enc).logits[0, -1].argmax())
    own = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = token
    try:
        stopped = generate_hf(model, tok, prompts[:1], max_new_tokens=4, batch_size=1)
    finally:
        model.generation_config.eos_token_id = own
    assert stopped[0].hit_limit is False


# ------------------------------------------------------------------------------------------ training rollouts
def test_rollout_cut_flags_follow_trl_truncation_and_the_answer_tag():
    from sspo_exp.train.trainer import cut_flags

    stop = {1, 0}
    completions = ["<think> cut", "<think>r</think> <answer>3</answer>", "<think> ended", ""]
    ids = [[5, 6, 7], [5, 6, 7], [5, 6, 1], []]
    assert cut_flags(completions, ids, stop) == [True, False, False, False]


def test_trainer_logs_the_rollouts_cut_share(tmp_path):
    """One rollout through TRL's own _generate_and_score_completions: the metric is logged, and equals the share
    recomputed from the returned completion ids (TRL's truncation test) and their text."""
    from test_train_trainer import _trainer

    trainer = _trainer(tmp_path, "seq-mean-token-mean")
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    out = trainer._generate_and_score_completions(batch)
    (logged,) = trainer._metrics["train"][keys.ROLLOUT_CUT]
    stop = {*trainer.eos_token_ids, trainer.processing_class.pad_token_id}
    flags = []
    for ids, mask in zip(out["completion_ids"], out["completion_mask"]):
        ids = ids[mask.bool()].tolist()
        text = trainer.processing_class.decode(ids, skip_special_tokens=True)
        flags.append(bool(ids) and ids[-1] not in stop and "</answer>" not in text)
    assert logged == pytest.approx(sum(flags) / len(flags))
    assert trainer._metrics["train"]["completions/clipped_ratio"][-1] >= logged  # cut ⊆ truncated


# ------------------------------------------------------------------------------------------ chat-template kwargs
def test_chat_template_kwargs_reach_the_template_in_training_and_evaluation(tiny):
    from sspo_exp.evaluation.evaluator import load_benchmarks
    from sspo_exp.evaluation.run import prompt_fn_for
    from sspo_exp.evaluation.settings import EvalSettings
    from sspo_exp.train.run import prompt_builder

    _, tok = tiny
    tok.chat_template = THINKING_TEMPLATE
    try:
        q = "What is 2+3?"
        assert not prompt_fn_for("gsm8k", None)(q, tok).endswith(NO_THINK)  # the template's default: thinking
        assert prompt_fn_for("gsm8k", None, {"enable_thinking": False})(q, tok).endswith(NO_THINK)
        no_think = {"enable_thinking": False}
        cfg = OmegaConf.create({"dataset": {"name": "gsm8k"}, "model": {"chat_template_kwargs": no_think}})
        assert prompt_builder(cfg)(q, tok).endswith(NO_THINK)  # training's prompts
        style = OmegaConf.create({"name": "arithmetic", "prompt_style": "instruct", "seed": 0, "test_size": 3})
        settings = EvalSettings(benchmarks=("arithmetic",), chat_template_kwargs={"enable_thinking": False},
                                arithmetic_knobs=OmegaConf.to_container(style))
        rows, fn = load_benchmarks(settings)["arithmetic"]
        assert fn(rows[0]["question"], tok).endswith(NO_THINK)  # training's own evaluation
    finally:
        tok.chat_template = None


def test_eval_takes_the_runs_or_the_presets_template_kwargs():
    from sspo_exp.evaluation.run import ModelSource, chat_template_kwargs

    cfg = OmegaConf.create({"eval": {"model_name": None, "chat_template_kwargs": None}})
    hub = ModelSource("Qwen/Qwen3-8B", "hub", "Qwen/Qwen3-8B")
    assert chat_template_kwargs(cfg, hub) == {"enable_thinking": False}  # the qwen3-8b preset: the Base row
    assert chat_template_kwargs(cfg, ModelSource("Qwen/Qwen2.5-7B-Instruct", "hub", "x")) == {}
    run = ModelSource("runs/r", "run", "runs/r/checkpoint-4", run_config=OmegaConf.create(
        {"model": {"name": "qwen3-8b", "chat_template_kwargs": None}}))
    assert chat_template_kwargs(cfg, run) == {}  # a run's own, even when its preset now says otherwise
    cfg.eval.chat_template_kwargs = {}
    assert chat_template_kwargs(cfg, hub) == {}


def test_bad_chat_template_kwargs_are_named(tmp_path, capsys):
    from sspo_exp.evaluation.cli import main

    assert main(["eval.model=x", "eval.chat_template_kwargs=[1]", f"output_root={tmp_path}"]) == 2
    assert "eval.chat_template_kwargs=" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the profile
def test_profile_fields_and_id(tiny):
    model, tok = tiny
    p = make_profile("hf", compute_dtype(model), 512, prompt_id("gsm8k", None), tok, {"enable_thinking": False})
    d = p.as_dict()
    assert tuple(d)[:-1] == keys.PROFILE_FIELDS and d["dtype"] == "float32" and d["checker"] == rewards.CHECKER_VERSION
    assert d["chat_template"] == template_hash(tok) == "none" and d["prompt"].startswith("zero-shot-")
    assert prompt_id("arithmetic", {"prompt_style": "compact"}) == "arithmetic-compact"
    assert prompt_id("arithmetic", {"prompt_style": "instruct"}) == d["prompt"]
    other = make_profile("hf", "bfloat16", 512, d["prompt"], tok, {"enable_thinking": False})
    same = make_profile("hf", "float32", 512, d["prompt"], tok, {"enable_thinking": False})
    assert other.id != p.id and same.id == p.id
    stats = keys.record_stats({"pass@1": 50.0, "n": 2, "cut_before_answer": 0.5, "profile": d})
    assert stats["profile.chat_template_kwargs"] == '{"enable_thinking": false}' and stats["profile.id"] == p.id
    assert keys.summary_keys({"gsm8k": stats})["eval/gsm8k/profile.dtype"] == "float32"


def test_compute_dtype_sees_accelerates_autocast(tiny):
    """Training's own evaluation with trainer.bf16: fp32 weights, forward wrapped in bf16 autocast by accelerate."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from transformers import AutoModelForCausalLM

    model, _ = tiny
    copy = AutoModelForCausalLM.from_config(model.config)
    AcceleratorState._reset_state(reset_partial_state=True)  # a trainer of an earlier test set its own
    try:
        Accelerator(cpu=True, mixed_precision="bf16").prepare_model(copy)
        assert compute_dtype(copy) == "float32+autocast-bfloat16"
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    assert compute_dtype(AutoModelForCausalLM.from_config(model.config).to(torch.bfloat16)) == "bfloat16"


# ------------------------------------------------------------------------------------------ the report
PROFILE = {"backend": "hf", "dtype": "float32", "max_new_tokens": 512, "prompt": "zero-shot-x", "chat_template": "none",
           "chat_template_kwargs": "{}", "stop": "greedy-eos-or-budget", "checker": "c1"}


def _run(rid, method, value, profile=PROFILE, cut=None, prefix="", col="gsm8k", seed=0):
    summary = {f"{prefix}eval/{col}/pass@1": value}
    if profile is not None:
        summary.update({f"{prefix}eval/{col}/profile.{f}": v for f, v in profile.items()})
        blob = json.dumps(profile, sort_keys=True).encode()
        summary[f"{prefix}eval/{col}/profile.id"] = hashlib.sha256(blob).hexdigest()[:8]
    if cut is not None:
        summary[f"{prefix}eval/{col}/cut_before_answer"] = cut
    return RunData(rid, state="finished", group=method, job_type=method, summary=summary,
                   config={"objective": {"name": method}, "model": {"name": "m"}, "seed": seed})


def _frame(*runs):
    return to_frames(list(runs))[0]


def test_a_table_of_one_profile_is_built_and_says_its_profile():
    t = build_table(_frame(_run("b", "base", 10.0, cut=0.4), _run("g", "grpo", 20.0, cut=0.1)), SPECS["1"],
                    columns=("gsm8k",), paper_dir=None)
    assert t.cells[("m", "grpo", "gsm8k")].mean == 20.0
    assert any(n.startswith("evaluation profile ") and "dtype=float32" in n for n in t.notes)
    assert "m: completions cut at the generation budget before </answer> (range over rows): GSM8K 10.0%–40.0%" \
        in t.notes


def test_the_report_refuses_mixed_profiles_and_names_the_fields_that_differ():
    bf16 = {**PROFILE, "backend": "vllm", "dtype": "bfloat16"}
    runs = _frame(_run("b", "base", 10.0, bf16), _run("g", "grpo", 20.0), _run("s", "sspo", 30.0))
    with pytest.raises(MixedProfiles) as e:
        build_table(runs, SPECS["mini"], columns=("gsm8k",), paper_dir=None)
    assert str(e.value) == (
        "CPU mini-grid would put rows scored under different evaluation profiles side by side:\n"
        "  m / GSM8K: backend: vllm (Base); hf (GRPO, SSPO) | dtype: bfloat16 (Base); float32 (GRPO, SSPO)\n"
        "Score every row under one profile (docs/evaluation.md, 'One evaluation profile per table': e.g. "
        "`sspo-exp eval --sweep <sweep file>` or `eval.model=runs/<id>` per run, then `sspo-exp report --reeval "
        "<profile_id>`), or pass "
        "--allow-mixed-profiles to build the table anyway (the differences are then listed under it).")
    t = build_table(runs, SPECS["mini"], columns=("gsm8k",), paper_dir=None, allow_mixed_profiles=True)
    assert any("--allow-mixed-profiles" in n and "dtype: bfloat16 (Base)" in n for n in t.notes)


def test_results_without_a_profile_are_an_unknown_profile_and_refused():
    runs = _frame(_run("b", "base", 10.0, profile=None), _run("g", "grpo", 20.0))
    with pytest.raises(MixedProfiles, match=r"m / GSM8K: no profile recorded \(Base\)"):
        build_table(runs, SPECS["mini"], columns=("gsm8k",), paper_dir=None)
    old = _frame(_run("b", "base", 10.0, profile=None), _run("g", "grpo", 20.0, profile=None))
    with pytest.raises(MixedProfiles, match=r"no profile recorded \(Base, GRPO\)"):
        build_table(old, SPECS["mini"], columns=("gsm8k",), paper_dir=None)


def test_a_derived_base_row_brings_the_training_runs_eval_before_profile():
    g = _run("g", "grpo", 20.0)
    before = {"pass@1": 5.0, **{f"profile.{f}": x for f, x in {**PROFILE, "max_new_tokens": 256}.items()}}
    g.summary.update({f"eval_before/gsm8k/{k}": v for k, v in before.items()})
    with pytest.raises(MixedProfiles, match=r"max_new_tokens: 256 \(Base \(eval_before\)\); 512 \(GRPO\)"):
        build_table(_frame(g), SPECS["mini"], columns=("gsm8k",), paper_dir=None)


def test_reeval_takes_the_trained_rows_from_their_rescoring():
    vllm = {**PROFILE, "backend": "vllm", "dtype": "bfloat16"}
    g = _run("g", "grpo", 20.0)  # training's own evaluation: hf / float32
    g.summary.update(_run("x", "grpo", 25.0, vllm, prefix="reeval/vllm-bfloat16-512tok/").summary)
    unscored = _run("s", "sspo", 30.0)
    runs = _frame(_run("b", "base", 10.0, vllm), g, unscored)
    with pytest.raises(MixedProfiles):
        build_table(runs, SPECS["mini"], columns=("gsm8k",), paper_dir=None)
    t = build_table(runs, SPECS["mini"], columns=("gsm8k",), paper_dir=None, reeval="vllm-bfloat16-512tok")
    assert t.cells[("m", "grpo", "gsm8k")].mean == 25.0 and t.cells[("m", "base", "gsm8k")].mean == 10.0
    assert t.cells[("m", "sspo", "gsm8k")].n == 0  # not re-scored: no value rather than another profile


def test_report_cli_exits_2_with_the_message(tmp_path, capsys, monkeypatch):
    from sspo_exp.report import cli, sources  # cli imports sources.load when it runs (not for --help)

    runs = _frame(_run("b", "base", 10.0, {**PROFILE, "dtype": "bfloat16"}), _run("g", "grpo", 20.0))
    monkeypatch.setattr(sources, "load", lambda **kw: (runs, pd.DataFrame(columns=["run_id", "step"])))
    argv = ["--offline", str(tmp_path), "--table", "mini", "--columns", "gsm8k", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sspo-exp report: CPU mini-grid would put rows")
    assert "dtype: bfloat16 (Base); float32 (GRPO)" in err
    assert cli.main([*argv, "--allow-mixed-profiles"]) == 0
    assert "dtype: bfloat16 (Base)" in (tmp_path / "o" / "table_mini.md").read_text()


# ------------------------------------------------------------------------------------------ training's own evaluation
def test_training_evaluation_records_its_profile_and_cut_share(tmp_path):
    """The in-training evaluator writes the same record as `sspo-exp eval`: the profile of the policy as it computes
    (float32 here), the run's budget and prompt builder, and the cut share; the summary keys carry both."""
    from sspo_exp.evaluation.evaluator import Evaluator, load_benchmarks
    from sspo_exp.evaluation.settings import final_eval_settings
    from sspo_exp.models import tiny as tiny_model
    from sspo_exp.rundir import RunDir
    from sspo_exp.train.run import dataset_rows, prompt_builder, run_id
    from train_helpers import ARCH, small_cfg

    cfg = small_cfg(tmp_path / "runs", tmp_path / "model")
    cfg.final_eval = {"benchmarks": ["arithmetic"], "before": True}
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_model(ARCH, tok, 0)
    settings = final_eval_settings(cfg)
    ev = Evaluator(settings, tok, dataset_rows(cfg.dataset, "heldout")[: cfg.trainer.eval_samples], prompt_builder(cfg),
                   load_benchmarks(settings), RunDir(cfg.output_root, run_id(cfg)), write=True)
    out = ev.initial(model)
    rec = json.loads((ev.run.results_dir(keys.BEFORE) / "arithmetic.json").read_text())
    p = rec["profile"]
    assert (p["backend"], p["dtype"], p["max_new_tokens"], p["prompt"], p["chat_template"]) == \
        ("hf", "float32", cfg.trainer.max_completion_length, "arithmetic-compact", "none")
    assert p["checker"] == rewards.CHECKER_VERSION and rec["cut_before_answer"] == pytest.approx(
        sum(s["cut"] for s in rec["samples"]) / rec["n"])
    assert out["eval_before/arithmetic/profile.dtype"] == "float32"
    assert out["eval_before/arithmetic/profile.id"] == p["id"]
    assert out["eval_before/arithmetic/cut_before_answer"] == rec["cut_before_answer"]
    heldout = json.loads((ev.run.results_dir(keys.BEFORE) / "heldout.json").read_text())
    assert heldout["profile"] == p and heldout["cut_before_answer"] == rec["cut_before_answer"]  # one evaluation
