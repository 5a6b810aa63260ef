"""SSPOTrainer glue: refused TRL options, and gradient-accumulation scaling equal to the objective over a step."""

from __future__ import annotations

import pytest
import torch

from sspo_exp.objectives import make_objective
from sspo_exp.objectives import build
from sspo_exp.train.config import grpo_config, objective_spec, validate
from sspo_exp.train.trainer import SSPOTrainer, refuse_unsupported
from train_helpers import digit_reward, small_cfg, tiny_model_dir


@pytest.mark.parametrize(
    "option, value",
    [("beta", 0.04), ("top_entropy_quantile", 0.2), ("off_policy_mask_threshold", 0.5), ("entropy_coef", 0.01),
     ("num_iterations", 2)],
)  # fmt: skip
def test_refuses_trl_options_our_objectives_would_ignore(tmp_path, option, value):
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none", num_generations=2,
                      per_device_train_batch_size=2, **{option: value})  # fmt: skip
    with pytest.raises(ValueError, match=f"{option}={value!r}"):
        refuse_unsupported(args)


def _trainer(tmp_path, loss_agg):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    cfg = small_cfg(tmp_path / "runs", tiny_model_dir(tmp_path), max_completion_length=10)
    cfg.objective.loss_agg = loss_agg
    plan = validate(cfg, world_size=1)
    assert plan.gradient_accumulation_steps == 2 and plan.steps_per_generation == 4
    args = grpo_config(cfg, plan, str(tmp_path / "out"))
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path)
    tok = AutoTokenizer.from_pretrained(cfg.model.path)
    data = Dataset.from_list([{"prompt": f"{i}+{i}\n", "answer": str(2 * i)} for i in range(8)])
    return SSPOTrainer(model=model, processing_class=tok, reward_funcs=[digit_reward], args=args, train_dataset=data,
                       objective=build(objective_spec(cfg)), loss_agg=loss_agg)  # fmt: skip


@pytest.mark.parametrize("loss_agg", ["seq-mean-token-mean", "token-mean"])
def test_accumulated_gradient_equals_objective_over_the_step(tmp_path, loss_agg):
    """Σ over a step's micro-batches of the scaled loss's gradient == gradient of the objective on the whole step."""
    trainer = _trainer(tmp_path, loss_agg)
    model = trainer.model
    model.train()
    generate = trainer._generate_and_score_completions

    def ragged(inputs):  # an untrained model rarely stops: end some completions early so lengths differ
        out = generate(inputs)
        out["completion_mask"][::3, 3:] = 0
        out["completion_mask"][1::5, 6:] = 0
        return out

    trainer._generate_and_score_completions = ragged
    batch = next(iter(trainer.get_train_dataloader()))
    trainer._prepare_inputs(batch)  # generates the rollout: mu=2 steps x 2 micro-batches
    chunks = trainer._buffered_inputs
    lengths = [c["completion_mask"].sum().item() for c in chunks[:2]]
    assert lengths[0] != lengths[1], "the test needs micro-batches with different token counts"

    def grads():
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()

    trainer.current_gradient_accumulation_steps = 2  # set by transformers' training loop
    model.zero_grad()
    for k in (0, 1):  # the two micro-batches of optimizer step 0
        trainer._step = k
        trainer._compute_loss(model, chunks[k]).backward()
    accumulated = grads()

    whole = {key: torch.cat([chunks[0][key], chunks[1][key]]) for key in
             ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages", "old_per_token_logps")}  # fmt: skip
    model.zero_grad()
    model.eval()  # eval mode = no accumulation scaling: the plain objective over all 8 completions
    trainer._compute_loss(model, whole).backward()
    full = grads()
    assert accumulated.abs().max() > 0
    torch.testing.assert_close(accumulated, full, rtol=1e-5, atol=1e-7)


def test_one_update_raises_the_likelihood_of_positive_advantage_completions(tmp_path):
    """The sign of the glue: a small gradient step on the trainer's loss moves log π toward Â > 0 completions."""
    trainer = _trainer(tmp_path, "seq-mean-token-mean")
    model = trainer.model
    model.train()
    trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    trainer.current_gradient_accumulation_steps = 2
    chunks = trainer._buffered_inputs[:2]

    def seq_logps():
        with torch.no_grad():
            out = []
            for c in chunks:
                ids = torch.cat([c["prompt_ids"], c["completion_ids"]], 1)
                att = torch.cat([c["prompt_mask"], c["completion_mask"]], 1)
                lp, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, att, c["completion_ids"].size(1))
                out.append((lp * c["completion_mask"]).sum(1))
            return torch.cat(out)

    advantages = torch.cat([c["advantages"] for c in chunks])
    assert (advantages > 0).any() and (advantages < 0).any()
    before = seq_logps()
    model.zero_grad()
    for k, c in enumerate(chunks):
        trainer._step = k
        trainer._compute_loss(model, c).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 1e-2 * p.grad
    delta = seq_logps() - before
    assert (delta * advantages).sum() > 0  # first-order: Σ_i Â_i Δlog π(y_i) = lr·‖∇J‖² > 0
    assert delta[advantages > 0].mean() > delta[advantages < 0].mean()


def test_our_grpo_equals_trl_builtin_grpo_loss_and_gradient(tmp_path):
    """Our ``grpo`` objective through the glue == TRL's own ``loss_type="grpo"`` on the same off-policy batch."""
    from trl import GRPOTrainer

    ours = _trainer(tmp_path, "seq-mean-token-mean")
    ours.objective = make_objective("grpo", eps_low=0.2, eps_high=0.2)
    args = ours.args
    args.loss_type, args.epsilon, args.epsilon_high = "grpo", 0.2, 0.2
    trl = GRPOTrainer(model=ours.model, processing_class=ours.processing_class, reward_funcs=[digit_reward], args=args,
                      train_dataset=ours.train_dataset)  # fmt: skip
    model = ours.model
    model.train()
    ours._prepare_inputs(next(iter(ours.get_train_dataloader())))
    batch = dict(ours._buffered_inputs[0])
    torch.manual_seed(1)  # an off-policy batch: behaviour log-probs away from the current ones, some beyond the clip
    noise = 0.3 * torch.randn_like(batch["old_per_token_logps"])
    batch["old_per_token_logps"] = batch["old_per_token_logps"] + noise
    results = []
    for trainer in (ours, trl):
        trainer.current_gradient_accumulation_steps = 2
        trainer._step = 1  # the step's last micro-batch: ours closes the step's diagnostics
        model.zero_grad()
        loss = trainer._compute_loss(model, batch)
        loss.backward()
        results.append((loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    (loss_a, grad_a), (loss_b, grad_b) = results
    (step,) = ours._step_pool.flush("train", lambda t: t)
    assert step["objective/clip_frac"] > 0  # the clip is exercised
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-5, atol=1e-7)


def _ragged_rollout(trainer):
    """Generate one rollout (μ=2 steps × 2 micro-batches) with completions of different lengths."""
    generate = trainer._generate_and_score_completions

    def ragged(inputs):
        out = generate(inputs)
        out["completion_mask"][::3, 3:] = 0
        out["completion_mask"][1::5, 6:] = 0
        return out

    trainer._generate_and_score_completions = ragged
    trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    return trainer._buffered_inputs


def test_diagnostics_are_pooled_over_the_optimizer_step_and_stale_steps_logged_apart(tmp_path, monkeypatch):
    """Two optimizer steps of two micro-batches each go through _compute_loss and log(): each step's
    seq_weight_var is the variance over its 8 completions, entropy the token mean over the step; the stale step
    (second of the rollout) also logs seq_weight_var_stale, the fresh one does not."""
    import transformers

    trainer = _trainer(tmp_path, "seq-mean-token-mean")
    model = trainer.model
    model.train()
    chunks = _ragged_rollout(trainer)
    torch.manual_seed(3)  # stand in for the update between the steps: the stale step's π_old differs from π_θ
    for c, shift in zip(chunks[2:], (0.2, -0.2)):  # micro-batches whose weights differ in mean, as real ones can
        c["old_per_token_logps"] = c["old_per_token_logps"] + shift + 0.3 * torch.randn_like(c["old_per_token_logps"])
    logged = []
    monkeypatch.setattr(transformers.Trainer, "log", lambda self, logs, start_time=None: logged.append(dict(logs)))
    trainer.current_gradient_accumulation_steps = 2
    expected = []
    for step in (0, 1):
        s, ent, tok, per_chunk_var = [], 0.0, 0.0, []
        for k in (2 * step, 2 * step + 1):
            trainer._step = k
            c = chunks[k]
            trainer._compute_loss(model, c).backward()
            with torch.no_grad():
                ids = torch.cat([c["prompt_ids"], c["completion_ids"]], 1)
                att = torch.cat([c["prompt_mask"], c["completion_mask"]], 1)
                lp, h, _ = trainer._get_per_token_logps_and_entropies(model, ids, att, ids.size(1) - c["prompt_ids"].size(1),
                                                                      compute_entropy=True)  # fmt: skip
            m = c["completion_mask"].float()
            si = torch.exp(((lp - c["old_per_token_logps"]) * m).sum(1) / m.sum(1)).double()
            s.append(si)
            per_chunk_var.append(si.var(unbiased=False).item())
            ent += (h * m).sum().item()
            tok += m.sum().item()
        trainer._step = 2 * step + 2
        trainer.log({"loss": 0.0})
        expected.append((torch.cat(s).var(unbiased=False).item(), ent / tok, sum(per_chunk_var) / 2))
    fresh, stale = logged
    assert fresh["objective/rollout_step"] == 0 and stale["objective/rollout_step"] == 1
    assert fresh["objective/seq_weight_var"] == pytest.approx(0.0, abs=1e-10)
    assert "objective/seq_weight_var_stale" not in fresh
    var, entropy, mean_of_chunks = expected[1]
    assert stale["objective/seq_weight_var"] == pytest.approx(var, rel=1e-4)
    assert stale["objective/seq_weight_var_stale"] == stale["objective/seq_weight_var"]
    assert mean_of_chunks < 0.8 * var  # the old mean of per-micro-batch variances would not pass
    # the weights the objective applies (issue 21): logged every step, and again under _stale / _fresh
    assert fresh["objective/applied_seq_weight_mean_fresh"] == pytest.approx(1.0, abs=1e-6)
    assert fresh["objective/applied_seq_weight_var_fresh"] == pytest.approx(0.0, abs=1e-10)
    assert "objective/applied_seq_weight_var_stale" not in fresh and "objective/grad_seq_weight_var_fresh" not in stale
    assert stale["objective/applied_seq_weight_var_stale"] == stale["objective/applied_seq_weight_var"] > 0
    assert stale["objective/grad_seq_weight_mean_stale"] == stale["objective/grad_seq_weight_mean"]
    assert stale["entropy"] == pytest.approx(entropy, rel=1e-5)
    assert fresh["entropy"] == pytest.approx(expected[0][1], rel=1e-5)


def test_missing_old_log_probs_with_stale_steps_is_an_error(tmp_path):
    """μ > 1 and TRL passed no π_old: raising beats training with ρ ≡ 1 in silence."""
    trainer = _trainer(tmp_path, "seq-mean-token-mean")
    trainer.model.train()
    trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    batch = {k: v for k, v in trainer._buffered_inputs[0].items() if k != "old_per_token_logps"}
    trainer.current_gradient_accumulation_steps = 2
    with pytest.raises(RuntimeError, match="old_per_token_logps.*steps_per_generation=4 > gradient_accumulation_steps=2"):
        trainer._compute_loss(trainer.model, batch)
    trainer.model.eval()  # eval batches are never reused: the current log-probs are exact there
    trainer._compute_loss(trainer.model, batch)


def test_trl_advantages_use_the_sample_std_of_each_group(tmp_path):
    """Pins what docs/metrics.md says: TRL 1.16's Â = (r − group mean) / (group std with n − 1 + 1e-4)."""
    trainer = _trainer(tmp_path, "seq-mean-token-mean")
    seen = []

    def recorded_reward(prompts, completions, **kwargs):
        r = [float((3 * len(seen) + i) % 5) for i in range(len(completions))]
        seen.extend(r)
        return r

    recorded_reward.__name__ = "recorded_reward"
    trainer.reward_funcs = [recorded_reward]
    trainer.reward_func_names = ["recorded_reward"]
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    out = trainer._generate_and_score_completions(batch)
    G = trainer.num_generations
    r = torch.tensor(seen).view(-1, G)
    centred = r - r.mean(1, keepdim=True)
    sample = (centred / (r.std(1, unbiased=True, keepdim=True) + 1e-4)).flatten()
    population = (centred / (r.std(1, unbiased=False, keepdim=True) + 1e-4)).flatten()
    assert not torch.allclose(sample, population, rtol=1e-3)
    torch.testing.assert_close(out["advantages"].float(), sample, rtol=1e-5, atol=1e-5)


def test_train_dataset_drops_exactly_the_prompts_over_max_prompt_length(tmp_path):
    """The prompts are tokenized in one batched call: each prompt still keeps or drops on its own token count."""
    from sspo_exp.models import tiny
    from sspo_exp.train.run import dataset_rows, prompt_builder, train_dataset

    cfg = small_cfg(tmp_path / "runs", tmp_path / "unused")
    cfg.dataset.digits, cfg.dataset.train_size = 2, 64  # prompts "a+b\n": 4 to 6 characters, one token each
    cfg.trainer.max_prompt_length = 5
    tok = tiny.build_tokenizer()
    build = prompt_builder(cfg)
    expected = [build(r["question"], tok) for r in dataset_rows(cfg.dataset, "train")]
    expected = [p for p in expected if len(p) <= 5]
    assert 0 < len(expected) < 64
    assert train_dataset(cfg, tok)["prompt"] == expected
