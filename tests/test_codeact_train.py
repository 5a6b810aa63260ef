"""CodeAct training through TRL's rollout_func: observation tokens carry no loss; rewards and stats reach TRL."""

from __future__ import annotations

import torch

from sspo_exp.codeact.episode import EnvConfig
from sspo_exp.codeact.rollout import REWARD_FUNCS, make_rollout_func
from sspo_exp.objectives import build
from sspo_exp.train.config import grpo_config, objective_spec, validate
from sspo_exp.train.trainer import SSPOTrainer, loss_mask
from test_codeact import needs_sandbox, scripted
from train_helpers import ARCH, small_cfg


def test_loss_mask_multiplies_tool_mask():
    cm = torch.tensor([[1, 1, 1, 0]])
    assert loss_mask({"completion_mask": cm}).tolist() == [[1, 1, 1, 0]]
    assert loss_mask({"completion_mask": cm, "tool_mask": torch.tensor([[1, 0, 1, 1]])}).tolist() == [[1, 0, 1, 0]]


@needs_sandbox
def test_trl_step_with_codeact_episodes_masks_observations(tmp_path):
    from datasets import Dataset

    from sspo_exp.models import tiny

    tok = tiny.build_tokenizer()
    model = tiny.build_model({**ARCH, "max_position_embeddings": 256}, tok, 0)
    tiny.save(model, tok, tmp_path / "m")
    cfg = small_cfg(tmp_path / "runs", tmp_path / "m", max_completion_length=120, mu=1, max_steps=1, save_steps=1)
    args = grpo_config(cfg, validate(cfg, world_size=1), str(tmp_path / "out"))
    right = {"6*7\n": ["<execute>print(6*7)</execute>", "<solution>42</solution>"],
             "5*5\n": ["<execute>print(5*5)</execute>", "<solution>25</solution>"]}
    wrong = {p: [t[0], t[1].replace(">4", ">9").replace(">2", ">9")] for p, t in right.items()}

    def half_wrong(m, t, a):  # odd episodes of each group answer wrongly: reward variance inside every group
        good, bad = scripted(t, right), scripted(t, wrong)
        return lambda ctx, budgets: [(bad if i % 2 else good)([c], [b])[0] for i, (c, b) in enumerate(zip(ctx, budgets))]

    data = Dataset.from_list([{"prompt": p, "answer": a, "checker": "math", "setup": ""}
                              for p, a in (("6*7\n", "42"), ("5*5\n", "25"))])
    objective = build(objective_spec(cfg))
    seen = []

    def recording(log_probs, old_log_probs, advantages, mask):
        seen.append((mask.clone(), advantages.clone()))
        return objective(log_probs, old_log_probs, advantages, mask)

    recording.loss_agg = objective.loss_agg
    rollout = make_rollout_func(EnvConfig(max_turns=3, max_completion_tokens=120),
                                policy_factory=half_wrong)
    trainer = SSPOTrainer(model=model, processing_class=tok, reward_funcs=list(REWARD_FUNCS), args=args,
                          train_dataset=data, rollout_func=rollout, objective=recording)
    trainer.train()
    policy_tokens = {len(tok(t, add_special_tokens=False)["input_ids"]) for t in
                     ("<execute>print(6*7)</execute><solution>42</solution>",
                      "<execute>print(5*5)</execute><solution>25</solution>")}
    masks = torch.cat([m for m, _ in seen])
    assert set(masks.sum(1).int().tolist()) == policy_tokens  # observation and appended-EOS tokens: no loss
    advantages = torch.cat([a for _, a in seen])
    assert (advantages > 0).any() and (advantages < 0).any()  # the solved episodes are preferred
    logged = trainer.state.log_history[0]
    assert logged["codeact/executions"] == 1.0 and logged["codeact/turns"] == 2.0
    assert logged["rewards/solved_reward/mean"] == 0.5 and logged["rewards/format_reward/mean"] == 1.0


def test_vllm_rollout_needs_a_colocated_engine_on_one_device():
    """``trainer.rollout=vllm_colocate`` samples turns with TRL's colocated engine; a server, tensor parallelism or
    sleep mode (none of them options of our config) is refused with the reason, before any episode."""
    from types import SimpleNamespace

    import pytest

    from sspo_exp.codeact.rollout import trainer_policy

    args = SimpleNamespace(use_vllm=True, temperature=1.0, top_p=1.0, top_k=None)
    for mode, tp, sleep in (("server", 1, False), ("colocate", 2, False), ("colocate", 1, True)):
        gen = SimpleNamespace(mode=mode, tensor_parallel_size=tp, enable_sleep_mode=sleep)
        trainer = SimpleNamespace(args=args, processing_class=None, vllm_generation=gen)
        with pytest.raises(ValueError, match=f"colocated vLLM engine on one device.*mode={mode}, "
                                             f"tensor_parallel_size={tp}"):
            trainer_policy(trainer)
