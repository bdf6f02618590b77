"""The real Snakemake workflow, at tiny size, in a copy of the repository's workflow files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "params.yaml", "workflow")
TINY = {
    "synthetic": {
        "data": {"gammas": [0.0, 0.9], "num_classes": 6, "num_groups": 2, "dim": 10,
                 "link_a": [0.5, 1.0], "link_b": [0.0, 1.0],
                 "sizes": {"train": 600, "valid": 300, "test": 300}},
        "teacher": {"hidden": [16], "epochs": 2},
        "teachers": ["mlp", "oracle"],
        "student": {"hidden": [8], "train_size": 200, "epochs": 2, "seeds": [0, 1]},
        "methods": {"ce": {}, "ls": {"lam": [0.5], "tau": [1]}, "kd": {"lam": [0.9], "tau": [4]},
                    "kd_pt": {"lam": [0.9], "tau": [4]},
                    "kd_sim": {"lam": [0.9], "tau": [1], "alpha": [0.3]},
                    "kd_pt_sim": {"lam": [0.9], "tau": [1], "alpha": [0.3]},
                    "kd_topk": {"lam": [0.9], "tau": [4], "k": [2, 3]}},
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed snakemake with the test's Python environment first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)


def copy_workflow(destination: Path, overrides: dict) -> Path:
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name)
        else:
            shutil.copy(source, destination / name)
    (destination / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    return destination


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"), TINY)
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_workflow_builds_table_figure_and_report(finished_workflow: Path) -> None:
    summary = pd.read_csv(finished_workflow / "results/synthetic/summary.csv")
    students = summary[summary["role"] == "student"]
    # one row per γ × teacher × seed × method, plus one row per γ for the trained teacher
    assert len(students) == 2 * 2 * 2 * 7
    assert set(students["method"]) == set(TINY["synthetic"]["methods"])
    assert len(summary[summary["role"] == "teacher"]) == 2
    assert students["best_test_acc"].between(0, 1).all()
    for suffix in ("png", "pdf"):
        assert (finished_workflow / f"paper/figures/synthetic/gain.{suffix}").stat().st_size > 1000
    report = (finished_workflow / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## Synthetic study")
    for claim in ("C5", "C6", "C7"):
        assert f"**{claim}**" in report
    assert "figures/synthetic/gain.png" in report


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
