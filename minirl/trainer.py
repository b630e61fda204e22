"""The instrumented GRPO-style trainer: rollout → reward → advantage → loss → update, one
step at a time, every quantity the entropy theory talks about written to `metrics.jsonl`.

    for step in 1..S:
        sample G completions of P prompts with π_old = π_θ          (rollout.sample)
        R_i = task.reward(o_i);  A_i = group-normalised R_i         (core.group_advantages)
        log Cov(logp, A), entropy                                   (diagnostics)
        for each of `num_mini_batches` shuffled mini-batches of whole groups:
            logp = log π_θ(o), each prompt run once for its group   (rollout.shared_prompt_forward)
            loss = METHODS[method].policy_loss(logp, old_logp, adv, mask, agg_mode, config, extra)
            (+ β·KL(π_θ‖π_ref)) ; AdamW step with gradient clipping

`Trainer.train_step` names these stages in order; sampling, rewards and a method's batch transform
are in `minirl.step`, the update and the step's metrics here.

Randomness is re-seeded from (seed, step) at the start of every step, so a resumed run
draws exactly the random numbers the uninterrupted run would have drawn.

A step whose advantages are all zero carries no signal: its optimizer steps are skipped
(`skipped_update: 1` in its row), so the policy stays exactly as it was, unless the run has a term
that acts without advantages (`kl_coef > 0`, or a method's `acts_without_advantages`, e.g. an
entropy bonus). A loss, gradient norm or weight that is not finite stops the run at that step
(`Diverged`), before anything of that step is saved: the last checkpoint stays the last good one.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint_file, save_atomic
from .config import EVAL_SEED_OFFSET, TrainConfig, step_seed, value_before_field
from .core import aggregate_loss, aggregation_count, group_advantages, kl_penalty, masked_mean
from .diagnostics import covariance_summary, token_entropy
from .evaluation import evaluate
from .hf import adapter_state, is_lora, load_adapter_state, load_hf_policy, reference_policy
from .law_check import LawCheck
from .methods import LossExtras, PolicyLossConfig, get_method
from .metrics import METRIC_KEYS, METRICS_SCHEMA, metric_name
from .models import load_policy
from .rollout import Rollout, distinct_rows, gather_log_prob, response_logits, score
from .run_folder import CHECKPOINT, CONFIG, METRICS, claim, history_up_to, write_atomic
from .step import Batch, StepSampler, collect, transform
from .tasks import Task, get_task
from .warmstart import default_path


class Diverged(ValueError):
    """Training produced a loss, gradient or weight that is not finite; the message names the step."""


class Trainer:
    def __init__(self, config: TrainConfig, out: str | Path | None = None, task: Task | None = None,
                 model=None, tokenizer=None):
        self.config = config.validate(check_task=task is None)     # a config built directly is checked too
        self.method = get_method(config.method)
        self.method_config = self.method.make_config(config.method_settings)
        self.agg_mode = config.loss_agg_mode or self.method.default_agg_mode
        if model is None:
            model, tokenizer = _load_policy(config)
        self.model, self.tokenizer = model, tokenizer
        self.device = next(model.parameters()).device
        self.task = task or get_task(config.task, tokenizer=tokenizer)
        _check(len(self.task.train) > 0 and len(self.task.eval) > 0,
               f"task {self.task.name!r} has {len(self.task.train)} training and {len(self.task.eval)} eval prompts; "
               "it needs at least one of each")
        self.loss_scale_factor = None
        """L_const of seq-mean-token-sum-norm, the method's and the KL term's: by default the longest
        response the task allows, a constant (mini-batches are trimmed to their longest response)."""
        if isinstance(self.method_config, PolicyLossConfig):
            if self.method_config.loss_scale_factor is None:
                self.method_config.loss_scale_factor = float(self.task.max_new_tokens)
            self.loss_scale_factor = self.method_config.loss_scale_factor
        self.needs_ref = config.kl_coef > 0 or "ref_log_prob" in self.method.needs
        # the reference policy: a frozen copy, or, for a LoRA model, the same model with the adapter off
        self.ref_model = (copy.deepcopy(model).eval().requires_grad_(False)
                          if self.needs_ref and not is_lora(model) else None)
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                           weight_decay=config.weight_decay, fused=config.fused_adamw or None)
        self.method_state = self.method.state_cls() if self.method.state_cls else None
        self.out = Path(out) if out else None
        self.step, self.wall_s, self.prev_entropy = 0, 0.0, None
        self.checkpoint_step: int | None = None  # the step of the checkpoint in `out`, once one is written or loaded

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict:
        """One GRPO step: sample → reward → advantage → the method's batch transform → update → log.
        A method changes only the stages it declares (methods/registry.py)."""
        c, start = self.config, time.time()
        self.step += 1
        torch.manual_seed(step_seed(c.seed, self.step))
        self.model.eval()
        sampler = self.sampler()
        batch = collect(sampler, self.task, c, self.step)                                # sample, reward
        self._check_finite("reward", batch.rewards,
                           "the task's reward function returned it; a reward must be a finite number")
        adv, all_equal = group_advantages(batch.rewards, c.group_size, c.scale_adv_by_std)    # advantage
        rollout, adv, batch_metrics = transform(self.method, self.method_config, batch, adv, sampler)   # method's
        adv_tok = (adv[:, None] if adv.dim() == 1 else adv) * rollout.response_mask          # (B, T)
        self._check_finite("advantage", adv_tok, f"method {self.method.name!r} made it from the rewards")
        update = self.update(rollout, adv_tok)                                                # update
        return self._step_metrics(batch, rollout, adv_tok, all_equal, update, batch_metrics,
                                  sampler.tokens_sampled, start)                          # log

    def sampler(self) -> StepSampler:
        """The step's sampler: the task's, or the method's own (`sample_groups`)."""
        return StepSampler(self.model, self.tokenizer, self.task, self.config, self.method, self.method_config,
                           self.method_state, self.step)

    def update(self, rollout: Rollout, adv_tok: torch.Tensor) -> dict:
        """The update stage: the method's loss (+ β·KL to the reference) over `ppo_epochs` passes
        (`_update`), its optimizer steps skipped when the batch carries no signal; with
        `law_diagnostics`, the entropy law checked on this update (law_check.py); with
        `track_entropy_change`, the entropy change of the trained batch."""
        c = self.config
        ref_log_prob = self._ref_log_prob(rollout) if self.needs_ref else None
        law = LawCheck(self.model, rollout, c.temperature, c.micro_batch_size, adv_tok) if c.law_diagnostics else None
        self.model.train()
        skip = not adv_tok.any() and not self._acts_without_advantages()
        update = self._update(rollout, adv_tok, ref_log_prob, step_optimizer=not skip)
        if law is not None:
            update.update(law.finish(self.model))
        if skip:
            update["skipped_update"] = 1
        if c.track_entropy_change:
            update["batch_entropy_change"] = (self._entropy_after(rollout)
                                              - masked_mean(rollout.entropy, rollout.response_mask).item())
        return update

    def _step_metrics(self, batch: Batch, rollout: Rollout, adv_tok: torch.Tensor, all_equal: torch.Tensor,
                      update: dict, batch_metrics: dict, tokens_sampled: int, start: float) -> dict:
        """The step's row of metrics.jsonl: entropy, reward and length of the policy's own samples,
        the update's and the method's metrics, Cov(logp, A) of the trained batch; then the method
        state's end of step and, every `eval_every` steps, the evaluation."""
        c, sampled = self.config, batch.rollout
        entropy = masked_mean(sampled.entropy, sampled.response_mask).item()
        cov_mean, cov_top = covariance_summary(rollout.old_log_prob, adv_tok, rollout.response_mask)
        n_tokens = sampled.response_mask.sum().item()
        step_s = time.time() - start
        metrics = {
            "step": self.step, "entropy": entropy, "reward": batch.rewards.mean().item(),
            "accuracy": (batch.rewards >= 1.0).float().mean().item(), "response_len": n_tokens / len(sampled),
            **update, **{metric_name(self.method.name, k): v for k, v in batch_metrics.items()},
            "cov_mean": cov_mean, "cov_top": cov_top,
            "entropy_delta": None if self.prev_entropy is None else entropy - self.prev_entropy,
            "frac_all_equal_groups": all_equal.float().mean().item(),
            **({"gen_batches": batch.gen_batches} if c.dynamic_sampling else {}),
            "tokens_sampled": tokens_sampled, "tokens_per_s": n_tokens / step_s, "step_s": step_s,
        }
        self.prev_entropy = entropy
        if self.method_state is not None:
            extra_metrics = self.method_state.end_step(metrics)
            metrics.update({metric_name(self.method.name, k): v for k, v in extra_metrics.items()})
        if self.step % c.eval_every == 0 or self.step == c.steps:
            metrics.update(self.evaluate())
        self.wall_s += time.time() - start
        metrics["wall_s"] = self.wall_s
        return metrics

    def _acts_without_advantages(self) -> bool:
        """Whether the loss has a term that moves the policy when every advantage is zero: the KL
        to the reference (kl_coef > 0) or a method's own (its `acts_without_advantages`)."""
        acts = self.method.acts_without_advantages
        return self.config.kl_coef > 0 or bool(acts and acts(self.method_config))

    def _update(self, rollout: Rollout, adv_tok: torch.Tensor, ref_log_prob, step_optimizer: bool = True) -> dict:
        """`ppo_epochs` passes of `num_mini_batches` optimizer steps over shuffled groups (shuffled
        rows with `share_prompt_update=False`). With `micro_batch_size`, a mini-batch's gradient is
        accumulated over micro-batches, each loss weighted by its share of what the aggregation
        averages over (tokens or sequences), so the sum is the mini-batch's loss; a method's own batch
        statistics are then per micro-batch.
        `step_optimizer=False` computes losses and gradients (and their metrics) but leaves the
        weights and the optimizer as they are (a step without signal)."""
        c = self.config
        sums: dict[str, float] = {}
        n_updates = 0
        batch_means = dict(batch_mean_log_prob=masked_mean(rollout.old_log_prob, rollout.response_mask).item(),
                           batch_mean_advantage=masked_mean(adv_tok, rollout.response_mask).item())
        for _ in range(c.ppo_epochs):
            order = self._group_order(rollout) if c.share_prompt_update else torch.randperm(len(rollout))
            for index in order.chunk(c.num_mini_batches):
                parts = index.split(c.micro_batch_size) if c.micro_batch_size else [index]
                total = aggregation_count(rollout.response_mask[index], self.agg_mode)
                self.optimizer.zero_grad(set_to_none=True)
                metrics: dict[str, float] = {}
                for part in parts:
                    loss, part_metrics = self._loss(rollout, part, adv_tok, ref_log_prob, batch_means)
                    self._check_finite("loss", loss.detach())
                    count = aggregation_count(rollout.response_mask[part], self.agg_mode)
                    weight = count / total if total else 1.0                 # total None: the mode sums
                    (loss * weight).backward()
                    # pg_loss adds up like the loss; other metrics are averaged by tokens
                    share = rollout.response_mask[part].sum().item() / rollout.response_mask[index].sum().clamp(min=1).item()
                    for key, value in part_metrics.items():
                        metrics[key] = metrics.get(key, 0.0) + (weight if key == "pg_loss" else share) * value
                metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm).item()
                self._check_finite("gradient norm", torch.tensor(metrics["grad_norm"]))
                if step_optimizer:
                    self._optimizer_step()
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                n_updates += 1
        for p in self.model.parameters():
            if p.requires_grad:
                self._check_finite("weight", p.detach())
        return {metric_name(self.method.name, k): v / n_updates for k, v in sums.items()}

    @staticmethod
    def _group_order(rollout: Rollout) -> torch.Tensor:
        """A shuffled order of the rows in which the rows of one prompt stay together."""
        _, row_of = distinct_rows(rollout.prompt_ids)
        return torch.argsort(torch.randperm(int(row_of.max()) + 1)[row_of], stable=True)

    def _optimizer_step(self) -> None:
        """One AdamW step; an update too large for float32 (lr / (1 − β1) overflows) is a divergence."""
        try:
            self.optimizer.step()
        except RuntimeError as err:
            if "overflow" not in str(err):
                raise
            self._check_finite("update", torch.tensor([float("inf")]))

    def _check_finite(self, what: str, values: torch.Tensor, cause: str | None = None) -> None:
        """Stop the run (Diverged) when `values` hold a NaN or an infinity, naming the step, what was
        not finite, its likely cause, and the checkpoint that stays the last good one."""
        if bool(torch.isfinite(values).all()):
            return
        bad = values[~torch.isfinite(values)]
        cause = cause or (f"the learning rate lr={self.config.lr:g} is likely too high for this policy, or a "
                          "method setting blows the loss up; start a new run with a smaller lr")
        kept = (f"{self.out / CHECKPOINT} (step {self.checkpoint_step}) is kept as the last good checkpoint"
                if self.out and self.checkpoint_step is not None else "no checkpoint of this run was written")
        raise Diverged(f"training diverged at step {self.step}: {bad.numel()} {what} value(s) are {bad[0].item()} "
                       f"({cause}); nothing of step {self.step} was saved, {kept}")

    def _loss(self, rollout: Rollout, index: torch.Tensor, adv_tok: torch.Tensor, ref_log_prob,
              batch_means: dict) -> tuple[torch.Tensor, dict]:
        """The method's loss (+ β·KL) on the rows `index`, trimmed to their longest response."""
        c = self.config
        mb = rollout.select(index)
        T = int(mb.response_mask.nonzero()[:, 1].max()) + 1 if mb.response_mask.any() else 1   # trim padding
        mask, old_logp, adv = mb.response_mask[:, :T], mb.old_log_prob[:, :T], adv_tok[index, :T]
        logits = response_logits(self.model, mb.prompt_ids, mb.prompt_mask, mb.response_ids[:, :T], mask,
                                 c.temperature, c.share_prompt_update)
        logp = gather_log_prob(logits, mb.response_ids[:, :T])
        extra = LossExtras(
            entropy=token_entropy(logits) if "entropy" in self.method.needs else None,
            old_entropy=mb.entropy[:, :T] if "old_entropy" in self.method.needs else None,
            logits=logits if "logits" in self.method.needs else None,
            ref_log_prob=None if ref_log_prob is None else ref_log_prob[index, :T], step=self.step,
            rows=index, state=self.method_state, **batch_means)
        loss, metrics = self.method.policy_loss(logp, old_logp, adv, mask, self.agg_mode, self.method_config, extra)
        if c.kl_coef > 0:
            kl = kl_penalty(logp, extra.ref_log_prob, c.kl_estimator)
            loss = loss + c.kl_coef * aggregate_loss(kl, mask, self.agg_mode, self.loss_scale_factor)
            metrics["kl_ref"] = masked_mean(kl, mask).item()
        return loss, metrics

    def _score(self, model, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, entropies) of the rollout's tokens under `model`, micro-batch by micro-batch, each
        prompt run once with `share_prompt_update`."""
        return score(model, rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask,
                     self.config.temperature, self.config.micro_batch_size, self.config.share_prompt_update)

    @torch.no_grad()
    def _entropy_after(self, rollout: Rollout) -> float:
        """Mean entropy of the rollout's positions under the updated policy."""
        return masked_mean(self._score(self.model, rollout)[1], rollout.response_mask).item()

    @torch.no_grad()
    def _ref_log_prob(self, rollout: Rollout) -> torch.Tensor:
        model = self.ref_model if self.ref_model is not None else self.model
        with reference_policy(model):
            return self._score(model, rollout)[0]

    def evaluate(self) -> dict:
        c = self.config
        return evaluate(self.model, self.tokenizer, self.task, n_samples=c.eval_samples, k=c.eval_k,
                        temperature=c.temperature, top_p=c.top_p, seed=step_seed(c.seed, EVAL_SEED_OFFSET + self.step),
                        max_prompts=c.eval_prompts)

    # ------------------------------------------------------------------ the run
    def run(self, progress: bool = True) -> list[dict]:
        """Train to `config.steps`, writing metrics.jsonl and checkpoints under `out`. A fresh
        trainer refuses an `out` that holds a run (resume it with `train(..., resume=True)`); one
        that holds only the rows of a run stopped before its first checkpoint starts again."""
        c = self.config
        history = []
        if self.step == 0:
            if self.out:
                claim(self.out, resume=False)
            start = time.time()
            evaluation = self.evaluate()
            self.wall_s += time.time() - start
            history.append(self._log({"step": 0, **evaluation, "wall_s": self.wall_s}))
        bar = tqdm(total=c.steps, initial=self.step, desc=f"{c.method} {c.task}/{c.profile}", disable=not progress)
        while self.step < c.steps:
            metrics = self._log(self.train_step())
            history.append(metrics)
            bar.update(1)
            bar.set_postfix(H=f"{metrics['entropy']:.3f}", R=f"{metrics['reward']:.2f}")
            if self.out and (self.step % c.checkpoint_every == 0 or self.step == c.steps):
                self.save_checkpoint()
        bar.close()
        self.model.eval()           # ready to sample (with gradient checkpointing, train mode turns the KV cache off)
        return history

    def _log(self, metrics: dict) -> dict:
        row = {key: metrics.get(key) for key in METRIC_KEYS}
        row.update({k: v for k, v in metrics.items() if k not in row})
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / METRICS, "a") as f:          # a kill may cut this line: a resume drops it
                f.write(json.dumps(row) + "\n")
        return row

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Model (for a LoRA model: the adapter only), optimizer and progress, written atomically
        to out/checkpoint.pt as tensors and plain values (loadable with weights_only=True)."""
        path = self.out / CHECKPOINT
        weights = {"adapter": adapter_state(self.model)} if is_lora(self.model) else {"model": self.model.state_dict()}
        state = {"schema": METRICS_SCHEMA, "config": self.config.to_dict(), "step": self.step,
                 "wall_s": self.wall_s, "prev_entropy": self.prev_entropy,
                 **weights, "optimizer": self.optimizer.state_dict(),
                 "method_state": self.method_state.state_dict() if self.method_state else None}
        save_atomic(state, path)
        self.checkpoint_step = self.step
        return path

    def load_checkpoint(self) -> int:
        """Restore the last checkpoint and drop metrics logged after it. Returns its step.
        Refuses other settings, a `steps` below the checkpoint's, and a metrics.jsonl that does
        not run from step 0 to the checkpoint's (run_folder.history_up_to)."""
        path = self.out / CHECKPOINT
        state = load_checkpoint_file(path, map_location=self.device)
        ours = {k: v for k, v in self.config.to_dict().items() if k != "steps"}
        saved = {k: state["config"].get(k, value_before_field(k)) for k in ours}   # a field added since: its old value
        diff = sorted(k for k in ours if saved[k] != ours[k])
        _check(not diff, f"cannot resume {self.out}: settings differ from the saved run: "
               + ", ".join(f"{k} (saved {saved[k]!r}, now {ours[k]!r})" for k in diff))
        _check(self.config.steps >= state["step"],
               f"cannot resume {self.out} with steps={self.config.steps}: its checkpoint is already at step "
               f"{state['step']}; give steps ≥ {state['step']} (or leave --steps out to finish the saved run)")
        kept = history_up_to(self.out / METRICS, state["step"])
        try:
            self._restore(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"cannot resume from {path}: its contents do not fit this run "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})") from None
        write_atomic(self.out / METRICS, "".join(line + "\n" for line in kept))
        self.checkpoint_step = self.step
        return self.step

    def _restore(self, state: dict) -> None:
        """Weights, optimizer, method state and progress from a checkpoint's dict."""
        if is_lora(self.model):
            load_adapter_state(self.model, state["adapter"])
        else:
            self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.method_state is not None:
            self.method_state.load_state_dict(state["method_state"])
        self.step, self.wall_s, self.prev_entropy = state["step"], state["wall_s"], state["prev_entropy"]


def _load_policy(config: TrainConfig):
    """(model, tokenizer) of the config's backend."""
    if config.backend == "hf":
        _check(config.init is not None, "backend 'hf' needs init = a hub name or a local model folder")
        return load_hf_policy(config.init, load_in_4bit=config.load_in_4bit, lora_r=config.lora_r,
                              lora_alpha=config.lora_alpha, gradient_checkpointing=config.gradient_checkpointing,
                              seed=config.seed)
    return load_policy(config.init or default_path(config.task, config.profile))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def train(config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> list[dict]:
    """Run (or, with `resume`, continue) a training run whose files live in `out`.

    A folder that already holds a run is never overwritten: pass `resume=True` to continue
    it from its last checkpoint, or choose another folder. A folder whose run stopped before its
    first checkpoint starts again from step 0, resumed or not (run_folder.claim).
    """
    out = Path(out)
    config.validate()
    if claim(out, resume) == "restart":
        resume = False
    trainer = Trainer(config, out=out)
    if resume:
        trainer.load_checkpoint()
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / CONFIG, json.dumps({"schema": METRICS_SCHEMA, **config.to_dict()}, indent=2))
    return trainer.run(progress=progress)
