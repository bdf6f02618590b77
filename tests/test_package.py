"""The package's shape (issue 14): its modules import one another without circles, and each
workflow step depends on the package files it imports (partialkd.code_dependencies), not more."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from partialkd.code_dependencies import PACKAGE_DIR, imported_modules, step_files, step_modules


def import_graph(package: Path = PACKAGE_DIR) -> nx.DiGraph:
    """Every import between the package's modules, those inside functions included."""
    graph = nx.DiGraph()
    for path in sorted(package.glob("*.py")):
        graph.add_node(path.stem)
        graph.add_edges_from((path.stem, module) for module in imported_modules(path))
    return graph


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("import torch\nfrom partialkd.b import f\n")
    (tmp_path / "b.py").write_text("import partialkd.c\n\ndef f():\n    from partialkd import a, d\n")
    (tmp_path / "c.py").write_text("from partialkd import e\n")
    (tmp_path / "d.py").write_text("")
    (tmp_path / "e.py").write_text("")
    return tmp_path


def test_imports_are_read_at_module_level_and_inside_functions(tiny_package: Path) -> None:
    assert imported_modules(tiny_package / "a.py") == {"b"}
    assert imported_modules(tiny_package / "b.py") == {"a", "c", "d"}
    assert imported_modules(tiny_package / "b.py", inside_functions=False) == {"c"}
    assert [" ".join(cycle) for cycle in nx.simple_cycles(import_graph(tiny_package))] in (["a b"], ["b a"])


def test_a_step_depends_on_what_its_entries_import_transitively(tiny_package: Path) -> None:
    assert step_modules("a", package_dir=tiny_package) == ["a", "b", "c", "e"]  # not d: inside a function
    assert step_modules("b", "d", package_dir=tiny_package) == ["b", "d", "c", "e"]
    with pytest.raises(FileNotFoundError, match="nope.py"):
        step_modules("a", "nope", package_dir=tiny_package)


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert {"train", "trained", "cli", "prepare", "targets"} <= set(graph)
    cycles = [" -> ".join([*cycle, cycle[0]]) for cycle in nx.simple_cycles(graph)]
    assert not cycles, ("import circles (move what both sides need into a module below them): "
                        + "; ".join(cycles))


def test_an_image_training_job_does_not_depend_on_language_model_or_synthetic_code() -> None:
    files = step_files("train_images")
    assert {"src/partialkd/train_images.py", "src/partialkd/image_training.py",
            "src/partialkd/losses.py", "src/partialkd/run_directory.py"} <= set(files)
    assert not {f"src/partialkd/{module}.py" for module in ("lm_training", "lm_models", "synthetic", "train",
                                                            "trained", "prepare")} & set(files)
    assert "src/partialkd/lm_training.py" in step_files("train_lm")
    assert "src/partialkd/cifar100.py" not in step_files("prepare")  # imported inside a function
    assert "src/partialkd/cifar100.py" in step_files("prepare", "cifar100")


def test_entry_points_are_imported_by_nothing_else() -> None:
    """`python -m partialkd.<step>` modules sit on top: what others need lives in a library module."""
    graph = import_graph()
    entry_points = {path.stem for path in PACKAGE_DIR.glob("*.py") if '__name__ == "__main__"' in path.read_text()}
    assert {"aggregate", "train", "prepare", "report", "latex"} <= entry_points
    imported = {module: sorted(graph.predecessors(module)) for module in entry_points if graph.in_degree(module)}
    assert not imported, f"entry points imported by other modules (move what they share below them): {imported}"
