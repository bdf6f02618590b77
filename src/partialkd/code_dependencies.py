"""The package files a workflow step runs, read from the import graph, so that editing a module
re-runs exactly the steps that import it (the rules' `code` inputs, workflow/rules/common.smk).

A step is named by its entry modules (`python -m partialkd.<entry>`). Its files are the entries
and, transitively, every package module they import at module level. A module imported inside a
function (a track's own data module in `prepare`, torchvision-backed ImageNet code) counts only
where a step names it as an entry: that is how one `prepare` step per track depends on its
track's module alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "partialkd"
PACKAGE_DIR = Path(__file__).resolve().parent


def imported_modules(path: Path, inside_functions: bool = True) -> set[str]:
    """The package modules the file `path` imports: at module level, and with `inside_functions`
    also those imported inside its functions."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if inside_functions else tree.body
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {alias.name.split(".")[1] for alias in node.names
                      if alias.name.startswith(f"{PACKAGE}.")}
    return names - {path.stem}


def step_modules(*entries: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The entries and every module they import at module level, transitively; in the order found."""
    found: list[str] = []
    pending = list(entries)
    while pending:
        module = pending.pop(0)
        if module in found:
            continue
        path = package_dir / f"{module}.py"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such module of {PACKAGE} (a step's entry, or "
                                    f"imported by one)")
        found.append(module)
        pending += sorted(imported_modules(path, inside_functions=False))
    return found


def step_files(*entries: str, root: str = f"src/{PACKAGE}") -> list[str]:
    """`step_modules` as paths from the repository root, as the rules name their inputs."""
    return [f"{root}/{module}.py" for module in step_modules(*entries)]
