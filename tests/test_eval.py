"""Greedy Pass@1 evaluation: a tiny local model on fixture benchmarks, provenance, failures, W&B summary."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sspo_exp import keys, rewards
from sspo_exp.data import load_benchmark
from sspo_exp.data.prompts import build_prompt
from sspo_exp.evaluation import evaluate, score
from sspo_exp.evaluation import core as eval_core
from sspo_exp.evaluation.generate import GenerationFailure
from sspo_exp.evaluation.run import resolve_model

FIX = Path(__file__).parent / "fixtures" / "benchmarks"


def build_tiny(path: Path, chat_template: bool = False) -> Path:
    """A 2-layer, 32-wide Llama with a char-level tokenizer (``tokenizers``), saved as an HF directory."""
    import string

    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = sorted(set(string.printable) - set("\t\r\x0b\x0c"))
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<think>", "</think>", "<answer>", "</answer>", *chars])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", padding_side="left")
    tok.add_tokens(["<think>", "</think>", "<answer>", "</answer>"])
    if chat_template:
        tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                             "{% if add_generation_prompt %}[assistant] {% endif %}")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                                         pad_token_id=0, eos_token_id=1, bos_token_id=None, tie_word_embeddings=True))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


# ------------------------------------------------------------------------------------------- scoring
def test_score_uses_the_reward_module_and_counts_failures():
    rows = load_benchmark("math500", FIX / "math500")  # answers: (3, pi/2), 14/3, 11sqrt2, 8
    completions = [
        "<think>polar</think> <answer>(3, \\frac{\\pi}{2})</answer>",  # right, LaTeX through math-verify
        "<think>x</think> <answer>4.6</answer>",  # wrong
        GenerationFailure("generation error: RuntimeError: out of memory"),  # failed: incorrect, kept
        "<answer>8</answer> trailing",  # right answer, format 0
    ]
    res = score(rows, ["p"] * 4, completions)
    assert res.n == 4 and res.n_correct == 2 and res.n_failed == 1 and res.pass_at_1 == 50.0
    assert [r.correct for r in res.records] == [True, False, False, True]
    assert res.records[2].error.startswith("generation error") and res.records[2].completion == ""
    for rec, comp, row in zip(res.records, completions, rows):
        if isinstance(comp, str):
            r = rewards.math_reward(comp, row["answer"])
            assert (rec.correct, rec.format, rec.extracted) == (r.answer == 1.0, r.format, r.extracted)


def test_answer_pipeline_is_the_reward_modules(monkeypatch):
    """Swapping sspo_exp.rewards.math_reward changes evaluation: there is no second answer checker."""
    rows = load_benchmark("aime24", FIX / "aime24")
    completions = ["<answer>14</answer>"] * 3
    assert score(rows, ["p"] * 3, completions).n_correct == 1
    monkeypatch.setattr(rewards, "math_reward", lambda c, g: rewards.Reward(1.0, 0.0, "x"))
    assert score(rows, ["p"] * 3, completions).n_correct == 3


# ------------------------------------------------------------------------------------- the tiny model
def test_greedy_evaluation_is_deterministic_and_keeps_every_sample(tiny):
    model, tok = tiny
    rows = load_benchmark("gsm8k", FIX / "gsm8k")
    a = evaluate(model, tok, rows, max_new_tokens=12, batch_size=3)
    b = evaluate(model, tok, rows, max_new_tokens=12, batch_size=3)
    assert a.n == len(rows) == 4 and [r.id for r in a.records] == [r["id"] for r in rows]
    assert [r.completion for r in a.records] == [r.completion for r in b.records]
    assert any(r.completion for r in a.records)  # it did generate
    assert a.records[0].prompt == build_prompt(rows[0]["question"], tok)
    model.train()
    evaluate(model, tok, rows[:1], max_new_tokens=2, batch_size=1)
    assert model.training  # evaluation restores train mode


def test_generation_failure_is_recorded_not_dropped(tiny, monkeypatch):
    model, tok = tiny
    rows = load_benchmark("aime24", FIX / "aime24")
    real = model.generate

    def flaky(**kw):  # fails on any batch holding row 1 (the only question with "divided by")
        if any("divided by" in t for t in tok.batch_decode(kw["input_ids"], skip_special_tokens=True)):
            raise RuntimeError("boom")
        return real(**kw)

    monkeypatch.setattr(model, "generate", flaky)
    res = evaluate(model, tok, rows, max_new_tokens=4, batch_size=3)
    assert res.n == 3 and res.n_failed == 1
    assert res.records[1].error == "generation error: RuntimeError: boom" and not res.records[1].correct
    assert res.records[0].completion and res.records[2].completion  # the rest of the batch was retried one by one
    assert not res.records[0].error.startswith("generation error")


# --------------------------------------------------------------------------------------------- CLI
def _main(argv):
    from sspo_exp.evaluation.cli import main

    return main(argv)


def test_cli_writes_one_json_per_benchmark_with_provenance(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = [f"eval.model={tiny_dir}", "eval.benchmarks=[gsm8k,math500,aime24,aime25]", f"output_root={tmp_path}",
            "eval.max_new_tokens=6", "eval.batch_size=4", "eval.progress=false",
            *[f"eval.data.{b}={FIX / b}" for b in ("gsm8k", "math500", "aime24", "aime25")]]
    assert _main(args) == 0
    out = tmp_path / "eval" / tiny_dir.as_posix().strip("/").replace("/", "_")
    sizes = {"gsm8k": 4, "math500": 4, "aime24": 3, "aime25": 3}
    for bench, n in sizes.items():
        r = json.loads((out / f"{bench}.json").read_text())
        assert r["n"] == n == len(r["samples"]) and r["benchmark"] == bench
        assert 0.0 <= r["pass@1"] <= 100.0 and r["pass@1"] == 100.0 * r["n_correct"] / n
        assert r["config"]["eval"]["max_new_tokens"] == 6 and r["generation"]["greedy"] is True
        assert r["provenance"]["versions"]["transformers"] and "commit" in r["provenance"]["git"]
        assert set(r["samples"][0]) >= {"id", "prompt", "completion", "extracted", "correct", "error"}
    # a model that is not a run: a W&B run of job_type "base" holds the summary keys (the tables' base rows)
    wandb_offline = pytest.importorskip("sspo_exp.report.wandb_offline")
    (seg,) = [wandb_offline.read_segment(d) for d in (out / "wandb").glob("offline-run-*")]
    assert seg.job_type == "base" and seg.run_id.startswith("eval-")
    assert {k: seg.summary[k] for k in seg.summary if k.startswith("eval/") and k.endswith(("/n", "/pass@1"))} == {
        **{f"eval/{b}/n": n for b, n in sizes.items()},
        **{f"eval/{b}/pass@1": json.loads((out / f"{b}.json").read_text())["pass@1"] for b in sizes}}
    for b in sizes:  # the profile and the cut share travel with every number
        r = json.loads((out / f"{b}.json").read_text())
        assert r["profile"]["backend"] == "hf" and r["profile"]["max_new_tokens"] == 6
        assert {f: seg.summary[f"eval/{b}/profile.{f}"] for f in ("backend", "dtype", "id")} == \
            {f: r["profile"][f] for f in ("backend", "dtype", "id")}
        assert seg.summary[f"eval/{b}/cut_before_answer"] == r["cut_before_answer"]


def test_cli_rejects_bad_config_before_loading_anything(tmp_path, capsys):
    def fails(args, message):
        assert _main([*args, f"output_root={tmp_path}"]) == 2  # a user's mistake: exit status 2, no traceback
        assert message in capsys.readouterr().err

    fails(["eval.model=x", "eval.benchmarks=[gsm9k]"], "eval.benchmarks has ['gsm9k']; choose from")
    fails(["eval.model=x", "eval.backend=tpu"], "eval.backend='tpu'; valid: ['hf', 'vllm']")
    try:
        import vllm  # noqa: F401
    except ImportError:
        fails(["eval.model=x", "eval.backend=vllm"], "needs vLLM installed")
    fails([f"eval.model={tmp_path}/missing", "eval.benchmarks=[aime24]", f"eval.data.aime24={FIX / 'aime24'}"],
          "no such directory")
    fails(["eval.benchmarks=[aime24]"], "eval.model")  # required


def _fake_run(root: Path, tiny_dir: Path, run_id="sspo-atanlog-s0-deadbeef") -> Path:
    import shutil

    run = root / run_id
    for step in (2, 10, 12):  # the newest *complete* checkpoint (by step, not by name) is evaluated
        shutil.copytree(tiny_dir, run / f"checkpoint-{step}")
        if step != 12:  # checkpoint-12 was cut while saving (no trainer state, no optimizer): never evaluated
            (run / f"checkpoint-{step}" / "trainer_state.json").write_text('{"global_step": %d}' % step)
            (run / f"checkpoint-{step}" / "optimizer.pt").write_bytes(b"x")
    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "dataset" / "arithmetic.yaml")
    cfg.test_size = 5
    OmegaConf.save(OmegaConf.create({"dataset": cfg, "wandb": {"mode": "offline", "project": "sspo-exp"}, "seed": 0}),
                   run / "config.yaml")
    return run


def test_resolve_model_run_dir_run_id_model_dir_hub_id(tiny_dir, tmp_path):
    run = _fake_run(tmp_path, tiny_dir)
    for spec in (str(run), run.name):
        src = resolve_model(spec, tmp_path)
        assert src.kind == "run" and src.path.endswith("checkpoint-10") and src.run_id == run.name
    assert resolve_model(str(tiny_dir), tmp_path).kind == "dir"
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct", tmp_path).kind == "hub"


@pytest.mark.slow
def test_evaluating_a_run_writes_into_the_run_and_its_wandb_summary(tiny_dir, tmp_path, monkeypatch):
    """A re-evaluation lands beside training's own results (<run>/eval/, eval/... in the summary), never over them."""
    pytest.importorskip("sspo_exp.data.arithmetic")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _fake_run(tmp_path, tiny_dir)
    (run / "eval").mkdir()
    (run / "eval" / "arithmetic.json").write_text('{"training": true}')
    assert _main([f"eval.model={run.name}", f"output_root={tmp_path}", "eval.benchmarks=[arithmetic]",
                  "eval.max_new_tokens=4", "eval.progress=false"]) == 0
    assert json.loads((run / "eval" / "arithmetic.json").read_text()) == {"training": True}  # untouched
    r = json.loads((run / "reeval" / "hf-auto-4tok" / "arithmetic.json").read_text())
    assert r["n"] == 5 and r["model"]["run_id"] == run.name and r["model"]["path"].endswith("checkpoint-10")
    assert r["samples"][0]["prompt"].endswith("\n")  # the run's compact arithmetic prompt
    wandb_offline = pytest.importorskip("sspo_exp.report.wandb_offline")  # the report's own reader
    segments = [wandb_offline.read_segment(d) for d in sorted((run / "wandb").glob("offline-run-*"))]
    assert [s.run_id for s in segments] == [run.name]  # the run's own id, resumed
    summary = segments[-1].summary
    assert summary["reeval/hf-auto-4tok/eval/arithmetic/pass@1"] == r["pass@1"]
    assert summary["reeval/hf-auto-4tok/eval/arithmetic/n"] == 5 and "eval/arithmetic/pass@1" not in summary


# ----------------------------------------------------------------------- base rows: the model's name
def test_base_model_name_is_the_presets_name():
    from sspo_exp import CONF_DIR
    from sspo_exp.evaluation.run import preset_name

    assert preset_name("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5-7b-instruct"
    assert preset_name("qwen/qwen3-8b/") == "qwen3-8b"  # Hub ids are case-insensitive
    for f in (CONF_DIR / "model").glob("*.yaml"):  # every preset with a path round-trips
        p = OmegaConf.load(f)
        if isinstance(p.get("path"), str) and p.path != "???":
            assert preset_name(p.path) == p.name
    assert preset_name("someorg/other-model") is None


def test_base_eval_run_lands_in_the_training_runs_model_block(tmp_path, monkeypatch):
    """A real offline base-eval W&B run written by ``sspo-exp eval eval.model=Qwen/Qwen2.5-7B-Instruct`` (generation
    monkeypatched: no model is downloaded) and a training run of the qwen2.5-7b-instruct preset form ONE block of
    Table 1, whose Base row is the eval run."""
    import wandb

    from sspo_exp.evaluation import cli as eval_cli, core as eval_core, run as eval_run
    from sspo_exp.report.sources import load
    from sspo_exp.report.tables import SPECS, build_table

    monkeypatch.setenv("WANDB_SILENT", "true")
    gold = [r["answer"] for r in load_benchmark("gsm8k", FIX / "gsm8k")]  # 4 rows
    monkeypatch.setattr(eval_run, "load_hf", lambda path, cfg: (None, None))  # plain-text prompts, no weights
    # nothing is read from the Hub here, so the offline node's cache check (HF_HUB_OFFLINE=1 in CI) has nothing to guard
    monkeypatch.setattr(eval_cli, "check_offline", lambda cfg: None)
    monkeypatch.setattr(eval_core, "generate_hf", lambda model, tok, prompts, *a, **kw: [
        f"<think>t</think> <answer>{g if i < 1 else 'x'}</answer>" for i, g in enumerate(gold)])
    assert _main(["eval.model=Qwen/Qwen2.5-7B-Instruct", "eval.benchmarks=[gsm8k]", f"eval.data.gsm8k={FIX / 'gsm8k'}",
                  f"output_root={tmp_path}", "eval.progress=false"]) == 0
    record = json.loads((tmp_path / "eval" / "Qwen_Qwen2.5-7B-Instruct" / "gsm8k.json").read_text())
    assert record["pass@1"] == 25.0 and record["model"]["name"] == "qwen2.5-7b-instruct"

    train_cfg = {"objective": {"name": "grpo"}, "gate": {"name": "clip"}, "seed": 0,
                 "model": OmegaConf.to_container(OmegaConf.load(Path(eval_run.CONF_DIR) / "model" /
                                                                "qwen2.5-7b-instruct.yaml"))}
    run = wandb.init(mode="offline", dir=str(tmp_path), project="sspo-exp", id="grpo-s0", config=train_cfg,
                     group="grpo", job_type="grpo")
    # scored under the base row's profile (one protocol), as `sspo-exp eval eval.model=runs/<id>` would
    run.summary.update({"eval/gsm8k/pass@1": 60.0, "eval/gsm8k/n": 4,
                        **{f"eval/gsm8k/{k}": v for k, v in keys.record_stats(record).items() if "profile" in k}})
    wandb.finish()
    wandb.teardown()

    runs, _ = load(offline=[str(tmp_path)], idle_seconds=0)
    assert set(runs["state"]) == {"finished"} and len(runs) == 2
    table = build_table(runs, SPECS["1"], paper_dir=None)
    assert table.blocks == ["qwen2.5-7b-instruct"]
    assert table.rows["qwen2.5-7b-instruct"] == ["base", "grpo"]
    assert table.cells[("qwen2.5-7b-instruct", "base", "gsm8k")].mean == 25.0
    assert table.cells[("qwen2.5-7b-instruct", "grpo", "gsm8k")].mean == 60.0


def test_eval_model_name_overrides_and_is_validated(tmp_path, capsys):
    from sspo_exp.evaluation.run import ModelSource, model_name

    cfg = OmegaConf.create({"eval": {"model_name": None}})
    assert model_name(cfg, ModelSource("/models/qwen-copy", "dir", "/models/qwen-copy")) == "models_qwen-copy"
    cfg.eval.model_name = "qwen2.5-7b-instruct"
    assert model_name(cfg, ModelSource("/models/qwen-copy", "dir", "/models/qwen-copy")) == "qwen2.5-7b-instruct"
    assert _main(["eval.model=x", "eval.model_name=''", f"output_root={tmp_path}"]) == 2
    assert "eval.model_name must be null" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, words",
    [
        ("eval.dtype=fp16", ["eval.dtype='fp16'", "bfloat16"]),
        ("eval.device=gpu", ["eval.device='gpu'", "cuda:N"]),
        ("+eval.data.gsm8K=/x", ["eval.data", "gsm8K", "gsm8k"]),
    ],
)
def test_bad_eval_fields_are_named_before_any_model_loads(tmp_path, capsys, override, words):
    assert _main(["eval.model=x", override, f"output_root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, (w, err)

