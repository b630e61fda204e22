"""The trainer is reproducible, resumable, refuses to overwrite a run, and logs every metric."""
import json

import pytest

from minirl.config import make_config
from minirl.trainer import METRIC_KEYS, TIME_KEYS, Trainer, read_metrics, train

STEPS = 6


def smoke(**overrides):
    settings = dict(steps=STEPS, prompts_per_step=8, eval_every=3, eval_prompts=16, checkpoint_every=3)
    return make_config("smoke", **{**settings, **overrides})


def without_time(rows):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in rows]


def test_same_seed_twice_gives_identical_metrics(tmp_path):
    a = train(smoke(), tmp_path / "a", progress=False)
    b = train(smoke(), tmp_path / "b", progress=False)
    assert without_time(a) == without_time(b)
    c = train(smoke(seed=1), tmp_path / "c", progress=False)
    assert without_time(a) != without_time(c)


def test_resume_equals_uninterrupted(tmp_path):
    full = train(smoke(), tmp_path / "full", progress=False)
    # a run "killed" after its step-3 checkpoint: it went on to step 5, logged, then died
    trainer = Trainer(smoke(), out=tmp_path / "killed")
    real_step = trainer.train_step

    def dies_in_step_6():
        if trainer.step == 5:
            raise KeyboardInterrupt
        return real_step()
    trainer.train_step = dies_in_step_6
    with pytest.raises(KeyboardInterrupt):
        trainer.run(progress=False)
    rows = read_metrics(tmp_path / "killed")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    resumed = train(smoke(), tmp_path / "killed", resume=True, progress=False)
    assert resumed[0]["step"] == 4                      # restarted from the step-3 checkpoint
    assert without_time(read_metrics(tmp_path / "killed")) == without_time(full)


def test_a_run_folder_is_never_overwritten(tmp_path):
    train(smoke(steps=1), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(smoke(steps=1), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(smoke(steps=1), tmp_path / "empty", resume=True, progress=False)


def test_resume_refuses_changed_settings(tmp_path):
    train(smoke(steps=3), tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(smoke(steps=4, lr=1e-3), tmp_path / "run", resume=True, progress=False)


def test_metrics_file_has_every_key_and_config(tmp_path):
    train(smoke(steps=3, kl_coef=0.1, track_entropy_change=True), tmp_path / "run", progress=False)
    rows = read_metrics(tmp_path / "run")
    assert all(set(METRIC_KEYS) <= set(r) for r in rows)
    step3 = rows[-1]
    for key in ("entropy", "reward", "accuracy", "pass_at_1", "pass_at_k", "response_len", "clip_frac",
                "ppo_kl", "kl_ref", "grad_norm", "cov_mean", "cov_top", "entropy_delta",
                "batch_entropy_change", "frac_all_equal_groups", "tokens_per_s", "wall_s"):
        assert step3[key] is not None, key
    assert 0 < step3["entropy"] < 5 and 0 <= step3["pass_at_1"] <= step3["pass_at_k"] <= 1
    assert step3["kl_ref"] >= 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["kl_coef"] == 0.1 and saved["method"] == "grpo"


def test_every_aggregation_mode_trains(tmp_path):
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        rows = train(smoke(steps=1, loss_agg_mode=mode), tmp_path / mode, progress=False)
        assert rows[-1]["grad_norm"] > 0


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="num_mini_batches=5 must divide"):
        Trainer(smoke(num_mini_batches=5))
    with pytest.raises(ValueError, match="choose one of: token-mean"):
        Trainer(smoke(loss_agg_mode="mean"))
