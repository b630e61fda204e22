"""The lab's central claim, checked on a real run: under GRPO the policy's entropy collapses
while pass@1 does not fall (and pass@k, the diversity it pays for, does not rise)."""
from minirl.config import make_config
from minirl.plots import series
from minirl.trainer import train


def test_grpo_entropy_collapses_while_pass_at_1_holds(tmp_path):
    rows = train(make_config("cpu", steps=60, eval_every=60), tmp_path / "grpo", progress=False)
    _, entropy = series(rows, "entropy")
    _, pass1 = series(rows, "pass_at_1")
    _, passk = series(rows, "pass_at_k")
    first, last = sum(entropy[:5]) / 5, sum(entropy[-5:]) / 5
    assert last < 0.75 * first, (first, last)          # entropy falls clearly
    assert pass1[-1] >= pass1[0] - 0.02, pass1           # accuracy does not fall with it
    assert passk[-1] <= passk[0] + 0.02, passk           # the diversity (pass@8) is not gained
