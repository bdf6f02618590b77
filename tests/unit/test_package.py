"""The package's shape (issue 14): layers that import only downward, no circles, entry points on
top that nothing imports, and each workflow step depending on the package files it imports
(partialkd.plan.code_dependencies), not more."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

from partialkd.plan.code_dependencies import (PACKAGE_DIR, imported_modules, module_name, step_files,
                                              step_modules)

# The library's layers, lowest first: a module imports from its own layer and those below it.
# On top of them, the `python -m partialkd.<step>` entry points (the package's top-level modules).
LAYERS = ("common", "core", "models", "data", "training", "reporting", "analysis", "plan")


def import_graph(package: Path = PACKAGE_DIR) -> nx.DiGraph:
    """Every import between the package's modules, those inside functions included."""
    graph = nx.DiGraph()
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        graph.add_node(module)
        graph.add_edges_from((module, imported) for imported in imported_modules(path, package_dir=package))
    return graph


def layer(module: str) -> int:
    """The rank of a module's layer; the entry points rank above every layer."""
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else len(LAYERS)


def entry_points() -> set[str]:
    return {path.stem for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__"}


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("import torch\nfrom partialkd.b import f\n")
    (tmp_path / "b.py").write_text("import partialkd.c\n\ndef f():\n    from partialkd import a, d\n")
    (tmp_path / "c.py").write_text("from partialkd import e\nfrom partialkd.sub import g\n")
    (tmp_path / "d.py").write_text("")
    (tmp_path / "e.py").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("")
    (tmp_path / "sub" / "g.py").write_text("from partialkd.sub.h import X\n")
    (tmp_path / "sub" / "h.py").write_text("X = 1\n")
    return tmp_path


def test_imports_are_read_at_module_level_and_inside_functions(tiny_package: Path) -> None:
    assert imported_modules(tiny_package / "a.py", package_dir=tiny_package) == {"b"}
    assert imported_modules(tiny_package / "b.py", package_dir=tiny_package) == {"a", "c", "d"}
    assert imported_modules(tiny_package / "b.py", inside_functions=False, package_dir=tiny_package) == {"c"}
    assert imported_modules(tiny_package / "c.py", package_dir=tiny_package) == {"e", "sub.g"}
    assert imported_modules(tiny_package / "sub/g.py", package_dir=tiny_package) == {"sub.h"}
    cycles = [" ".join(cycle) for cycle in nx.simple_cycles(import_graph(tiny_package))]
    assert cycles in (["a b"], ["b a"])


def test_a_step_depends_on_what_its_entries_import_transitively(tiny_package: Path) -> None:
    # not d (imported inside a function); a subpackage's __init__ with its modules
    assert step_modules("a", package_dir=tiny_package) == ["a", "b", "c", "e", "sub.g", "sub", "sub.h"]
    assert step_modules("b", "d", package_dir=tiny_package)[:3] == ["b", "d", "c"]
    with pytest.raises(FileNotFoundError, match="nope.py"):
        step_modules("a", "nope", package_dir=tiny_package)


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert {"train", "training.read_runs", "training.cli", "prepare", "core.targets"} <= set(graph)
    cycles = [" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph)]
    assert not cycles, ("import circles (move what both sides need into a module below them): "
                        + "; ".join(cycles))


def test_every_module_lives_in_a_layer_or_is_an_entry_point() -> None:
    folders = {path.parent.name for path in PACKAGE_DIR.rglob("*.py") if path.parent != PACKAGE_DIR}
    assert folders == set(LAYERS), f"folders that are not layers: {folders - set(LAYERS)}"
    no_main = sorted(module for module in entry_points()
                     if '__name__ == "__main__"' not in (PACKAGE_DIR / f"{module}.py").read_text())
    assert not no_main, f"top-level modules that are not `python -m` entry points (move them into a layer): {no_main}"
    in_layers = sorted(module_name(path) for path in PACKAGE_DIR.glob("*/*.py")
                       if '__name__ == "__main__"' in path.read_text())
    assert not in_layers, f"entry points inside a layer (move them to the top): {in_layers}"


def test_layers_import_only_downward() -> None:
    graph = import_graph()
    upward = sorted(f"{importer} -> {imported}" for importer, imported in graph.edges
                    if layer(imported) > layer(importer))
    assert not upward, ("imports from a lower layer into a higher one (move what is shared down, or "
                        f"the importer up; layers, lowest first: {', '.join(LAYERS)}): {'; '.join(upward)}")


def test_the_layer_check_finds_an_upward_import(tmp_path: Path) -> None:
    """The two checks above fail on a package that breaks them."""
    for folder, text in (("core", "from partialkd.training import engine\n"), ("training", ""), ("", "")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / ("x.py" if folder else "step.py")).write_text(text)
    (tmp_path / "training" / "engine.py").write_text("from partialkd import step\n")
    edges = import_graph(tmp_path).edges
    assert [(a, b) for a, b in edges if layer(b) > layer(a)] == [("core.x", "training.engine"),
                                                                 ("training.engine", "step")]


def test_entry_points_are_imported_by_nothing_else() -> None:
    """`python -m partialkd.<step>` modules sit on top: what others need lives in a library module."""
    graph = import_graph()
    assert {"aggregate", "train", "prepare", "report", "latex"} <= entry_points()
    imported = {module: sorted(graph.predecessors(module)) for module in entry_points() if graph.in_degree(module)}
    assert not imported, f"entry points imported by other modules (move what they share below them): {imported}"


def test_an_image_training_job_does_not_depend_on_language_model_or_synthetic_code() -> None:
    files = step_files("train_images")
    assert {"src/partialkd/train_images.py", "src/partialkd/training/images.py", "src/partialkd/core/losses.py",
            "src/partialkd/training/run_directory.py", "src/partialkd/training/__init__.py"} <= set(files)
    assert not {f"src/partialkd/{module}.py" for module in ("training/lm", "models/lstm", "data/synthetic",
                                                            "training/stacked", "training/read_runs",
                                                            "prepare")} & set(files)
    assert "src/partialkd/training/lm.py" in step_files("train_lm")
    prepare = set(step_files("prepare"))  # a track's data module is imported inside a function
    assert not {f"src/partialkd/data/{track}.py" for track in ("synthetic", "cifar100", "ptb")} & prepare
    assert "src/partialkd/data/cifar100.py" in step_files("prepare", "data.cifar100")


def test_reading_runs_back_depends_on_a_network_family_only_where_a_step_names_it() -> None:
    """The stacked trainer and the analyses read runs of every family through training.read_runs,
    which imports a family's trainer inside a function: the synthetic track's steps run no image or
    LSTM code, and a track's steps name its family (plan.tracks' `network_code`)."""
    for step in ("train", "analyse", "diagnose"):
        files = set(step_files(step))
        assert "src/partialkd/training/read_runs.py" in files
        assert not {"src/partialkd/training/lm.py", "src/partialkd/training/images.py",
                    "src/partialkd/models/lstm.py", "src/partialkd/models/vision.py"} & files, step
    assert "src/partialkd/training/lm.py" in step_files("analyse", "training.lm")


def test_no_test_module_imports_another() -> None:
    """Tests share code through tests/helpers/, never by importing a test module (issue 14)."""
    tests = PACKAGE_DIR.parents[1] / "tests"
    importing = {}
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found = [name for name in names if name.split(".")[-1].startswith(("test_", "conftest"))]
            if found:
                importing[str(path.relative_to(tests))] = found
    assert not importing, f"test modules importing test modules (move what they share to tests/helpers/): {importing}"
