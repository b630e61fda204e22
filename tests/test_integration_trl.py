"""MinirlGRPOTrainer (minirl/integrations/trl.py): minirl's methods inside TRL 1.16's GRPOTrainer.

Real TRL training on the tiny warm-started policy and the countdown task, on CPU: two optimizer steps
log minirl's metrics; the loss TRL back-propagates is minirl's `policy_loss` recomputed independently
(a plain HF forward, not TRL's fused head) on the same batch, value and gradient; the method's state
gets one `end_step` per optimizer step; and what cannot run in TRL is refused with a clear error.
"""
import os

import pytest
import torch

pytest.importorskip("trl", reason="TRL is optional: pip install minirl[trl]")
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from minirl.integrations.trl import STATE_FILE, MinirlGRPOTrainer  # noqa: E402
from minirl.methods import LossExtras, get_method  # noqa: E402
from minirl.models import load_policy  # noqa: E402
from minirl.tasks import get_task  # noqa: E402
from minirl.warmstart import default_path  # noqa: E402

WARM_START = default_path("countdown", "smoke")              # minirl/assets/warmstart/countdown-smoke
TASK = get_task("countdown")


def countdown_reward(prompts, completions, index, **_):
    return [TASK.reward(text, TASK.train[i]) for text, i in zip(completions, index)]


def length_shaped_reward(prompts, completions, index, **_):
    """Countdown's reward minus 0.1 per character: groups of random completions still differ."""
    return [r - 0.1 * len(text) for r, text in zip(countdown_reward(prompts, completions, index), completions)]


def make_trainer(tmp_path, method, trainer_cls=MinirlGRPOTrainer, method_settings=None, reward=countdown_reward,
                 **settings):
    """2 optimizer steps; by default 2 accumulation micro-batches of 4 and each batch used twice
    (num_iterations=2), so TRL computes old log-probs and step 2 trains off-policy."""
    model, tokenizer = load_policy(WARM_START)
    data = Dataset.from_dict({"prompt": [e.prompt for e in TASK.train[:16]], "index": list(range(16))})
    config = dict(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], disable_tqdm=True, seed=0,
                  per_device_train_batch_size=4, num_generations=4, gradient_accumulation_steps=2, num_iterations=2,
                  max_completion_length=8, max_steps=2, gradient_checkpointing=False, learning_rate=3e-3,
                  logging_steps=1, save_strategy="no")
    config.update(settings)
    return trainer_cls(model=model, reward_funcs=reward, args=GRPOConfig(**config), train_dataset=data,
                       processing_class=tokenizer, method=method, method_settings=method_settings)


def step_logs(trainer):
    return [row for row in trainer.state.log_history if "loss" in row]


# ---------------------------------------------------------------- (1) end to end
@pytest.mark.parametrize("method, own_field", [("grpo", None), ("clip_cov", "clip_cov/n_detached")])
def test_two_trl_steps_log_minirl_metrics(tmp_path, method, own_field):
    trainer = make_trainer(tmp_path, method, gradient_accumulation_steps=1, num_iterations=1,
                           per_device_train_batch_size=8)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    rows = step_logs(trainer)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        for key in ("entropy", "cov_mean", "cov_top", "clip_frac", "ppo_kl", "pg_loss", own_field or "entropy"):
            assert key in row and row[key] == row[key], key                                  # present, not NaN
        assert 0.0 < row["entropy"] < torch.log(torch.tensor(len(trainer.processing_class))).item()
        assert row["cov_top"] >= row["cov_mean"]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))   # it trained


# ---------------------------------------------------------------- (2) the loss is minirl's
class Recording(MinirlGRPOTrainer):
    """Recomputes every loss independently: a plain HF forward (not TRL's fused LM head), minirl's
    `policy_loss` on those tensors, divided by the accumulation steps. Stores both values, both
    gradients w.r.t. the parameters, and the largest |log r| seen, for the test to compare."""

    records: list

    def _compute_loss(self, model, inputs):
        rng = torch.get_rng_state()                                 # Clip-Cov draws its subset from it
        loss = super()._compute_loss(model, inputs)
        torch.set_rng_state(rng)
        expected, log_ratio, fused_gap = self.recompute(model, inputs)
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        expected_grads = torch.autograd.grad(expected, params)
        self.records.append(dict(loss=loss.item(), expected=expected.item(), grads=grads,
                                 expected_grads=expected_grads, log_ratio=log_ratio, fused_gap=fused_gap,
                                 lengths=inputs["completion_mask"].sum(1).tolist()))
        return loss

    def recompute(self, model, inputs):
        P, completion, mask = inputs["prompt_ids"].size(1), inputs["completion_ids"], inputs["completion_mask"].float()
        logits = model(input_ids=torch.cat([inputs["prompt_ids"], completion], 1),
                       attention_mask=torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)).logits
        logits = logits[:, P - 1:-1].float() / self.args.temperature                # (B, T, V): predicts token t
        logp_all = torch.log_softmax(logits, -1)
        logp = logp_all.gather(-1, completion[..., None])[..., 0]                     # (B, T)
        H = -(logp_all.exp() * logp_all).sum(-1)                                      # (B, T)
        old = inputs.get("old_per_token_logps")
        fused_gap = None
        if old is not None and self.state.global_step == 0:    # step 1: π_old = π_θ, TRL's fused numbers
            fused_gap = ((logp.detach() - old).abs() * mask).max().item()
        old = logp.detach() if old is None else old
        method = get_method(self.minirl_method.name)
        config = method.make_config(self.settings)
        if getattr(config, "loss_scale_factor", 0) is None:
            config.loss_scale_factor = float(self.args.max_completion_length)
        extra = LossExtras(entropy=H, logits=logits, step=self.state.global_step + 1, state=self.method_state)
        adv = inputs["advantages"][:, None] * mask
        loss, _ = method.policy_loss(logp, old, adv, mask, method.default_agg_mode, config, extra)
        log_ratio = ((logp.detach() - old).abs() * mask).max().item()
        return loss / self.args.gradient_accumulation_steps, log_ratio, fused_gap


@pytest.mark.parametrize("method, settings", [
    ("grpo", {}),                                                           # seq-mean-token-mean
    ("clip_cov", {"clip_cov_ratio": "0.05", "clip_cov_lb": "0.0"}),         # random subset, token-mean
    ("entropy_bonus", {"entropy_coeff": "0.1"}),                            # needs entropy, with gradient
    ("lp_reg", {}),                                                         # needs logits: the adapter's own forward
])
def test_adapter_loss_is_minirl_policy_loss(tmp_path, method, settings):
    # temperature 2: ragged completions, so seq-mean and token-mean differ (and T is really divided by)
    trainer = make_trainer(tmp_path, method, Recording, method_settings=settings, temperature=2.0,
                           reward=length_shaped_reward)
    trainer.records, trainer.settings = [], settings
    trainer.train()
    records = trainer.records
    assert len(records) == 4                                             # 2 steps × 2 accumulation micro-batches
    assert all(len(set(r["lengths"])) > 1 for r in records)               # ragged rows in every micro-batch
    assert max(r["log_ratio"] for r in records[2:]) > 1e-3               # step 2 is off-policy: r ≠ 1
    assert max(r["fused_gap"] for r in records[:2]) < 1e-5               # the recompute matches TRL's own log-probs
    for r in records:
        assert r["loss"] == pytest.approx(r["expected"], abs=1e-6)
        for g, e in zip(r["grads"], r["expected_grads"]):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


class AgainstTRL(MinirlGRPOTrainer):
    """Also runs TRL's own `GRPOTrainer._compute_loss` on every batch, for the test to compare."""

    records: list

    def _compute_loss(self, model, inputs):
        ours = super()._compute_loss(model, inputs)
        theirs = GRPOTrainer._compute_loss(self, model, inputs)
        params = [p for p in model.parameters() if p.requires_grad]
        self.records.append((ours.item(), theirs.item(), torch.autograd.grad(ours, params, retain_graph=True),
                             torch.autograd.grad(theirs, params, retain_graph=True)))
        return ours


def test_grpo_with_beta_is_trl_grpo_loss(tmp_path):
    """method="grpo" with TRL's β·k3 KL (ratio-weighted) is TRL's own loss_type="grpo" loss, value and gradient
    (minirl's dual-clip never binds here: it needs r > 3 with A < 0)."""
    trainer = make_trainer(tmp_path, "grpo", AgainstTRL, loss_type="grpo", beta=0.04, temperature=2.0,
                           reward=length_shaped_reward)
    trainer.records = []
    trainer.train()
    assert len(trainer.records) == 4 and all(row["kl_ref"] > 0 for row in step_logs(trainer)[1:])
    for ours, theirs, g_ours, g_theirs in trainer.records:
        assert ours == pytest.approx(theirs, abs=1e-6)
        for a, b in zip(g_ours, g_theirs):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- (3) refusals
def test_unknown_and_batch_level_methods_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown method 'clipcov'; choose one of: grpo, .*clip_cov"):
        make_trainer(tmp_path, "clipcov")
    with pytest.raises(ValueError, match=r"method 'aepo' is batch-level .* cannot run inside TRL"):
        make_trainer(tmp_path, "aepo")
    with pytest.raises(ValueError, match=r"method 'clip_cov' has no setting 'clip_cov_ratoi'"):
        make_trainer(tmp_path, "clip_cov", method_settings={"clip_cov_ratoi": "0.1"})
    with pytest.raises(ValueError, match=r"'kl_ref' needs reference log-probs, which TRL computes only when beta"):
        make_trainer(tmp_path, "kl_ref")
    with pytest.raises(ValueError, match=r"entropy_coef: use method='entropy_bonus'"):
        make_trainer(tmp_path, "grpo", entropy_coef=0.01)


class OldEntropy(MinirlGRPOTrainer):
    """Checks the π_old entropies kept at generation time against a plain forward of the same model."""

    gaps: list
    seen: list

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        P = output["prompt_ids"].size(1)
        with torch.no_grad():
            logits = self.model(input_ids=torch.cat([output["prompt_ids"], output["completion_ids"]], 1),
                                attention_mask=torch.cat([output["prompt_mask"], output["completion_mask"]], 1)).logits
        logp = torch.log_softmax(logits[:, P - 1:-1] / self.args.temperature, -1)
        H = -(logp.exp() * logp).sum(-1)                                                       # (B, T)
        self.gaps.append(((H - output["old_entropy"]).abs() * output["completion_mask"]).max().item())
        return output

    def _compute_loss(self, model, inputs):
        self.seen.append("old_entropy" in inputs)
        return super()._compute_loss(model, inputs)


def test_old_entropy_is_kept_when_trl_reuses_a_batch(tmp_path):
    """ulorl needs π_old's entropy; TRL reuses each batch (num_iterations=2), so it is computed at
    generation time, before the update, and travels with the batch through TRL's shuffle and split."""
    trainer = make_trainer(tmp_path, "ulorl", OldEntropy)
    trainer.gaps, trainer.seen = [], []
    trainer.train()
    assert len(trainer.gaps) == 1 and trainer.gaps[0] < 1e-5                   # one generation, π_old's entropy
    assert trainer.seen == [True] * 4


# ---------------------------------------------------------------- (4) a stateful method
def test_epo_state_ends_once_per_optimizer_step(tmp_path, monkeypatch):
    from minirl.methods.epo import EPOState, phase_weight
    calls, end_step = [], EPOState.end_step
    monkeypatch.setattr(EPOState, "end_step",
                        lambda self, metrics: calls.append(dict(metrics)) or end_step(self, metrics))
    trainer = make_trainer(tmp_path, "epo", method_settings={"entropy_coeff": "0.03"},
                           save_strategy="steps", save_steps=1)
    trainer.train()
    assert [c["step"] for c in calls] == [1, 2]                          # not once per micro-batch (4)
    history = trainer.method_state.history
    assert len(history) == 2 and all(0.0 < h < 5.0 for h in history)
    rows = step_logs(trainer)
    assert "epo/hist_entropy" not in rows[0]                              # step 1 has no history yet
    weights = [row["epo/phase_weight"] for row in rows]
    assert weights == pytest.approx([phase_weight(0), phase_weight(1)])  # e = step − 1, so step counts from 1
    assert rows[1]["epo/hist_entropy"] == pytest.approx(history[0])       # step 2's loss used step 1's end_step
    saved = torch.load(os.path.join(tmp_path, "checkpoint-1", STATE_FILE), weights_only=False)
    assert saved["history"] == history[:1]
