"""Any minirl method inside TRL's `GRPOTrainer`, in one line.

    from minirl.integrations.trl import MinirlGRPOTrainer

    trainer = MinirlGRPOTrainer(model=model, reward_funcs=reward, args=GRPOConfig(...), train_dataset=data,
                                method="clip_cov", method_settings={"clip_cov_ratio": "0.02"})

`method` is any loss-level name in `minirl.METHODS` and `method_settings` the `name=value` settings
of its config (strings as on the CLI, or values). Everything else (generation, rewards, group
advantages, optimiser, logging, checkpoints, multi-GPU) stays TRL's. Checked against TRL 1.16.

What is replaced. The adapter overrides `GRPOTrainer._compute_loss(model, inputs)`, TRL's loss code,
and mirrors `minirl.trainer.Trainer._update`: log-probs and entropies come from TRL's own forward
(`_get_per_token_logps_and_entropies`, its fused LM head at `args.temperature`); old log-probs are
TRL's `old_per_token_logps` when TRL computed them (reused or vLLM samples), else the detached
current ones, as TRL does; advantages are TRL's per sequence times the completion mask (B, T);
`loss = METHODS[method].policy_loss(logp, old_logp, adv, mask, loss_agg_mode, config, extra)`, TRL's
names (`per_token_logps`, `old_per_token_logps`, `advantages`, `completion_mask`) translated to
minirl's in `_compute_loss`. So these
TRL settings no longer act: `loss_type` (the method's `default_agg_mode` rules, or pass
`loss_agg_mode=`; note minirl's PPO-clip has verl's dual-clip c = 3 for A < 0, TRL's has none), and
the ones that are refused with an error because a minirl method does their job or cannot:
`importance_sampling_level="sequence"`, `loss_type` cispo/sapo/vespo/luspo, `top_entropy_quantile`
(use `high_entropy_tokens`), `entropy_coef`/`use_adaptive_entropy` (use `entropy_bonus`), `delta`,
`off_policy_mask_threshold`, and vLLM's importance-sampling correction.
`beta > 0` keeps TRL's meaning: β·k3 KL to the reference (× the ratio when
`use_bias_correction_kl`), aggregated like the method's loss, logged as `kl_ref`. For a method that
needs `ref_log_prob` (`kl_ref`), set `beta > 0` so that TRL computes reference log-probs; then the
method's own KL term (its `kl_loss_coef`) is the only one added, and beta's value is not used.

LossExtras, as minirl's trainer fills them: `entropy` (with gradient) when the method needs it;
`logits` (B, T, V, divided by the temperature): TRL's fused head never materialises them, so for
such a method the adapter runs ONE plain forward (`model(..., logits_to_keep=T + 1)`) and takes the
log-probs and entropies from those logits instead (text-only models); `old_entropy`: the detached
current entropy when TRL reuses no batch (the same rule as its old log-probs), else a no-gradient
pass at generation time; `ref_log_prob`: TRL's `ref_per_token_logps`; `step`: the optimizer step
counted from 1 like minirl's (`state.global_step + 1`); `state`: the method's `MethodState`, made
once, whose `end_step(metrics)` runs once per optimizer step (after its last accumulation micro-
batch) with `entropy` = that step's token-weighted mean entropy, and is saved in each checkpoint as
`minirl_method_state.pt`. No rollout means are passed: Clip-Cov/KL-Cov centre their covariance on
the micro-batch, which is the whole rollout when `per_device_train_batch_size` holds the
generation batch (steps_per_generation = gradient_accumulation_steps = 1).

Loss scaling. Each micro-batch's loss is the method's aggregate over that micro-batch divided by
`gradient_accumulation_steps` (TRL's grpo/bnpo/dr_grpo convention; HF's own scaling is off in TRL),
so a token-mean here is TRL's `bnpo`, not its `dapo` (which divides by the generation batch's token
count). Across processes DDP averages gradients, i.e. the mean of per-process losses. minirl's own
trainer instead takes one optimizer step per mini-batch; with gradient_accumulation_steps = 1 the
two coincide. `loss_scale_factor` (L of seq-mean-token-sum-norm), when the method leaves it None,
is `max_completion_length`, as TRL's dr_grpo.

Metrics, added to TRL's logs (averaged over its logging window): `entropy` (TRL's name and
meaning), `cov_mean`/`cov_top` (`minirl.diagnostics.covariance_summary` of old log-probs and
advantages), the method's update metrics under their bare names (`clip_frac`, `ppo_kl`, `pg_loss`,
...) and its own fields under `<method>/<name>`, as in minirl's metrics.jsonl.

gradient_checkpointing. TRL's GRPOConfig turns it on by default. It changes no number here, only
speed and memory: set `gradient_checkpointing=False` for minirl's tiny CPU models (it only adds a
second forward) and keep it for multi-billion-parameter models. Methods that need `logits` hold a
(B, T, V) tensor that checkpointing does not shrink: lower `per_device_train_batch_size` instead.
"""
from __future__ import annotations

import os
from collections import defaultdict

import torch
from trl import GRPOTrainer
from trl.models.utils import disable_gradient_checkpointing

from ..checkpoints import load_plain
from ..core import AGG_MODES, aggregate_loss, kl_penalty, masked_mean
from ..diagnostics import covariance_summary, token_entropy
from ..methods import LossExtras, get_method
from ..metrics import metric_name

VISION_KEYS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
               "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")
STATE_FILE = "minirl_method_state.pt"


class MinirlGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` whose loss is minirl's `method` (see the module docstring)."""

    def __init__(self, *args, method: str = "grpo", method_settings: dict | None = None,
                 loss_agg_mode: str | None = None, **kwargs):
        self.minirl_method = get_method(method)               # unknown names fail here, listing the choices
        if self.minirl_method.transform_batch is not None:
            raise ValueError(f"method {method!r} is batch-level (it changes what is trained on, with its own "
                             "sampling) and cannot run inside TRL's GRPOTrainer; use minirl's Trainer "
                             "(python -m minirl train --method ...)")
        self.method_config = self.minirl_method.make_config(method_settings)
        self.loss_agg_mode = loss_agg_mode or self.minirl_method.default_agg_mode
        if self.loss_agg_mode not in AGG_MODES:
            raise ValueError(f"unknown loss_agg_mode {self.loss_agg_mode!r}; choose one of: {', '.join(AGG_MODES)}")
        super().__init__(*args, **kwargs)
        _check_supported(self.args, self.minirl_method.name, self.minirl_method.needs)
        if getattr(self.method_config, "loss_scale_factor", 0) is None:
            self.method_config.loss_scale_factor = float(self.max_completion_length)
        state_cls = self.minirl_method.state_cls
        self.method_state = state_cls() if state_cls else None
        self._window = defaultdict(float)                       # sums over this optimizer step's micro-batches

    # ------------------------------------------------------------------ the loss
    def _compute_loss(self, model, inputs):
        needs, mode = self.minirl_method.needs, "train" if self.model.training else "eval"
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)                    # tool output is not trained
        logp, entropy, logits, aux_loss = self._forward(model, inputs)                 # (B, T), (B, T), (B, T, V)
        mask = mask.to(logp.dtype)
        old_logp = inputs.get("old_per_token_logps")
        old_logp = logp.detach() if old_logp is None else old_logp
        adv = inputs["advantages"]
        adv = (adv[:, None] if adv.dim() == 1 else adv) * mask                          # (B, T), 0 on padding
        ref_log_prob = inputs.get("ref_per_token_logps")
        extra = LossExtras(
            entropy=entropy if "entropy" in needs else None,
            old_entropy=self._old_entropy(inputs, entropy) if "old_entropy" in needs else None,
            logits=logits if "logits" in needs else None,
            ref_log_prob=ref_log_prob if "ref_log_prob" in needs else None,
            step=self.state.global_step + 1, state=self.method_state)
        loss, metrics = self.minirl_method.policy_loss(logp, old_logp, adv, mask, self.loss_agg_mode,
                                                       self.method_config, extra)
        if self.beta != 0.0 and "ref_log_prob" not in needs:
            kl = kl_penalty(logp, ref_log_prob, "k3")                                   # TRL's estimator
            if self.args.use_bias_correction_kl:
                kl = kl * torch.exp(logp - old_logp)
            loss = loss + self.beta * aggregate_loss(kl, mask, self.loss_agg_mode,
                                                     getattr(self.method_config, "loss_scale_factor", None))
            metrics["kl_ref"] = masked_mean(kl.detach(), mask).item()
        normalizer = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        loss = loss / normalizer
        if aux_loss is not None:                                                        # MoE router loss, as TRL
            loss = loss + self.router_aux_loss_coef * aux_loss / normalizer
        self._log_minirl(mode, metrics, entropy.detach(), mask, old_logp, adv)
        return loss

    def _forward(self, model, inputs):
        """(logp, entropy, logits or None, aux_loss or None) of the completion tokens."""
        prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        T = completion_ids.size(1)
        if "logits" not in self.minirl_method.needs:
            logp, entropy, aux_loss = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, T, compute_entropy=True, compute_aux_loss=self.aux_loss_enabled,
                **{key: inputs.get(key) for key in VISION_KEYS})
            return logp, entropy, None, aux_loss
        if any(inputs.get(key) is not None for key in VISION_KEYS) or self.aux_loss_enabled:
            raise ValueError(f"method {self.minirl_method.name!r} needs full logits; the adapter computes them "
                             "for text-only models without MoE router losses")
        with self.accelerator.autocast():
            out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=T + 1, use_cache=False)
        logits = out.logits[:, :-1].float() / self.temperature                  # (B, T, V): row t predicts token t
        logp = torch.log_softmax(logits, dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
        return logp, token_entropy(logits), logits, None

    def _old_entropy(self, inputs, entropy):
        """Entropy under π_old: TRL's rule for old log-probs applied to entropies."""
        return inputs["old_entropy"] if "old_entropy" in inputs else entropy.detach()

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if "old_entropy" in self.minirl_method.needs and "old_per_token_logps" in output:
            # TRL will reuse this batch after an update: keep π_old's entropy now (one no-gradient pass)
            input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
            attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
            with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                _, output["old_entropy"], _ = self._get_per_token_logps_and_entropies(
                    self.model, input_ids, attention_mask, output["completion_ids"].size(1),
                    batch_size=self.args.per_device_train_batch_size, compute_entropy=True,
                    **{key: output.get(key) for key in VISION_KEYS})
        return output

    # ------------------------------------------------------------------ metrics and the method's state
    def _log_minirl(self, mode, metrics, entropy, mask, old_logp, adv):
        cov_mean, cov_top = covariance_summary(old_logp, adv, mask)
        values = {"cov_mean": cov_mean, "cov_top": cov_top,
                  **{metric_name(self.minirl_method.name, k): float(v) for k, v in metrics.items()}}
        totals = torch.tensor([(entropy * mask).sum().item(), mask.sum().item(), *values.values()],
                              device=mask.device, dtype=torch.float64)
        gathered = self.accelerator.gather(totals).view(-1, totals.numel())            # (processes, 2 + K)
        H_sum, n_tokens = gathered[:, 0].sum().item(), gathered[:, 1].sum().item()
        self._metrics[mode]["entropy"].append(H_sum / max(n_tokens, 1.0))
        for key, value in zip(values, gathered[:, 2:].mean(dim=0).tolist()):
            self._metrics[mode][key].append(value)
        if mode == "train":
            self._window["entropy_sum"] += H_sum
            self._window["n_tokens"] += n_tokens
            self._window["n_micro"] += 1
            for key, value in zip(values, gathered[:, 2:].mean(dim=0).tolist()):
                self._window[key] += value

    def training_step(self, model, inputs, num_items_in_batch):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients:                     # the last micro-batch of this optimizer step
            self._end_step()
        return loss

    def _end_step(self):
        """Once per optimizer step: the method's `end_step(metrics)`, as minirl's trainer calls it."""
        window, self._window = self._window, defaultdict(float)
        if self.method_state is None or not window["n_micro"]:
            return
        n = window.pop("n_micro")
        metrics = {key: value / n for key, value in window.items() if key not in ("entropy_sum", "n_tokens")}
        metrics.update(step=self.state.global_step + 1, entropy=window["entropy_sum"] / max(window["n_tokens"], 1.0))
        for key, value in self.method_state.end_step(metrics).items():
            self._metrics["train"][f"{self.minirl_method.name}/{key}"].append(value)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.method_state is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            torch.save(self.method_state.state_dict(), os.path.join(folder, STATE_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, STATE_FILE) if checkpoint else None
        if self.method_state is not None and path and os.path.exists(path):
            self.method_state.load_state_dict(load_plain(path))       # tensors and plain values only


def _check_supported(args, method: str, needs: tuple) -> None:
    """Refuse the GRPOConfig settings whose effect the adapter's loss would silently drop."""
    refusals = [
        (args.loss_type in ("cispo", "sapo", "vespo", "luspo"),
         f"loss_type={args.loss_type!r} is its own objective; minirl's methods are PPO-clip variants"),
        (args.importance_sampling_level != "token", "importance_sampling_level='sequence' is not supported"),
        (args.top_entropy_quantile < 1.0, "top_entropy_quantile: use method='high_entropy_tokens'"),
        (args.entropy_coef != 0.0 or args.use_adaptive_entropy, "entropy_coef: use method='entropy_bonus'"),
        (args.delta is not None, "delta (two-sided clipping) is not supported"),
        (args.off_policy_mask_threshold is not None, "off_policy_mask_threshold is not supported"),
        (args.use_vllm and args.vllm_importance_sampling_correction,
         "vLLM importance-sampling correction is not supported; set vllm_importance_sampling_correction=False"),
        ("ref_log_prob" in needs and args.beta == 0.0,
         f"method {method!r} needs reference log-probs, which TRL computes only when beta != 0: set "
         "GRPOConfig(beta=...) (it switches the reference on; the KL weight is the method's own)"),
    ]
    for refused, message in refusals:
        if refused:
            raise ValueError(f"MinirlGRPOTrainer(method={method!r}): {message}")
