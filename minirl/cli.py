"""Command line: `python -m minirl {train, methods, warmstart, plot, compare, demo, reproduce, report, ship}`.

Bad names and values end in one line that names them and the valid choices, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from .config import PROFILES, make_config
from .methods import METHODS, get_method
from .methods.registry import parse_value
from .metrics import read_metrics
from .profiles import tiny_profiles
from .settings import TRAIN, route
from .tasks import get_task, task_factory
from .user_code import import_module


class UsageError(Exception):
    """A user mistake: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the whole usage; one line is enough
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m minirl", description="Entropy collapse in RL fine-tuning, on a laptop.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a policy with one method; writes OUT/metrics.jsonl")
    t.add_argument("--method", default="grpo", help="a registered method (`python -m minirl methods`), or your own "
                                                     "as mypkg.methods:my_loss (docs/your_own_task.md)")
    t.add_argument("--task", help="default: the profile's (countdown; gsm8k for gpu); or your own as "
                                  "mypkg.tasks:my_task (a Task or a function of no arguments returning one)")
    t.add_argument("--profile", default="cpu")
    t.add_argument("--steps", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="run folder (metrics.jsonl, config.json, checkpoint.pt)")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT from its last checkpoint")
    t.add_argument("--init", help="starting policy: a folder (default: the shipped warm start); with "
                                  "backend hf, a hub name or a local model folder")
    t.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a TrainConfig field or a setting of the method's config, e.g. --set clip_ratio_high=0.28; "
                        "a name both have needs its address: train.NAME or METHOD.NAME (clip_cov.micro_batch_size=4)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_import(t)

    _add_import(sub.add_parser("methods", help="list the registered methods"))

    w = sub.add_parser("warmstart", help="(re)make the supervised warm start of a task")
    w.add_argument("--task", default="countdown", help="a registered task, or your own as mypkg.tasks:my_task")
    w.add_argument("--profile", default="cpu")
    w.add_argument("--out", help="folder (default: the shipped one inside the package; for your own task "
                                 "warmstarts/TASK-PROFILE here, where `train --task TASK` looks for it)")
    _add_import(w)

    for name, text in (("plot", "plot runs' entropy and pass@k curves"), ("compare", "first → last table of runs")):
        c = sub.add_parser(name, help=text)
        c.add_argument("runs", nargs="+", help="run folders")
        if name == "plot":
            c.add_argument("--out", default="entropy.png")

    d = sub.add_parser("demo", help="the main job: warm start, GRPO runs, comparison table, plot")
    d.add_argument("--profile", default="cpu")
    d.add_argument("--steps", type=int, default=200)
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--fresh-warmstart", action="store_true", help="remake the warm start instead of the shipped one")
    _add_reproduce_parsers(sub)
    return p


def _add_import(parser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, e.g. the module whose @register_method defines your method")


def _add_reproduce_parsers(sub) -> None:
    r = sub.add_parser("reproduce", help="run a grid of notebook × method × seed with papermill, then the report")
    r.add_argument("grid", nargs="?", help="a grid file (grids/*.yaml); the flags below replace its entries")
    r.add_argument("--notebook", action="append", help="a course notebook that trains one run (00_quickstart)")
    r.add_argument("--method", action="append", help="a method, at its official settings (repeat for more)")
    r.add_argument("--seed", type=int, action="append", help="repeat for more seeds")
    r.add_argument("--profile", action="append", help="smoke, cpu or gpu (repeat for more)")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the notebook, a TrainConfig field or a method setting, for every cell "
                        "(--set steps=50, --set clip_cov.micro_batch_size=4)")
    r.add_argument("--out", help="the results folder (default: the grid's `out`, else results/grid)")
    r.add_argument("--workers", type=int, default=1, help="cells run at once (at most the cores)")
    r.add_argument("--dry-run", action="store_true", help="list the cells and whether each is done; run nothing")
    r.add_argument("--no-report", action="store_true", help="skip runs.csv and report.md at the end")
    p = sub.add_parser("report", help="runs.csv, figures/ and report.md of a results folder")
    p.add_argument("results", help="a folder written by `python -m minirl reproduce`")
    p.add_argument("--copy-figures-to", help="also copy the figures here (e.g. docs/figures)")
    text = ("pack a finished grid's metrics into minirl/assets/results/ (run in a checkout, after `reproduce`; "
            "notebooks 03, 04 and 08 read them)")
    s = sub.add_parser("ship", help=text, description=text[0].upper() + text[1:] + ".")
    s.add_argument("results", help="the results folder `python -m minirl reproduce GRID` wrote, every cell done")
    s.add_argument("grid", help="the grid file that made it (grids/*.yaml)")


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        for module in getattr(args, "imports", []):
            import_module(module, "--import: ")
        return COMMANDS[args.command](args) or 0
    except (UsageError, ValueError, OSError) as err:      # OSError: a model or dataset not found
        print(f"minirl: error: {err}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .report import summary_table  # per command: the trainer and the table load only for `train`
    from .trainer import train  # per command: torch's training loop
    config = config_from_args(args)
    _check_starting_policy(config)
    history = train(config, args.out, resume=args.resume, progress=not args.quiet)
    print(summary_table({run_label(args.out): _read_all(args.out)}))
    return 0 if history is not None else 1


# TrainConfig fields that have a flag of their own; --set refuses them (they would be given twice)
RESERVED = {"method": "--method", "seed": "--seed", "profile": "--profile",
            "method_settings": "--set NAME=VALUE for each of the method's settings"}


def config_from_args(args):
    """The run's TrainConfig; each `--set` goes where minirl.settings addresses it."""
    _choose("profile", args.profile, PROFILES)
    if args.task is not None:
        task_factory(args.task)                       # a registered name, or a module path that resolves
    method = get_method(args.method)
    overrides, method_settings = {}, {}
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set {item!r} is not NAME=VALUE")
        key, value = item.split("=", 1)
        where, name = route(key, args.method)
        if where == TRAIN and name in RESERVED:
            raise UsageError(f"--set {item!r}: {name} is not set with --set; use {RESERVED[name]}")
        if where == "other":
            raise UsageError(f"--set {item!r} sets a method {key.rsplit('.', 1)[0]!r}, but this run's method is "
                             f"{method.name!r}; write {method.name}.{name}=...")
        (overrides if where == TRAIN else method_settings)[name] = value
    method.make_config(method_settings)                                   # validates names and types now
    defaults = make_config(args.profile)
    typed = {k: _typed(k, v, getattr(defaults, k)) for k, v in overrides.items()}
    if args.steps is not None:
        _positive("steps", args.steps)
        typed["steps"] = args.steps
    elif args.resume and "steps" not in typed:
        saved = _saved_steps(args.out)                    # finish the saved run, not the profile's default
        if saved is not None:
            typed["steps"] = saved
    if args.init:
        typed["init"] = args.init
    if args.task is not None:
        typed["task"] = args.task
    return make_config(args.profile, method=args.method, seed=args.seed, method_settings=method_settings, **typed)


def _check_starting_policy(config) -> None:
    """A tiny-backend run without --init starts from its task's warm start: say how to make one that is missing."""
    from .warmstart import default_path  # per command: where `train` looks for the warm start
    path = default_path(config.task, config.profile)
    if config.backend == "tiny" and config.init is None and not (path / "config.json").exists():
        raise UsageError(f"task {config.task!r} has no warm start for profile {config.profile!r} at {path}; make one "
                         f"with: python -m minirl warmstart --task {config.task} --profile {config.profile} "
                         "(or give --init FOLDER)")


def _saved_steps(out) -> int | None:
    """`steps` of the run in `out` (its config.json), or None when there is none to read."""
    try:
        steps = json.loads((Path(out) / "config.json").read_text()).get("steps")
    except (OSError, ValueError, AttributeError):
        return None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def cmd_methods(args) -> int:
    width = max(len(n) for n in METHODS)
    for name, m in METHODS.items():
        print(f"{name:<{width}}  {m.summary}  [default loss_agg_mode: {m.default_agg_mode}]")
    return 0


def cmd_warmstart(args) -> int:
    from .warmstart import warm_start  # per command: supervised warm start
    _choose("profile", args.profile, tiny_profiles())
    stats = warm_start(args.task, args.profile, out=args.out)
    print(json.dumps(stats, indent=2))
    return 0


def cmd_plot(args) -> int:
    from .plots import plot_runs  # per command: matplotlib
    print(plot_runs(_load_runs(args.runs), args.out))
    return 0


def cmd_compare(args) -> int:
    from .report import summary_table  # per command: the table
    print(summary_table(_load_runs(args.runs)))
    return 0


def cmd_demo(args) -> int:
    """Warm start (shipped or fresh), GRPO and GRPO with clip-higher, a table and a figure."""
    from .plots import plot_runs  # per command: matplotlib
    from .report import summary_table  # per command: the table
    from .trainer import train  # per command: torch's training loop
    from .warmstart import default_path, warm_start  # per command: the warm start
    _choose("profile", args.profile, tiny_profiles())
    _positive("steps", args.steps)
    out = Path(args.out)
    init = default_path("countdown", args.profile)
    if args.fresh_warmstart:
        init = out / "warmstart"
        print(json.dumps(warm_start(get_task("countdown"), args.profile, out=init), indent=2))
    variants = {"grpo": {}, "grpo-clip-higher": {"clip_ratio_high": "0.28"}}
    runs = {}
    for name, settings in variants.items():
        run_dir = out / name
        config = make_config(args.profile, steps=args.steps, init=str(init), method_settings=settings)
        train(config, run_dir, resume=(run_dir / "checkpoint.pt").exists())
        runs[run_label(run_dir)] = _read_all(run_dir)
    print(summary_table(runs))
    print("figure:", plot_runs(runs, out / "entropy.png"))
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import reproduce  # per command: papermill and the grid runner
    _import_path_here()
    outcome = reproduce(grid_from_args(args), out=args.out, workers=args.workers, dry_run=args.dry_run,
                        report=not args.no_report)
    if args.dry_run:
        return 0
    print(f"ran {len(outcome.ran)}, skipped {len(outcome.skipped)} done, {len(outcome.failed)} failed "
          f"in {outcome.seconds:.0f} s")
    for cell, error in outcome.failed.items():
        print(f"FAILED {cell}: {error}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _import_path_here() -> None:
    """Put the current folder on PYTHONPATH, so that the grid's kernels (which run in their cells'
    folders) import your tasks and methods ('mypkg.tasks:my_task') from here, as this process does."""
    here = os.getcwd()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, here])


def grid_from_args(args) -> dict:
    """The grid file's dict, with the entries that flags give replaced."""
    from .grid import load_grid  # per command: the grid files
    spec = load_grid(args.grid) if args.grid else {}
    for flag, many, replaced in (("notebook", "notebooks", ("notebook",)), ("method", "methods", ("variants_from",)),
                                 ("seed", "seeds", ("seed",)), ("profile", "profiles", ("profile",))):
        if getattr(args, flag):
            spec[many] = getattr(args, flag)
            for key in replaced:
                spec.pop(key, None)
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set {item!r} is not NAME=VALUE")
        key, value = item.split("=", 1)
        spec.setdefault("parameters", {})[key] = yaml.safe_load(value)
    if not args.grid and not args.method:
        raise UsageError("give a grid file (e.g. grids/smoke_two_methods.yaml) or at least one --method")
    return spec


def cmd_report(args) -> int:
    from .report import write_report  # per command: matplotlib and the report
    print(write_report(args.results, copy_figures_to=args.copy_figures_to))
    return 0


def cmd_ship(args) -> int:
    """Pack RESULTS (made by GRID) as the shipped results of GRID's name, then check them against GRID."""
    from .shipping import check, pack  # per command: packing a results folder
    path = pack(args.results, args.grid)
    check(path, args.grid)
    print(f"{path} ({path.stat().st_size / 2**20:.2f} MiB); commit it with the grid file")
    return 0


COMMANDS = {"train": cmd_train, "methods": cmd_methods, "warmstart": cmd_warmstart, "plot": cmd_plot,
            "compare": cmd_compare, "demo": cmd_demo, "reproduce": cmd_reproduce, "report": cmd_report,
            "ship": cmd_ship}


# ---------------------------------------------------------------- helpers
def _choose(what: str, value: str, choices) -> None:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def _positive(what: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"--{what} must be a positive integer (got {value})")


def _typed(key: str, raw: str, current):
    return parse_value(key, raw, current)


def _read_all(run_dir) -> list[dict]:
    return read_metrics(run_dir)


def _load_runs(folders: list[str]) -> dict[str, list[dict]]:
    runs = {}
    for folder in folders:
        if not (Path(folder) / "metrics.jsonl").exists():
            raise UsageError(f"{folder} is not a run folder (no metrics.jsonl)")
        label = run_label(folder)
        runs[label if label not in runs else f"{label} [{folder}]"] = _read_all(folder)   # never merge two runs
    return runs


def run_label(folder) -> str:
    """'grpo clip_ratio_high=0.28 (seed 0)' from a run's config.json, else the folder's name."""
    path = Path(folder) / "config.json"
    if not path.exists():
        return Path(folder).name
    config = json.loads(path.read_text())
    settings = "".join(f" {k}={v}" for k, v in config.get("method_settings", {}).items())
    try:                    # run settings that differ from the profile's and the method's defaults
        defaults = make_config(config["profile"], method=config["method"]).to_dict()
    except (KeyError, ValueError):
        defaults = {}
    changed = "".join(f" {k}={v}" for k, v in config.items()
                      if k not in LABEL_OMITS and k in defaults and defaults[k] != v)
    return f"{config['method']}{settings}{changed} (seed {config['seed']})"


# Left out of run labels: the seed has its own place; the others do not change what is compared.
LABEL_OMITS = ("schema", "method", "method_settings", "seed", "steps", "init", "profile", "eval_every",
               "checkpoint_every")
