"""DVC over the Snakemake workflow, with the real `dvc` and `git`, in a temporary repository."""
from __future__ import annotations

import csv
import hashlib
import io
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workflow_copy import TINY, copy_workflow, deep_merge, run, snakemake, tool_env, write_params

GIT = ("git", "-c", "user.name=test", "-c", "user.email=test@example.invalid")
# Smaller than the workflow test's size: DVC's behaviour does not depend on the matrix size.
DVC_TINY = deep_merge(TINY, {"synthetic": {"data": {"gammas": [0.0]}, "teachers": ["mlp"],
                                           "student": {"seeds": [0]}}})


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def fingerprints(root: Path, pattern: str) -> dict[str, tuple[str, int]]:
    """Content hash and modification time of each file matching `pattern`."""
    return {str(path.relative_to(root)): (hashlib.md5(path.read_bytes()).hexdigest(),
                                          path.stat().st_mtime_ns)
            for path in sorted(root.glob(pattern)) if path.is_file()}


def dvc_repro(repo: Path) -> str:
    result = run(repo, "dvc", "repro", check=True)
    return result.stdout + result.stderr


def change_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_merge(params, overrides), sort_keys=False))


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone's state: the workflow committed to git, then one full `dvc repro`."""
    repo = copy_workflow(tmp_path_factory.mktemp("dvc_repo"))
    write_params(repo, DVC_TINY)
    run(repo, "git", "init", "-q", check=True)
    run(repo, "git", "add", "-A", check=True)
    run(repo, *GIT, "commit", "-qm", "workflow", check=True)
    output = dvc_repro(repo)
    assert stages_run(output) == {"synthetic_data", "synthetic_teachers", "synthetic_students",
                                  "synthetic_summary", "report"}
    return repo


def test_repro_builds_everything_and_a_second_repro_does_nothing(dvc_repo: Path) -> None:
    assert (dvc_repo / "paper/REPORT.md").is_file()
    assert (dvc_repo / "dvc.lock").is_file()
    assert stages_run(dvc_repro(dvc_repo)) == set()
    assert "up to date" in run(dvc_repo, "dvc", "status", check=True).stdout
    metrics = run(dvc_repo, "dvc", "metrics", "show", check=True).stdout
    assert "mlp.gamma_0.kd_pt" in metrics
    plots = dvc_repo.parent / "plots"
    run(dvc_repo, "dvc", "plots", "show", "-o", str(plots), check=True)
    assert "best_test_acc" in (plots / "index.html").read_text()


def test_parameter_changes_rerun_only_what_they_touch(dvc_repo: Path) -> None:
    teachers = fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt")
    students = fingerprints(dvc_repo, "results/synthetic/students/**/model.pt")
    assert teachers and students

    change_params(dvc_repo, {"synthetic": {"student": {"epochs": 3}}})
    assert "synthetic.student.epochs" in run(dvc_repo, "dvc", "params", "diff", check=True).stdout
    assert stages_run(dvc_repro(dvc_repo)) == {"synthetic_students", "synthetic_summary", "report"}
    assert "mlp.gamma_0.kd" in run(dvc_repo, "dvc", "metrics", "diff", check=True).stdout
    assert fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt") == teachers
    retrained = fingerprints(dvc_repo, "results/synthetic/students/**/model.pt")
    assert all(retrained[name][0] != students[name][0] for name in students)

    figure = fingerprints(dvc_repo, "paper/figures/synthetic/gain.png")
    change_params(dvc_repo, {"claims": {"margin": 0.25}, "figures": {"error_bars": "se"}})
    assert stages_run(dvc_repro(dvc_repo)) == {"report"}
    assert fingerprints(dvc_repo, "results/synthetic/students/**/model.pt") == retrained
    assert fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt") == teachers
    assert fingerprints(dvc_repo, "paper/figures/synthetic/gain.png") != figure
    report = (dvc_repo / "paper/REPORT.md").read_text()
    assert "±0.25 points" in report and "mean ± standard error over" in report


# paper/main.pdf exists only where a LaTeX engine is installed: DVC does not version it.
UNVERSIONED_RULES = {"paper_pdf"}


def test_every_snakemake_output_belongs_to_exactly_one_stage(tmp_path: Path) -> None:
    """dvc.yaml and the Snakemake graph agree: each output under one stage's outs, each input a
    dependency of that stage (or its own output), each stage's target a Snakemake rule."""
    repo = copy_workflow(tmp_path, TINY)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    outs = {name: [_path(out) for out in stage.get("outs", []) + stage.get("metrics", [])]
            for name, stage in stages.items()}
    deps = {name: stage.get("deps", []) for name, stage in stages.items()}
    rules = set(snakemake(repo, "--configfile", "tiny.yaml", "--list-rules").stdout.split())
    for name, stage in stages.items():
        assert stage["cmd"].split()[-1] in rules, f"stage {name}: its target is not a rule"
    plan = snakemake(repo, "--configfile", "tiny.yaml", "--dry-run", "--forceall")
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = planned_jobs(plan.stdout + plan.stderr)
    assert jobs
    for rule, inputs, outputs in jobs:
        if rule in UNVERSIONED_RULES:
            continue
        for output in outputs:
            owners = [name for name, paths in outs.items() if any(_under(output, p) for p in paths)]
            assert len(owners) == 1, f"{output} (rule {rule}) lies under the outs of {owners}"
            for needed in inputs:
                assert any(_under(needed, p) for p in deps[owners[0]] + outs[owners[0]]), (
                    f"stage {owners[0]}: {needed}, an input of rule {rule}, is not a dependency")


def planned_jobs(dry_run: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, inputs, outputs) of each job a Snakemake dry run lists."""
    jobs = []
    for block in re.split(r"\n(?:local)?rule ", dry_run)[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(re.findall(r"^    (input|output): (.*)$", block, flags=re.MULTILINE))
        if "output" in fields:
            inputs = [path for path in fields.get("input", "").split(", ") if path]
            jobs.append((rule, inputs, fields["output"].split(", ")))
    return jobs


def _path(entry: str | dict) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def test_results_of_a_plain_snakemake_run_are_recorded_without_recomputing(tmp_path: Path) -> None:
    repo = copy_workflow(tmp_path)
    write_params(repo, DVC_TINY)
    run(repo, "git", "init", "-q", check=True)
    assert snakemake(repo).returncode == 0
    before = fingerprints(repo, "results/**/*.pt")
    run(repo, "dvc", "commit", "--force", check=True)
    assert "up to date" in run(repo, "dvc", "status", check=True).stdout
    assert stages_run(dvc_repro(repo)) == set()
    assert fingerprints(repo, "results/**/*.pt") == before


def test_a_colleague_pulls_every_result_and_has_nothing_to_recompute(dvc_repo: Path,
                                                                     tmp_path: Path) -> None:
    run(dvc_repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "store"), check=True)
    run(dvc_repo, "git", "add", "-A", check=True)
    run(dvc_repo, *GIT, "commit", "-qm", "results and remote", check=True)
    run(dvc_repo, "dvc", "push", check=True)
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(dvc_repo), str(clone), check=True)
    run(clone, "dvc", "pull", check=True)
    assert snakemake(clone, "--touch").returncode == 0
    plan = snakemake(clone, "--dry-run")
    # nothing to recompute; only the unversioned PDF is built, where a LaTeX engine is
    planned = {rule for rule, _, _ in planned_jobs(plan.stdout + plan.stderr)}
    assert planned <= UNVERSIONED_RULES | {"all"}, plan.stdout[-4000:]
    assert "up to date" in run(clone, "dvc", "status", check=True).stdout
    pattern = "results/**/*.*"
    assert {k: v[0] for k, v in fingerprints(clone, pattern).items()} == {
        k: v[0] for k, v in fingerprints(dvc_repo, pattern).items() if not k.endswith(".gitignore")}


def test_a_one_parameter_experiment_runs_in_the_workspace(dvc_repo: Path) -> None:
    teachers = fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt")
    result = run(dvc_repo, "dvc", "exp", "run", "-S", "synthetic.student.epochs=1", check=True)
    assert stages_run(result.stdout + result.stderr) == {"synthetic_students", "synthetic_summary",
                                                         "report"}
    assert yaml.safe_load((dvc_repo / "params.yaml").read_text())["synthetic"]["student"]["epochs"] == 1
    assert fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt") == teachers
    shown = csv.DictReader(io.StringIO(run(dvc_repo, "dvc", "exp", "show", "--csv", check=True).stdout))
    assert "1" in [row["synthetic.student.epochs"] for row in shown]


def test_a_second_repro_while_one_runs_is_refused_and_corrupts_nothing(dvc_repo: Path) -> None:
    change_params(dvc_repo, {"synthetic": {"student": {"epochs": 4}}})
    first = subprocess.Popen(["dvc", "repro"], cwd=dvc_repo, env=tool_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _newer_than_params(dvc_repo):
            assert first.poll() is None, "the first repro ended before the second could start"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = run(dvc_repo, "dvc", "repro")
        assert second.returncode != 0
        assert "lock" in (second.stdout + second.stderr).lower()
    finally:
        output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output[-3000:]
    assert "up to date" in run(dvc_repo, "dvc", "status", check=True).stdout
    assert stages_run(dvc_repro(dvc_repo)) == set()


def _newer_than_params(repo: Path) -> bool:
    """Some student job of the running repro has started (its log is newer than params.yaml)."""
    params_time = (repo / "params.yaml").stat().st_mtime
    return any(log.stat().st_mtime > params_time
               for log in repo.glob("logs/synthetic/students/**/*.log"))
