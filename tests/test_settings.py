"""One address per setting: every method setting of every registered method is reachable from
`--set` and from a grid, a name that is both a TrainConfig field and a method setting is refused
until it is qualified (train.NAME or METHOD.NAME), and kl_ref's documented estimators pass the
config's own check."""
import dataclasses

import pytest

from minirl.cli import build_parser, config_from_args, main
from minirl.config import TrainConfig, make_config
from minirl.grid import GridError, expand
from minirl.methods import METHODS, get_method

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def changed_value(method: str, field: dataclasses.Field) -> tuple[str, object]:
    """(the string a user writes, the value the method's config must then hold), different from the
    default where the type allows it (strings keep their default: the method checks them at run time)."""
    default = getattr(get_method(method).config_cls(), field.name)
    if field.name == "kl_estimator":
        return "k1+", "k1+"
    if isinstance(default, bool):
        return str(not default).lower(), not default
    if isinstance(default, int):
        return str(default + 1), default + 1
    if isinstance(default, float):
        return str(default + 0.5), default + 0.5
    if default is None:
        return "3", 3
    return default, default


def every_setting():
    return [(m, f) for m in METHODS for f in dataclasses.fields(METHODS[m].config_cls)]


def train_args(*argv):
    return config_from_args(build_parser().parse_args(["train", "--profile", "smoke", "--out", "unused", *argv]))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_setting_is_reachable_from_set(method):
    fields = dataclasses.fields(METHODS[method].config_cls)
    qualified = [f"--set={method}.{f.name}={changed_value(method, f)[0]}" for f in fields]
    config = train_args("--method", method, *qualified)
    method_config = get_method(method).make_config(config.method_settings)
    for f in fields:
        assert getattr(method_config, f.name) == changed_value(method, f)[1], f.name
    assert config.to_dict() | {"method_settings": {}} == make_config("smoke", method=method).to_dict()  # TrainConfig untouched
    bare = [f"--set={f.name}={changed_value(method, f)[0]}" for f in fields if f.name not in TRAIN_FIELDS]
    assert train_args("--method", method, *bare).method_settings == {
        f.name: changed_value(method, f)[0] for f in fields if f.name not in TRAIN_FIELDS}


def test_every_method_setting_is_reachable_from_a_grid():
    variants = {m: {"method": m, "settings": {f.name: changed_value(m, f)[0] for f in dataclasses.fields(METHODS[m].config_cls)}}
                for m in METHODS}
    by_settings = {c.method: c for c in expand({"profile": "smoke", "methods": variants})}
    qualified = {f"{m}.{f.name}": changed_value(m, f)[0] for m, f in every_setting()}
    by_parameters = {c.method: c for c in expand({"profile": "smoke", "methods": list(METHODS), "parameters": qualified})}
    for m, f in every_setting():
        for cells in (by_settings, by_parameters):
            method_config = get_method(m).make_config(cells[m].method_settings)
            assert getattr(method_config, f.name) == changed_value(m, f)[1], (m, f.name)
            assert cells[m].train_settings == {}


@pytest.mark.parametrize("method,name", [("clip_cov", "micro_batch_size"), ("kl_cov", "micro_batch_size"),
                                         ("kl_ref", "kl_estimator")])
def test_a_name_both_have_is_refused_naming_both_meanings_and_addresses(method, name, capsys):
    value = "k1" if name == "kl_estimator" else "4"
    assert main(["train", "--method", method, "--set", f"{name}={value}", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert f"'{name}' is both a TrainConfig field (" in err and f"a setting of method '{method}' (" in err
    assert f"train.{name}=" in err and f"{method}.{name}=" in err
    as_train = train_args("--method", method, "--set", f"train.{name}={value}")
    assert as_train.method_settings == {} and str(getattr(as_train, name)) == value
    as_method = train_args("--method", method, "--set", f"{method}.{name}={value}")
    assert as_method.method_settings == {name: value} and getattr(as_method, name) == getattr(TrainConfig(), name)
    with pytest.raises(GridError, match=f"'{name}' is both a TrainConfig field"):
        expand({"profile": "smoke", "methods": [method], "parameters": {name: value}})
    cell, = expand({"profile": "smoke", "methods": [method], "parameters": {f"{method}.{name}": value}})
    assert cell.method_settings == {name: value} and cell.train_settings == {}
    cell, = expand({"profile": "smoke", "methods": [method], "parameters": {f"train.{name}": value}})
    assert cell.method_settings == {} and str(cell.train_settings[name]) == value


def test_micro_batch_size_of_grpo_is_trainconfigs_as_before():
    config = train_args("--set", "micro_batch_size=4")
    assert config.micro_batch_size == 4 and config.method_settings == {}


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "k1+", "k2+", "k3+"])
def test_kl_refs_documented_estimators_pass_the_configs_check(estimator):
    config = make_config("smoke", method="kl_ref", method_settings={"kl_estimator": estimator})
    assert config.validate() is config                         # what Trainer calls


def test_bad_estimators_and_qualifiers_are_refused(capsys):
    with pytest.raises(ValueError, match="unknown method setting kl_estimator 'k4'; choose one of: k1, k2, k3, k1\\+"):
        make_config("smoke", method="kl_ref", method_settings={"kl_estimator": "k4"})
    with pytest.raises(ValueError, match="unknown kl_estimator 'k3\\+'"):     # the trainer's own kl_coef term has no '+'
        make_config("smoke", kl_estimator="k3+")
    for argv, expected in [
        (["--method", "clip_cov", "--set", "kl_cov.micro_batch_size=4"],
         "sets a method 'kl_cov', but this run's method is 'clip_cov'; write clip_cov.micro_batch_size=..."),
        (["--set", "clipcov.micro_batch_size=4"], "unknown method 'clipcov'; choose one of: grpo"),
        (["--set", "train.clip_ratio_high=0.3"], "TrainConfig has no field 'clip_ratio_high'"),
        (["--set", "grpo.lr=0.1"], "method 'grpo' has no setting 'lr'; choose one of: clip_ratio_low"),
        (["--set", "train.seed=3"], "seed is not set with --set; use --seed"),
    ]:
        assert main(["train", *argv, "--out", "unused"]) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
    with pytest.raises(GridError, match="name a method that no variant of the grid runs"):
        expand({"profile": "smoke", "methods": ["grpo"], "parameters": {"kl_cov.kl_cov_ratio": 0.1}})


def test_a_policy_loss_in_the_old_argument_order_is_refused():
    from minirl.methods import METHODS, register_method

    with pytest.raises(ValueError, match="new log-probs first; old_first starts with 'old_log_prob'"):
        @register_method("old_order_loss")
        def old_first(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config, extra=None):
            return None
    assert "old_order_loss" not in METHODS
