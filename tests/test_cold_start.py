"""The cold-start stage: once per key across processes, atomic, resumable; the SFT cold start of an HF model.

The concurrency and kill tests run real separate processes (``multiprocessing`` spawn / ``subprocess``) and wait
on files the processes write (generous ceilings, never a guessed duration). The SFT tests use the miniature local
Qwen2.5-Instruct (``tests/local_model_helpers.py``) and the GSM8K fixture: nothing from a hub.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sspo_exp import CONF_DIR
from sspo_exp.stages import policy, sft, targets
from sspo_exp.stages.spec import cold_start_spec
from sspo_exp.stages.cache import STAGE_FILE, published, run_stage
from local_model_helpers import local_qwen_dir  # noqa: F401  (fixture)
from waiting import CEILING, running, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
GSM8K = dict(name="gsm8k", path=str(FIXTURES / "gsm8k"), hub_id="openai/gsm8k", hub_config="main", train_split="train",
             heldout_split=None, heldout_size=1, limit=None, seed=0)  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def _wait_for(path: Path, proc: subprocess.Popen | None = None) -> None:
    wait_for(path.exists, f"{path} to appear", alive=running(proc) if proc is not None else None)


# --------------------------------------------------------------------------------------------- the stage
# A stage whose builder counts its runs in a file and, in the first process, waits until the second process is
# blocked on the lock (it writes `b_waiting` from the stage's wait hook), so both really ask at once.
STAGE_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sspo_exp.stages import cache as stage

    cache, role = Path(sys.argv[1]), sys.argv[2]
    def announce(stage_id, lock_path):
        (cache / "b_waiting").touch()
    stage._announce_wait = announce

    def build(work):
        with open(cache / "builds", "a") as f:
            f.write(role + "\\n")
        (cache / "a_building").touch()
        deadline = time.monotonic() + 1800
        while role == "a" and not (cache / "b_waiting").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (work / "out").mkdir()
        (work / "out" / "weights.txt").write_text("built by " + role)
        return {"role": role}

    print(stage.run_stage(cache, "demo-s0-abc", build, key={"k": 1}), flush=True)
""")


def test_two_processes_asking_at_once_compute_the_stage_once(tmp_path):
    script = tmp_path / "stage_script.py"
    script.write_text(STAGE_SCRIPT)
    cache = tmp_path / "cache"
    cache.mkdir()
    run = lambda role: subprocess.Popen([sys.executable, str(script), str(cache), role], env=_env(),  # noqa: E731
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    a = run("a")
    _wait_for(cache / "a_building", a)  # a holds the lock and is building
    b = run("b")
    out_a, out_b = a.communicate(timeout=CEILING)[0], b.communicate(timeout=CEILING)[0]
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    assert (cache / "b_waiting").exists()  # b really waited on the lock
    assert (cache / "builds").read_text() == "a\n"  # computed once
    target = cache / "demo-s0-abc"
    assert out_a.strip().splitlines()[-1] == out_b.strip().splitlines()[-1] == str(target)
    assert (target / "weights.txt").read_text() == "built by a"
    assert json.loads((target / STAGE_FILE).read_text())["key"] == {"k": 1}
    assert not (cache / "demo-s0-abc.partial").exists()


def test_a_failed_build_publishes_nothing_and_the_next_call_resumes_its_work(tmp_path):
    def crash(work: Path):
        (work / "checkpoint-1").mkdir()  # progress a later builder can resume from
        (work / "out").mkdir()
        (work / "out" / "half.txt").write_text("half")
        raise KeyboardInterrupt  # as a kill mid-build

    with pytest.raises(KeyboardInterrupt):
        run_stage(tmp_path, "x-s0-1", crash)
    assert published(tmp_path, "x-s0-1") is None and not (tmp_path / "x-s0-1").exists()

    def resume(work: Path):
        assert (work / "checkpoint-1").is_dir()
        (work / "out" / "half.txt").unlink()
        (work / "out" / "full.txt").write_text("full")
        return {"resumed_from": "checkpoint-1"}

    path = run_stage(tmp_path, "x-s0-1", resume)
    assert sorted(p.name for p in path.iterdir()) == ["full.txt", STAGE_FILE]
    assert json.loads((path / STAGE_FILE).read_text())["info"] == {"resumed_from": "checkpoint-1"}
    assert run_stage(tmp_path, "x-s0-1", lambda work: pytest.fail("cached: must not rebuild")) == path


def test_a_builder_that_returns_without_output_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="without writing"):
        run_stage(tmp_path, "y-s0-1", lambda work: None)
    assert published(tmp_path, "y-s0-1") is None


TINY = ["model.cold_start.steps=10", "model.cold_start.batch_size=16", "model.cold_start.warmup_steps=2"]


def test_two_cold_start_jobs_at_once_compute_it_once_and_the_other_reuses_it(tmp_path):
    """Two real `sspo-exp cold-start` processes for one key (as two seeds' SLURM jobs with a shared cold start):
    A starts the tiny model's cold start and is frozen (SIGSTOP) while it holds the lock; B, started then, must
    wait on the lock (it says so) rather than compute; A resumes and publishes; B loads A's result."""
    env = {**_env(), "SSPO_EXP_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "sspo_exp.cli", "cold-start", *TINY]
    logs = {role: tmp_path / f"{role}.log" for role in "ab"}
    text = lambda role: logs[role].read_text() if logs[role].exists() else ""  # noqa: E731
    with open(logs["a"], "w") as out_a:
        a = subprocess.Popen(cmd, env=env, stdout=out_a, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: "training the tiny model" in text("a"), "A to start computing", alive=running(a))
        a.send_signal(signal.SIGSTOP)  # A holds the lock and cannot finish until we let it
        with open(logs["b"], "w") as out_b:
            b = subprocess.Popen(cmd, env=env, stdout=out_b, stderr=subprocess.STDOUT, cwd=tmp_path)
        wait_for(lambda: "another process is computing it" in text("b"), "B to wait on A's lock", alive=running(b))
        assert b.poll() is None  # still waiting
    finally:
        a.send_signal(signal.SIGCONT)
    assert a.wait(timeout=CEILING) == 0 and b.wait(timeout=CEILING) == 0, text("a") + text("b")
    (stage,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert stage.name.startswith("coldstart-tiny-s0-")
    assert text("a").split()[-1] == text("b").split()[-1] == str(stage)  # both print the one published path
    assert "training the tiny model" not in text("b")  # computed once, by A
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [stage.name, stage.name + ".lock"]


# ------------------------------------------------------------------------------------------ demonstrations
def test_demonstrations_are_the_rl_prompts_with_full_reward_completions(local_qwen_dir):  # noqa: F811
    from transformers import AutoTokenizer

    from sspo_exp.data import load_dataset_rows
    from sspo_exp.evaluation.run import prompt_fn_for
    from sspo_exp.rewards import answer_reward, format_reward

    tok = AutoTokenizer.from_pretrained(local_qwen_dir)
    demos, counts = sft.demonstrations(GSM8K, tok, max_length=1024)
    train_ids = [r["id"] for r in load_dataset_rows(GSM8K, "train")]
    heldout = {r["id"] for r in load_dataset_rows(GSM8K, "heldout")}
    assert [d["id"] for d in demos] == train_ids and not heldout & set(train_ids)  # the RL split, held-out excluded
    assert counts == {"rows": 4, "without_solution": 0, "too_long": 0, "used": 4}
    rows = {r["id"]: r for r in load_dataset_rows(GSM8K, "train")}
    for d in demos:
        assert d["prompt"] == prompt_fn_for("gsm8k", GSM8K)(rows[d["id"]]["question"], tok)
        assert d["prompt"].endswith("<|im_start|>assistant\n")  # the chat template's generation prompt
        assert "<<" not in d["completion"]  # GSM8K's calculator annotations removed
    completions = [d["completion"] for d in demos]
    assert format_reward(None, completions) == [1.0] * 4
    assert answer_reward(None, completions, answer=[rows[d["id"]]["answer"] for d in demos]) == [1.0] * 4
    assert demos[0]["completion"] == "<think>1,200 + 300 = 1,500 chickens.</think> <answer>1500</answer>"

    assert len(sft.demonstrations(GSM8K, tok, max_length=1024, max_examples=2)[0]) == 2
    short, counts = sft.demonstrations(GSM8K, tok, max_length=len(tok(demos[0]["prompt"] + demos[0]["completion"]
                                                                          + tok.eos_token).input_ids))
    assert counts["too_long"] == 4 - len(short) and 1 <= len(short) < 4  # dropped, never truncated
    deepmath = dict(GSM8K, name="deepmath", path=str(FIXTURES / "deepmath"), heldout_size=0)
    with pytest.raises(ValueError, match="worked solution"):
        sft.demonstrations(deepmath, tok, max_length=1024)
    mixture = dict(name="gsm8k_deepmath", seed=0, components={"gsm8k": GSM8K, "deepmath": deepmath})
    demos, counts = sft.demonstrations(mixture, tok, max_length=1024)
    assert counts["without_solution"] == 4 and {d["id"] for d in demos} == set(train_ids)

    # model.chat_template_kwargs reach the demonstrations as they reach RL's prompts (Qwen3 non-thinking presets):
    # a template that reacts to enable_thinking, as Qwen3's does
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
                         "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
    kwargs = {"enable_thinking": False}
    demos, _ = sft.demonstrations(GSM8K, tok, max_length=1024, chat_template_kwargs=kwargs)
    assert demos and all(d["prompt"].endswith("<think>\n\n</think>\n\n") for d in demos)
    assert [d["prompt"] for d in demos] == [prompt_fn_for("gsm8k", GSM8K, kwargs)(rows[d["id"]]["question"], tok)
                                            for d in demos]


# ------------------------------------------------------------------------------------------------ configs
def _compose(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return compose("train", overrides=list(overrides))


def test_table1_preset_enables_a_valid_sft_cold_start_and_the_key_follows_the_config():
    from sspo_exp.train.config import make_plan

    cfg = _compose("experiment=table1", "objective=sspo", "gate=atanlog")
    cold = dict(cfg.model.cold_start)
    assert cold["enabled"] is True and cold["bf16"] is True
    plan = make_plan(cfg, world_size=8)  # the whole preset validates (8 GPUs: the paper's batch)
    assert plan.cold_start.kind == "sft" and plan.cold_start.stage_id.startswith("coldstart-qwen2.5-7b-instruct-s0-")
    assert _compose().model.cold_start.target_noise == 0.6  # the tiny model's own block is untouched

    key = lambda **kw: sft.stage_key(cfg.model, {**cold, **kw}, cfg.dataset, kw.pop("_seed", 0))  # noqa: E731
    assert key() == key(save_steps=7, logging_steps=3, enabled=True)  # bookkeeping is not part of the key
    assert key() != key(learning_rate=2e-5) and key() != key(_seed=1)
    assert key() != sft.stage_key(dict(cfg.model, path="/other"), cold, cfg.dataset, 0)
    assert key() != sft.stage_key(cfg.model, cold, dict(cfg.dataset, seed=1), 0)
    assert key() != sft.stage_key(dict(cfg.model, chat_template="{{ x }}"), cold, cfg.dataset, 0)  # prompts differ


def test_the_cold_start_is_one_stage_on_any_number_of_processes(monkeypatch):
    """The stage id of a config does not depend on how many processes build it (its optimizer steps see batch_size
    demonstrations on any number), and changes with batch_size."""
    from sspo_exp.train.config import make_plan

    ids = {}
    for world in (1, 8):
        monkeypatch.setenv("WORLD_SIZE", str(world))
        ids[world] = make_plan(_compose("experiment=table1", "seed=0"), world_size=world).cold_start.stage_id
    assert ids[1] == ids[8]
    other = make_plan(_compose("experiment=table1", "seed=0", "model.cold_start.batch_size=64"), world_size=1)
    assert other.cold_start.stage_id != ids[1]


def test_the_accumulation_gives_batch_size_demonstrations_per_step_on_any_number_of_processes():
    cold = dict(_compose("+cold_start@model.cold_start=sft").model.cold_start)
    assert (cold["batch_size"], cold["per_device_train_batch_size"]) == (32, 4)  # the recipe of docs/cold_start.md
    assert [sft.gradient_accumulation(cold, w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    with pytest.raises(ValueError, match=r"batch_size=32 .*per_device_train_batch_size=4 x world size 16 .*\[1, 2\]"):
        sft.gradient_accumulation(cold, 16)
    with pytest.raises(ValueError, match="world size 3"):
        sft.gradient_accumulation(cold, 3)


def test_a_batch_that_per_device_does_not_divide_ends_the_command_with_one_line(tmp_path, monkeypatch, capsys):
    from sspo_exp.cli import main

    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    args = ["model=local", "model.path=/x", "model.name=m", "dataset=gsm8k", "+cold_start@model.cold_start=sft",
            "model.cold_start.batch_size=30"]
    assert main(["cold-start", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sspo-exp cold-start: error: model.cold_start.batch_size=30 "), err
    assert "per_device_train_batch_size=4 x world size 1" in err[0] and "[1, 2, 3, 5, 6, 10, 15, 30]" in err[0]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sspo-exp train: error: model.cold_start.batch_size=30 ") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 0, "batch_size=0"),
    ("lr_scheduler_type", "step", "lr_scheduler_type='step'.*cosine"),
    ("max_steps", 0, "max_steps=0"),
    ("learning_rate", 0, "learning_rate=0"),
    ("per_device_train_batch_size", 0, "per_device_train_batch_size=0"),
    ("bf16", "yes", "bf16='yes'"),
    ("seed", -1, "seed=-1"),
    ("warm_up", 3, "unknown \\['warm_up'\\]"),
])  # fmt: skip
def test_bad_sft_fields_are_named_before_any_compute(field, value, match, tmp_path):
    cfg = _compose("model=local", "model.path=/nonexistent", "model.name=m", "+cold_start@model.cold_start=sft",
                   "dataset=gsm8k")
    bad = {**dict(cfg.model.cold_start), field: value}
    with pytest.raises(ValueError, match=match):
        policy.cold_started_path(cfg.model, bad, cfg.dataset, 0, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_a_cold_start_the_model_path_is_the_initial_policy(tmp_path):
    cfg = _compose("model=local", "model.path=/some/model", "model.name=m")
    assert policy.cold_started_path(cfg.model, cfg.model.get("cold_start"), cfg.dataset, 0, tmp_path) == "/some/model"
    off = {**dict(_compose("+cold_start@model.cold_start=sft").model.cold_start), "enabled": False}
    assert policy.cold_started_path(cfg.model, off, cfg.dataset, 0, tmp_path) == "/some/model"


# ---------------------------------------------------------------------------------------- SFT, end to end
SFT_COLD = dict(enabled=True, seed=None, max_examples=None, max_steps=4, num_train_epochs=1,
                batch_size=2, per_device_train_batch_size=2, learning_rate=1e-2,
                lr_scheduler_type="constant", warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, max_length=512,
                bf16=False, gradient_checkpointing=False, save_steps=2, logging_steps=1)  # fmt: skip


def _completion_nll(path, demos) -> float:
    """Mean negative log-likelihood per completion token (EOS included) of ``demos`` under the model at ``path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    total, n = 0.0, 0
    for d in demos:
        p = tok(d["prompt"]).input_ids
        c = tok(d["completion"] + tok.eos_token).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0, len(p) - 1 : -1]
        total += torch.nn.functional.cross_entropy(logits, torch.tensor(c), reduction="sum").item()
        n += len(c)
    return total / n


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from sspo_exp.stages import policy, sft, targets

    class KillAfterFirstSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

    real = sft.build
    sft.build = lambda *a, **k: real(*a, **k, trainer_callbacks=[KillAfterFirstSave()])
    model_cfg, cold, dataset = {"name": "mini-qwen", "path": sys.argv[2], "chat_template": "auto"}, %r, %r
    policy.cold_started_path(model_cfg, cold, dataset, 0, sys.argv[1])
""")


def test_sft_cold_start_survives_a_kill_resumes_learns_and_is_cached_by_key(local_qwen_dir, tmp_path,  # noqa: F811
                                                                             monkeypatch):
    """A stage killed right after its first checkpoint publishes nothing; the next call resumes from that
    checkpoint, finishes, learns the demonstrations and publishes; later calls with the same key do not train."""
    from transformers import AutoTokenizer

    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT % (SFT_COLD, GSM8K))
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, str(script), str(cache), str(local_qwen_dir)], env=_env(),
                          capture_output=True, text=True, timeout=CEILING)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # killed right after saving checkpoint-2
    assert [p.name for p in cache.glob("coldstart-*") if not p.name.endswith((".lock", ".partial"))] == []
    partial = next(cache.glob("coldstart-*.partial"))
    assert (partial / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()

    model_cfg = dict(name="mini-qwen", path=str(local_qwen_dir), chat_template="auto")
    path = policy.cold_started_path(model_cfg, SFT_COLD, GSM8K, 0, cache)
    assert Path(path).name.startswith("coldstart-mini-qwen-s0-") and Path(path).parent == cache
    record = json.loads((Path(path) / STAGE_FILE).read_text())
    assert record["info"]["resumed_from"] == "checkpoint-2" and record["info"]["global_step"] == 4
    assert record["key"] == sft.stage_key(model_cfg, SFT_COLD, GSM8K, 0)
    assert sorted(p.name for p in cache.iterdir()) == [Path(path).name, Path(path).name + ".lock"]  # no leftovers
    demos, _ = sft.demonstrations(GSM8K, AutoTokenizer.from_pretrained(local_qwen_dir), 512)
    before, after = _completion_nll(local_qwen_dir, demos), _completion_nll(path, demos)
    assert after < before - 0.5, (before, after)  # it learned the demonstrations (measured: 6.11 -> 4.78 nats/token)

    monkeypatch.setattr(sft, "build", lambda *a, **k: pytest.fail("cached: must not retrain"))
    assert policy.cold_started_path(model_cfg, SFT_COLD, GSM8K, 0, cache) == path
    assert policy.cold_started_path(model_cfg, dict(SFT_COLD, seed=0), GSM8K, 5, cache) == path  # fixed seed
    with pytest.raises(pytest.fail.Exception):  # another RL seed is another cold start
        policy.cold_started_path(model_cfg, SFT_COLD, GSM8K, 1, cache)


# ------------------------------------------------------------------------------------ command and loader hook
def test_cold_start_command_rejects_a_bad_config_with_status_2(tmp_path, monkeypatch, capsys):
    from sspo_exp.cli import main

    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    base = ["model=local", "model.path=/x", "model.name=m"]
    assert main(["cold-start", *base, "+cold_start@model.cold_start=sft", "model.cold_start.max_length=0"]) == 2
    assert "model.cold_start.max_length=0" in capsys.readouterr().err
    assert main(["cold-start", *base]) == 0 and capsys.readouterr().out.strip() == "/x"  # no cold start: model.path
    assert list(tmp_path.iterdir()) == []


def _fake_sft(work: Path, model_cfg, cold, dataset_cfg, seed, **_) -> dict:
    """Stands in for the SFT: the base model with every weight doubled, saved as the stage's result."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_cfg["path"], dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    model.save_pretrained(work / "out")
    AutoTokenizer.from_pretrained(model_cfg["path"]).save_pretrained(work / "out")
    return {}


def test_the_rl_run_starts_from_the_cold_started_policy(local_qwen_dir, tmp_path, monkeypatch):  # noqa: F811
    import torch
    from transformers import AutoModelForCausalLM

    from sspo_exp.stages.policy import load_policy

    monkeypatch.setenv("SSPO_EXP_CACHE", str(tmp_path))
    monkeypatch.setattr(sft, "build", _fake_sft)
    cfg = _compose("model=local", f"model.path={local_qwen_dir}", "model.name=mini-qwen", "dataset=gsm8k",
                   f"dataset.path={FIXTURES / 'gsm8k'}", "+cold_start@model.cold_start=sft")
    model, _ = load_policy(cfg.model, cfg.dataset, cfg.seed)
    expected = policy.cold_started_path(cfg.model, cfg.model.cold_start, cfg.dataset, cfg.seed, tmp_path)
    assert Path(expected).parent == tmp_path  # the stage, not the base model
    reference = AutoModelForCausalLM.from_pretrained(expected, dtype=torch.float32)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_a_multi_process_launch_only_reads_a_stage_it_may_not_build(tmp_path, monkeypatch):
    from sspo_exp.stages.cache import StageMissing

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(StageMissing, match="sspo-exp cold-start"):
        run_stage(tmp_path, "z-s0-1", lambda work: pytest.fail("must not build"), launch="cached")
    with pytest.raises(ValueError, match="launch='both'"):
        run_stage(tmp_path, "z-s0-1", lambda work: None, launch="both")
    monkeypatch.setenv("WORLD_SIZE", "1")
    path = run_stage(tmp_path, "z-s0-1", lambda work: (work / "out").mkdir(), launch="cached")  # one process: builds
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_stage(tmp_path, "z-s0-1", lambda work: pytest.fail("cached"), launch="cached") == path


@pytest.mark.slow
def test_two_processes_of_one_launch_build_the_sft_cold_start_together(local_qwen_dir, tmp_path):  # noqa: F811
    """`sspo-exp cold-start` under a 2-process launch (gloo): one SFT over both processes, published once, whose
    optimizer steps see batch_size demonstrations (each process accumulates batch_size / (1 x 2) = 2 micro-batches
    of 1), so the epoch takes the steps one process would take; a batch the 2 processes do not divide: one line per
    process, exit 2."""
    cold = dict(SFT_COLD, max_steps=-1, num_train_epochs=2, batch_size=4, per_device_train_batch_size=1)
    overrides = ["model=local", f"model.path={local_qwen_dir}", "model.name=mini-qwen", "dataset=gsm8k",
                 f"dataset.path={FIXTURES / 'gsm8k'}", "dataset.heldout_size=1", "+cold_start@model.cold_start=sft",
                 *[f"model.cold_start.{k}={v}" for k, v in cold.items() if k not in ("seed", "max_examples")]]
    # torchrun, not `accelerate launch --config_file conf/accelerate/cpu_ddp.yaml`: on CPU that starts one process
    # each process's stdout in its own file (--tee): on the shared pipe, block-buffered writes of two processes
    # interleave mid-line, which glued one process's path onto the other's log line in a CI run
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29633 + os.getpid() % 1000), "--log-dir", str(tmp_path / "logs"), "--tee", "1",
           "-m", "sspo_exp.cli", "cold-start", *overrides]
    env = {**_env(), "SSPO_EXP_CACHE": str(tmp_path / "cache"), "WANDB_SILENT": "true"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (path,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    record = json.loads((path / STAGE_FILE).read_text())
    assert record["processes"] == 2
    assert record["info"]["world_size"] == 2  # one SFT over both processes (DDP over gloo), not two side by side
    assert record["info"]["gradient_accumulation_steps"] == 2 and record["info"]["batch_size"] == 4
    used = record["info"]["demonstrations"]["used"]
    assert used == 4 and record["info"]["global_step"] == 2 * math.ceil(used / 4)  # 2 epochs of 4-demonstration steps
    printed = [f.read_text().split() for f in sorted((tmp_path / "logs").rglob("stdout.log"))]
    assert len(printed) == 2 and all(p[-1:] == [str(path)] for p in printed), printed  # both print the published path
    one = _compose(*overrides)
    # the id one process computes for this config (the world size is not in it)
    assert path.name == cold_start_spec(one.model, one.model.cold_start, one.dataset, 0).stage_id

    # batch_size=2 divides per_device_train_batch_size=2 (the check at world size 1) but not 2 x 2 processes
    bad = [*cmd, "model.cold_start.batch_size=2", "model.cold_start.per_device_train_batch_size=2"]
    bad[bad.index("--log-dir") + 1] = str(tmp_path / "bad-logs")
    bad[bad.index("--tee") + 1] = "3"  # stdout and stderr of each process in its own files
    out = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode != 0
    logs = sorted((tmp_path / "bad-logs").rglob("stderr.log"))
    assert len(logs) == 2, logs
    for f in logs:
        lines = f.read_text().strip().splitlines()
        assert "Traceback" not in f.read_text() and lines[-1] == (
            "sspo-exp cold-start: error: model.cold_start.batch_size=2 is not a multiple of model.cold_start."
            "per_device_train_batch_size=2 x world size 2 (processes): every optimizer step must see batch_size "
            "demonstrations; per_device_train_batch_size allowed at world size 2: [1]"), lines[-3:]
    assert "exitcode  : 2" in out.stderr, out.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir() and not p.name.endswith(".partial")) \
        == [path.name]  # nothing else published


def test_a_multi_process_train_without_its_cold_start_stops_with_one_line(local_qwen_dir, tmp_path):  # noqa: F811
    """Process 0 of a 2-process launch (WORLD_SIZE=2) whose SFT cold start is not cached: exit 2, the command to run
    first, no traceback, before W&B opens or a model loads."""
    overrides = ["model=local", f"model.path={local_qwen_dir}", "model.name=mini-qwen", "dataset=gsm8k",
                 f"dataset.path={FIXTURES / 'gsm8k'}", "dataset.heldout_size=1", "+cold_start@model.cold_start=sft",
                 f"output_root={tmp_path / 'runs'}", "trainer.num_generations=4", "trainer.prompts_per_step=2",
                 "trainer.per_device_batch_size=2"]
    env = {**_env(), "SSPO_EXP_CACHE": str(tmp_path / "cache"), "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    out = subprocess.run([sys.executable, "-m", "sspo_exp.cli", "train", *overrides], env=env, capture_output=True,
                         text=True, timeout=CEILING, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "sspo-exp cold-start" in out.stderr.strip().splitlines()[-1], out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("sspo-exp train: error: coldstart-mini-qwen-s0-")
    assert not list((tmp_path / "runs").rglob("wandb")) and not (tmp_path / "cache").exists()


TRAIN_FROM_COLD_START = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from sspo_exp.cli import main
    sys.exit(main(["train", *%r]))
""")


def test_sspo_exp_train_starts_rl_from_the_sft_cold_start_and_records_it(local_qwen_dir, tmp_path):  # noqa: F811
    """The user's path: `sspo-exp train model=local ... +cold_start@model.cold_start=sft` computes the SFT stage in
    the same process, then runs RL from it (SFTTrainer then GRPOTrainer in one process); run.json and the W&B config
    name the stage; a second launch of the finished run computes nothing."""
    from sspo_exp.report.wandb_offline import read_segment

    cache, runs = tmp_path / "cache", tmp_path / "runs"
    args = ["model=local", "model.name=mini-qwen", f"model.path={local_qwen_dir}", "dataset=gsm8k",
            f"dataset.path={FIXTURES / 'gsm8k'}", "dataset.heldout_size=1", f"output_root={runs}",
            "+cold_start@model.cold_start=sft",
            *[f"model.cold_start.{k}={v}" for k, v in SFT_COLD.items() if k not in ("seed", "max_examples")],
            "model.cold_start.max_steps=2", "trainer.num_generations=2", "trainer.prompts_per_step=2",
            "trainer.per_device_batch_size=4", "trainer.mu=1", "trainer.max_steps=1", "trainer.save_steps=1",
            "trainer.max_prompt_length=256", "trainer.max_completion_length=4", "trainer.eval_samples=1",
            "final_eval.benchmarks=[]"]  # fmt: skip
    script = tmp_path / "train.py"
    script.write_text(TRAIN_FROM_COLD_START % (args,))
    env = {**_env(), "SSPO_EXP_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=CEILING,
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (stage,) = [p for p in cache.iterdir() if p.is_dir()]
    assert json.loads((stage / STAGE_FILE).read_text())["info"]["global_step"] == 2
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["cold_start"] == stage.name and info["initial_policy"] == str(stage)
    assert json.loads((run_dir / "summary.json").read_text())["global_step"] == 1
    (segment,) = [read_segment(d) for d in run_dir.glob("wandb/offline-run-*")]  # the real W&B file
    assert segment.config["identity"]["cold_start"] == stage.name

    again = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=CEILING,
                           cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0 and "already finished" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    assert "cold start:" not in again.stdout  # nothing recomputed
