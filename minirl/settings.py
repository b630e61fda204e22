"""One address per setting: what `--set NAME=VALUE` (train and reproduce) and a grid's
`parameters` reach.

    train.NAME=VALUE     the TrainConfig field NAME           (train.micro_batch_size=4: rows per pass)
    METHOD.NAME=VALUE    the setting NAME of METHOD's config   (clip_cov.micro_batch_size=4: rows per
                                                                covariance chunk)
    NAME=VALUE           whichever of the two has NAME; a NAME that is both is refused, the message
                         naming both meanings and both addresses

A grid variant's `settings:` mapping is the method's own, so its bare names are the method's.
METHOD is the registered name (`clip_cov`) or, for your own method, the module path the run names
(`mypkg.methods:my_method.scale=2`).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

from .config import TrainConfig
from .methods import get_method

TRAIN = "train"
"""The qualifier of TrainConfig's fields."""


def route(key: str, method: str) -> tuple[str, str]:
    """Where the setting `key` of a run of `method` goes: ("train", name), ("method", name), or
    ("other", name) when `key` is qualified by another registered method (a grid applies it to that
    method's variants only). ValueError for an unknown qualifier or name, or an ambiguous bare name."""
    own = get_method(method)
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    method_fields = [f.name for f in dataclasses.fields(own.config_cls)]
    qualifier, name = key.rsplit(".", 1) if "." in key else (None, key)
    if qualifier == TRAIN:
        if name not in train_fields:
            raise ValueError(f"{key!r}: TrainConfig has no field {name!r}; choose from: {', '.join(sorted(train_fields))}")
        return TRAIN, name
    if qualifier is not None:
        if qualifier in (own.name, method):
            if name not in method_fields:
                raise ValueError(f"{key!r}: method {own.name!r} has no setting {name!r}; choose one of: "
                                 f"{', '.join(method_fields)}")
            return "method", name
        get_method(qualifier)                     # an unknown qualifier is named, with the registered methods
        return "other", name
    if name in train_fields and name in method_fields:
        raise ValueError(
            f"{name!r} is both a TrainConfig field ({field_doc(TrainConfig, name)}) and a setting of method "
            f"{own.name!r} ({field_doc(own.config_cls, name)}); write {TRAIN}.{name}=... for the first "
            f"or {own.name}.{name}=... for the second")
    if name in train_fields:
        return TRAIN, name
    if name in method_fields:
        return "method", name
    raise ValueError(f"method {own.name!r} has no setting {name!r}; choose one of: {', '.join(method_fields)} "
                     f"(or a TrainConfig field: {', '.join(sorted(train_fields))})")


def field_doc(cls: type, name: str) -> str:
    """The first sentence of the docstring under field `name` of dataclass `cls` (or of the base
    class that declares it); '' when it has none."""
    for klass in cls.__mro__:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for statement, following in zip(body, body[1:]):
            if (isinstance(statement, ast.AnnAssign) and getattr(statement.target, "id", None) == name):
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    return " ".join(str(following.value.value).split()).split(". ")[0].rstrip(".")
                return ""
    return ""
