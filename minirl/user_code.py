"""Your own code by address: `package.module:attribute`, as `python -m minirl train --task
mypkg.tasks:my_task` and a grid's `task:` or `method:` write it.

The module is imported the ordinary way, so it must be importable from where minirl runs: a
file `mypkg/tasks.py` (or `my_tasks.py`) in the current folder, or a folder on PYTHONPATH.
"""
from __future__ import annotations

import __future__
import importlib
import inspect
import os
import sys

EXAMPLES = {"task": "mypkg.tasks:my_task", "method": "mypkg.methods:my_loss"}


def form(what: str) -> str:
    """How an address is written, for error messages."""
    return f"'package.module:attribute', e.g. '{EXAMPLES.get(what, 'mypkg.module:name')}'"


def is_address(name) -> bool:
    """True for 'module:attribute', the address of a user's object (registered names have no ':')."""
    return isinstance(name, str) and ":" in name


def load_object(address: str, what: str):
    """The object `address` names ('module:attribute'); ValueError naming the module, the
    attribute and the form expected when it cannot be found. `what` says what it should be
    ('task', 'method') for the messages."""
    module_name, _, attribute = address.partition(":")
    if not module_name or not attribute or ":" in attribute or not all(
            part.isidentifier() for part in [*module_name.split("."), *attribute.split(".")]):
        raise ValueError(f"{what} {address!r} is not a module path; write it as {form(what)}")
    module = import_module(module_name, f"{what} {address!r}: ", what)
    found = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ValueError(f"{what} {address!r}: module {module_name!r} has no attribute {attribute!r}; it defines: "
                             f"{', '.join(defined_in(module)) or 'nothing public'}")
        found = getattr(found, part)
    return found


def import_module(name: str, where: str = "", what: str = "module"):
    """Import the module `name` (`--import mypkg.methods`: its `@register_method`s run); ValueError
    saying where to put it when there is no such module. Errors inside the module propagate."""
    if not all(part.isidentifier() for part in name.split(".")):
        raise ValueError(f"{where}{name!r} is not a module name (e.g. 'mypkg.methods')")
    if os.getcwd() not in sys.path and "" not in sys.path:    # `python -m minirl` has it; other entry points not
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise                                            # a module that the user's module imports
        raise ValueError(f"{where}no module named {name!r}: put {name.replace('.', '/')}.py in the current folder "
                         f"or on PYTHONPATH (an address is written {form(what)})") from None


def defined_in(module) -> list[str]:
    """The public names `module` defines itself (not the modules, functions and classes it imports)."""
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value) or isinstance(value, __future__._Feature):
            continue
        if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__ != module.__name__:
            continue
        names.append(name)
    return sorted(names)
