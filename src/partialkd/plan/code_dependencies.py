"""The package files a workflow step runs, read from the import graph, so that editing a module
re-runs exactly the steps that import it (the rules' `code` inputs, workflow/rules/common.smk).

Modules are named by their dotted path inside the package (`training.engine`, `train_images`). A
step is named by its entry modules (`python -m partialkd.<entry>`). Its files are the entries
and, transitively, every package module they import at module level, with the `__init__.py` of
each subpackage on the way. A module imported inside a function (a track's own data module in
`prepare`, a network family's trainer in `training.read_runs`) counts only where a step names it
as an entry: that is how one `prepare` step per track depends on its track's module alone.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "partialkd"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of the dotted `module` (a subpackage's `__init__.py`), or None if there is none."""
    base = package_dir.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """`module_file`'s inverse: `training/engine.py` -> 'training.engine'."""
    parts = path.relative_to(package_dir).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, inside_functions: bool = True, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The package modules the file `path` imports: at module level, and with `inside_functions`
    also those imported inside its functions. `from partialkd.x import y` names module `x.y` where
    that is a module, else module `x` (y is one of its names)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if inside_functions else tree.body
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE and not node.level:
            base = node.module.partition(".")[2]
            for alias in node.names:
                candidate = f"{base}.{alias.name}".lstrip(".")
                names.add(candidate if module_file(candidate, package_dir) else base)
        elif isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[2] for alias in node.names
                      if alias.name.startswith(f"{PACKAGE}.")}
    return names - {"", module_name(path, package_dir)}


def step_modules(*entries: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The entries and every module they import at module level, transitively, each subpackage's
    `__init__` with them; in the order found."""
    found: list[str] = []
    pending = list(entries)
    while pending:
        module = pending.pop(0)
        if module in found:
            continue
        path = module_file(module, package_dir)
        if path is None:
            raise FileNotFoundError(f"{package_dir.joinpath(*module.split('.'))}.py: no such module of "
                                    f"{PACKAGE} (a step's entry, or imported by one)")
        found.append(module)
        parents = [".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 1)]
        pending += parents + sorted(imported_modules(path, inside_functions=False, package_dir=package_dir))
    return found


def step_files(*entries: str, root: str = f"src/{PACKAGE}") -> list[str]:
    """`step_modules` as paths from the repository root, as the rules name their inputs."""
    return [f"{root}/{module_file(module).relative_to(PACKAGE_DIR).as_posix()}" for module in step_modules(*entries)]
