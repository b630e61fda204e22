"""A grid of runs: notebook × profile × variant (method and its settings) × seed, from a small
YAML file or a dict, checked in full before anything runs.

    notebook: 00_quickstart            # a notebook of notebooks/ that trains one run (or `notebooks:`)
    profiles: [smoke]                  # or `profile: smoke`
    seeds: [0, 1]
    parameters: {steps: 6}             # every cell: the notebook's parameters, TrainConfig fields and
                                       # method settings (minirl.settings: train.NAME, METHOD.NAME)
    methods:                           # label: a method name, or {method, settings, parameters}
      grpo: grpo
      clip_cov 2%: {method: clip_cov, settings: {clip_cov_ratio: "0.02"}}
      mine: mypkg.methods:my_loss      # your own method, by module path (docs/your_own_task.md)
    variants_from: [TINY_SCALE_VARIANTS]   # variant lists of minirl.compare, as the course uses them
    out: results/smoke_two_methods

Every bad name (notebook, profile, method, method setting, parameter, grid key) is reported
with the valid choices, before the first cell runs. Your own task (`parameters: {task:
mypkg.tasks:my_task}`) starts from `init` when given (a folder relative to where the grid runs is
made absolute: cells run in folders of their own) and otherwise from the warm start that
`python -m minirl warmstart --task mypkg.tasks:my_task` wrote here, which must exist.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import compare
from .compare import slug
from .config import PROFILES, TrainConfig, make_config
from .methods import get_method
from .methods.registry import parse_value
from .settings import TRAIN, route
from .tasks import BUILTIN_TASKS
from .warmstart import default_path

# The course's notebooks are not part of the installed package: a grid finds them in the folder it
# runs in (a copy of notebooks/, as on a workshop laptop), in ./notebooks, or in the checkout that
# minirl was installed from with `pip install -e .`.
CHECKOUT = Path(__file__).resolve().parents[1]
GRID_KEYS = ("notebook", "notebooks", "profile", "profiles", "seed", "seeds", "parameters", "methods", "variants_from",
             "out")
# Set by the grid itself (its profiles, methods and seeds, and the cell's folder), never in `parameters`.
CELL_PARAMETERS = ("profile", "method", "seed", "out", "method_settings", "train_settings")


class GridError(ValueError):
    """A grid that names something unknown; the message lists the valid choices."""


@dataclass(frozen=True)
class Cell:
    """One run of a grid: the notebook executed with these parameters into its own folder."""

    notebook: str                 # path of the .ipynb
    profile: str
    label: str                    # the variant's name in tables and figures, e.g. "clip_cov 2%"
    method: str
    seed: int
    method_settings: dict = field(default_factory=dict)   # the method's own settings (strings)
    notebook_parameters: dict = field(default_factory=dict)
    train_settings: dict = field(default_factory=dict)    # TrainConfig fields

    @property
    def id(self) -> str:
        """The cell's folder under the results folder; stable, so that a re-run finds it."""
        return f"{Path(self.notebook).stem}/{self.profile}/{slug(self.label)}/seed{self.seed}"

    def papermill_parameters(self, folder) -> dict:
        params = {**self.notebook_parameters, "profile": self.profile, "method": self.method, "seed": self.seed,
                  "out": str(folder)}
        if self.method_settings:
            params["method_settings"] = dict(self.method_settings)
        if self.train_settings:
            params["train_settings"] = dict(self.train_settings)
        return params

    def to_dict(self) -> dict:
        return {"id": self.id, **dataclasses.asdict(self), "notebook": Path(self.notebook).stem}


def load_grid(path) -> dict:
    """The grid file as a dict (YAML)."""
    path = Path(path)
    if not path.exists():
        grids = sorted((CHECKOUT / "grids").glob("*.yaml"))
        raise GridError(f"no grid file {path}; " + (f"the repository's: {', '.join(str(p) for p in grids)}" if grids
                        else "the repository's grids/ folder holds the course's grids"))
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GridError(f"{path}{where} is not valid YAML ({getattr(err, 'problem', None) or err}); a grid file is "
                        f"a mapping of {', '.join(GRID_KEYS)}") from None
    if not isinstance(spec, dict):
        raise GridError(f"{path} must hold a mapping of {', '.join(GRID_KEYS)}")
    return spec


def expand(spec: dict) -> list[Cell]:
    """Every cell of the grid, each checked: notebook, profile, method, settings and parameters."""
    if not isinstance(spec, dict):
        raise GridError(f"a grid is a mapping of {', '.join(GRID_KEYS)} (got {type(spec).__name__})")
    unknown = sorted(set(spec) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"unknown grid key(s) {', '.join(map(repr, unknown))}; choose from: {', '.join(GRID_KEYS)}")
    _shaped(spec, "parameters", dict, "a mapping of parameter: value")
    _shaped(spec, "methods", (dict, list), "a list of method names or a mapping of label: method")
    _shaped(spec, "variants_from", list, "a list of variant lists of minirl.compare")
    notebooks = [find_notebook(n) for n in _listed(spec, "notebooks", "notebook", "00_quickstart")]
    profiles = _listed(spec, "profiles", "profile", "cpu")
    for profile in profiles:
        _choose("profile", profile, PROFILES)
    seeds = _listed(spec, "seeds", "seed", [0])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise GridError(f"seeds must be whole numbers (got {seeds})")
    variants = grid_variants(spec)
    cells, applied = [], set()
    for notebook in notebooks:
        accepted = notebook_parameters(notebook)
        for profile, (label, (method, settings, own)), seed in itertools.product(profiles, variants.items(), seeds):
            direct, train, from_parameters = split_parameters({**(spec.get("parameters") or {}), **own}, notebook,
                                                              accepted, label, method, applied)
            locate_policy(direct, train, accepted, profile, label)
            cells.append(Cell(str(notebook), profile, label, method, seed, {**from_parameters, **settings}, direct,
                              train))
    qualified = {k for k in (spec.get("parameters") or {}) if "." in str(k)}
    unused = sorted(qualified - applied)
    if unused:
        raise GridError(f"parameter(s) {', '.join(map(repr, unused))} name a method that no variant of the grid runs "
                        f"(its methods: {', '.join(sorted({m for m, _, _ in variants.values()}))})")
    for cell in {(c.profile, c.label, c.seed): c for c in cells}.values():
        check_variant(cell)
    ids = [c.id for c in cells]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise GridError(f"two variants share a folder name: {', '.join(clashes)}; give them labels that differ "
                        "in letters or digits")
    return cells


def grid_variants(spec: dict) -> dict[str, tuple[str, dict, dict]]:
    """label → (method, method settings as strings, parameters), from `variants_from` then `methods`."""
    lists = [name for name in dir(compare) if name.endswith("_VARIANTS")]
    variants: dict[str, tuple] = {}
    for name in spec.get("variants_from") or []:
        _choose("variant list", name, lists)
        for label, (method, settings, *own) in getattr(compare, name).items():
            _add(variants, label, (method, dict(settings), dict(own[0]) if own else {}))
    methods = spec.get("methods") or {}
    for label, entry in (dict.fromkeys(methods) if isinstance(methods, list) else methods).items():
        entry = entry or label
        if isinstance(entry, str):
            entry = {"method": entry}
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k) or {}, dict) for k in ("settings", "parameters")):
            raise GridError(f"variant {label!r}: give a method name or a mapping of method, settings (a mapping) "
                            f"and parameters (a mapping) (got {entry!r})")
        extra = sorted(set(entry) - {"method", "settings", "parameters"})
        if extra:
            raise GridError(f"variant {label!r}: unknown key(s) {extra}; choose from: method, settings, parameters")
        settings = {k: str(v) for k, v in (entry.get("settings") or {}).items()}
        _add(variants, str(label), (entry.get("method", label), settings, dict(entry.get("parameters") or {})))
    if not variants:
        raise GridError("the grid names no methods: give `methods` or `variants_from` "
                        f"(one of: {', '.join(lists)})")
    return variants


def check_variant(cell: Cell) -> None:
    """The method exists, takes these settings, and the TrainConfig they make is valid (the checks
    of TrainConfig.validate, so that a value that would fail in every cell fails here, once). The
    notebook's own parameters that are TrainConfig fields (`steps`, `task`) are checked as such."""
    where = f"variant {cell.label!r}: "
    fields = TrainConfig.__dataclass_fields__
    try:
        get_method(cell.method).make_config(cell.method_settings)
        as_fields = {k: parse_value(k, v, fields[k].default) for k, v in cell.notebook_parameters.items()
                     if k in fields and k not in CELL_PARAMETERS and v is not None}
        make_config(cell.profile, method=cell.method, seed=cell.seed, method_settings=cell.method_settings,
                    **{**cell.train_settings, **as_fields})
    except ValueError as err:
        raise GridError(where + str(err)) from None


def split_parameters(params: dict, notebook: Path, accepted: dict, label: str, method: str = "grpo",
                     applied: set | None = None) -> tuple[dict, dict, dict]:
    """(the notebook's own parameters, TrainConfig fields passed as `train_settings` (typed), settings
    of the variant's method (strings)). A name that is not the notebook's is addressed as `--set`
    addresses it (minirl.settings: train.NAME, METHOD.NAME, or a bare NAME only one of them has); a
    METHOD.NAME of another method is left to that method's variants (and added to `applied` when used)."""
    fields = set(TrainConfig.__dataclass_fields__)
    direct, train, settings = {}, {}, {}
    for key, value in params.items():
        key = str(key)
        if key.rsplit(".", 1)[-1] in CELL_PARAMETERS:
            raise GridError(f"variant {label!r}: parameter {key!r} is set by the grid itself "
                            "(its profiles, methods, settings and seeds); remove it from `parameters`")
        if key in accepted:
            direct[key] = value
            continue
        try:
            method_fields = [f.name for f in dataclasses.fields(get_method(method).config_cls)]
        except ValueError as err:
            raise GridError(f"variant {label!r}: {err}") from None
        if "." not in key and key not in fields and key not in method_fields:
            own = ", ".join(p for p in accepted if p not in CELL_PARAMETERS)
            also = (f" or a TrainConfig field ({', '.join(sorted(fields - set(CELL_PARAMETERS)))})"
                    if "train_settings" in accepted else "")
            raise GridError(f"unknown parameter {key!r} (variant {label!r}); choose a parameter of {notebook.stem} "
                            f"({own}){also} or a setting of method {method!r} ({', '.join(method_fields)})")
        try:
            where, name = route(key, method)
        except ValueError as err:
            raise GridError(f"parameter {key!r} (variant {label!r}): {err}") from None
        if where == TRAIN and "train_settings" not in accepted:
            raise GridError(f"parameter {key!r} (variant {label!r}): notebook {notebook.stem} takes no TrainConfig "
                            "fields (no `train_settings` parameter)")
        if where == TRAIN:
            train[name] = parse_value(name, value, getattr(make_config("cpu"), name))
        elif where == "method":
            settings[name] = str(value)
        if applied is not None and where != "other":
            applied.add(key)
    return direct, train, settings


def locate_policy(direct: dict, train: dict, accepted: dict, profile: str, label: str) -> None:
    """Make the cell's starting policy a path its notebook finds from its own folder: a relative
    `init` or `model` that exists here becomes absolute, and your own task without one gets the warm
    start `python -m minirl warmstart` wrote here (GridError when there is none)."""
    given = [(where, key) for where, key in ((direct, "model"), (direct, "init"), (train, "init"))
             if isinstance(where.get(key), str)]
    for where, key in given:
        if not Path(where[key]).is_absolute() and Path(where[key]).exists():
            where[key] = str(Path(where[key]).resolve())
    task = direct.get("task") or train.get("task")
    backend = train.get("backend", PROFILES[profile].train.get("backend", "tiny"))
    if not task or task in BUILTIN_TASKS or given or backend != "tiny":
        return
    path = default_path(task, profile)
    if not (path / "config.json").exists():
        raise GridError(f"variant {label!r}: task {task!r} has no warm start for profile {profile!r} at {path}; make "
                        f"one with: python -m minirl warmstart --task {task} --profile {profile} (run here), or give "
                        "`init`")
    if "train_settings" in accepted:
        train["init"] = str(path)
    elif "model" in accepted:
        direct["model"] = str(path)


def notebook_parameters(notebook: Path) -> dict:
    """The notebook's `parameters` cell, as papermill reads it; a grid notebook must take the cell's."""
    import papermill  # optional: papermill reads the notebook's parameters (pip install papermill)

    try:
        accepted = papermill.inspect_notebook(str(notebook))
    except ValueError as err:                              # e.g. a notebook without a kernelspec
        raise GridError(f"cannot read the parameters of {notebook}: {err}") from None
    missing = [p for p in ("profile", "method", "seed", "out") if p not in accepted]
    if missing:
        able = [p.stem for p in _course() if {"method", "seed", "out"} <= set(papermill.inspect_notebook(str(p)))]
        raise GridError(f"notebook {notebook.stem} cannot run a grid cell: its parameters cell has no "
                        f"{', '.join(missing)}; notebooks that can: {', '.join(able) or 'none'}")
    return accepted


def find_notebook(name) -> Path:
    """A course notebook by name (`00_quickstart`, with or without .ipynb) or an .ipynb path."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    stem = path.stem if path.suffix == ".ipynb" else str(name)
    for folder in notebook_dirs():
        if (folder / f"{stem}.ipynb").exists():
            return (folder / f"{stem}.ipynb").resolve()
    found = _course()
    if found:
        raise GridError(f"unknown notebook {str(name)!r}; choose one of: {', '.join(p.stem for p in found)} "
                        f"(in {found[0].parent}) or the path of an .ipynb")
    raise GridError(f"no notebook {str(name)!r}: the course's notebooks are not in the installed package, and none "
                    f"is in {', '.join(str(d) for d in notebook_dirs(existing=False))}; run from a copy of the "
                    "repository's notebooks/ folder, or give the path of the .ipynb")


def notebook_dirs(existing: bool = True) -> list[Path]:
    """Where course notebooks are looked for, in order: the working folder, ./notebooks, the checkout's."""
    here = Path.cwd()
    folders = [here, here / "notebooks", CHECKOUT / "notebooks"]
    return [f for f in dict.fromkeys(folders) if f.is_dir() or not existing]


def _course() -> list[Path]:
    """The course notebooks of the first folder that holds any."""
    for folder in notebook_dirs():
        found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
        if found:
            return found
    return []


def _listed(spec: dict, many: str, one: str, default) -> list:
    value = spec.get(many, spec.get(one, default))
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _shaped(spec: dict, key: str, kind, what: str) -> None:
    """Refuse a grid entry of the wrong shape (e.g. `methods: 5`) in one line."""
    if spec.get(key) is not None and not isinstance(spec[key], kind):
        raise GridError(f"grid key {key!r} must be {what} (got {spec[key]!r})")


def _add(variants: dict, label: str, variant: tuple) -> None:
    if label in variants and variants[label] != variant:
        raise GridError(f"variant {label!r} is defined twice, differently: {variants[label]} and {variant}")
    variants[label] = variant


def _choose(what: str, value, choices) -> None:
    if value not in choices:
        raise GridError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
