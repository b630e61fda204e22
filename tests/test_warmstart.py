"""The warm start is deterministic and writes a loadable policy with its stats."""
import json

import torch

from minirl.models import load_policy
from minirl.tasks import get_task
from minirl.warmstart import WarmStartConfig, warm_start


def test_warm_start_is_deterministic_and_learns(tmp_path):
    task = get_task("countdown")
    config = WarmStartConfig(steps=40, batch_size=32, lr=3e-3)
    a = warm_start(task, "smoke", out=tmp_path / "a", config=config, progress=False)
    warm_start(task, "smoke", out=tmp_path / "b", config=config, progress=False)
    model_a, _ = load_policy(tmp_path / "a")
    model_b, _ = load_policy(tmp_path / "b")
    for (name, pa), (_, pb) in zip(model_a.state_dict().items(), model_b.state_dict().items()):
        assert torch.equal(pa, pb), name
    stats = json.loads((tmp_path / "a" / "warmstart.json").read_text())
    assert stats["steps"] == 40 and stats["pass_at_1"] == a["pass_at_1"]
    # 40 steps already put the uniform policy (entropy log 98 = 4.58 nats) well below it
    assert stats["eval_entropy"] < 3.0
