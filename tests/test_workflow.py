"""The real Snakemake workflow, at tiny size, in a copy of the repository's workflow files."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_copy import TINY, copy_workflow, snakemake


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"), TINY)
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_workflow_builds_table_figure_and_report(finished_workflow: Path) -> None:
    summary = pd.read_csv(finished_workflow / "results/synthetic/summary.csv")
    students = summary[summary["role"] == "student"]
    # one row per γ × teacher × seed × grid point (kd_topk has two), one per γ for the teacher
    assert len(students) == 2 * 2 * 2 * 8
    # one selected row per γ × teacher × seed × method
    assert students["selected"].sum() == 2 * 2 * 2 * 7
    selected = pd.read_csv(finished_workflow / "results/synthetic/selected.csv")  # for DVC plots
    assert selected.equals(students[students["selected"]].reset_index(drop=True))
    assert set(students["method"]) == set(TINY["synthetic"]["methods"])
    assert len(summary[summary["role"] == "teacher"]) == 2
    assert students["best_test_acc"].between(0, 1).all()
    for suffix in ("png", "pdf"):
        assert (finished_workflow / f"paper/figures/synthetic/gain.{suffix}").stat().st_size > 1000
    report = (finished_workflow / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## Synthetic study")
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C10", "C11"):
        assert f"**{claim}**" in report
    assert "figures/synthetic/gain.png" in report and "figures/synthetic/topk.png" in report
    # the students' analyses: one per γ for the claims' teacher, with their figures in the report
    for gamma in ("0", "0.9"):
        analysis = finished_workflow / f"results/synthetic/analyses/gamma{gamma}/mlp.json"
        assert analysis.is_file()
        for kind in ("rescaling", "geometry", "geometry_bars"):
            assert f"figures/synthetic/gamma{gamma}_mlp_{kind}.png" in report
            assert (finished_workflow / f"paper/figures/synthetic/gamma{gamma}_mlp_{kind}.pdf").is_file()


def test_second_run_has_nothing_to_do(finished_workflow: Path) -> None:
    result = snakemake(finished_workflow, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("section, key, value, expected", [
    ("student", "seedz", [0], "seedz"),
    ("student", "lr", -1.0, "synthetic.student.lr"),
    ("methods", "kd", {"lam": [1.5], "tau": [4]}, "synthetic.methods.kd.lam"),
])
def test_bad_configuration_stops_before_any_job(tmp_path: Path, section: str, key: str, value,
                                                 expected: str) -> None:
    bad = yaml.safe_load(yaml.safe_dump(TINY))
    bad["synthetic"][section][key] = value
    workdir = copy_workflow(tmp_path, bad)
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode != 0
    assert expected in result.stderr
    assert not (workdir / "results").exists()
