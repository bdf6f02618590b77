"""The real Snakemake workflow, at tiny size, in a copy of the repository's workflow files."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from partialkd.latex import find_engine
from helpers.latex_check import latex_problems
from helpers.runs import assert_same_run
from helpers.workflow_copy import (TINY, check_code_edits, copy_workflow, deep_merge, planned_after_edit, planned_rules,
                                   snakemake, tool_env)


@pytest.fixture(scope="module")
def finished_workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"), TINY)
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_workflow_builds_table_figure_and_report(finished_workflow: Path) -> None:
    summary = pd.read_csv(finished_workflow / "results/synthetic/summary.csv")
    students = summary[summary["role"] == "student"]
    # one row per γ × world × teacher × student architecture × seed × grid point (ls and kd_topk
    # have two), one per γ and world for the teacher
    assert len(students) == 2 * 2 * 2 * 2 * 1 * 9
    # one selected row per γ × world × teacher × student architecture × seed × method
    assert students["selected"].sum() == 2 * 2 * 2 * 2 * 1 * 7
    assert set(students["student"]) == {"mlp8", "linear"}
    assert sorted(students["world"].unique()) == [0, 1]
    selected = pd.read_csv(finished_workflow / "results/synthetic/selected.csv")  # for DVC plots
    assert selected.equals(students[students["selected"]].reset_index(drop=True))
    assert set(students["method"]) == set(TINY["synthetic"]["methods"])
    assert len(summary[summary["role"] == "teacher"]) == 2 * 2
    assert students["best_test_acc"].between(0, 1).all()
    for suffix in ("png", "pdf"):
        for figure in ("gain", "claims"):
            assert (finished_workflow / f"paper/figures/synthetic/{figure}.{suffix}").stat().st_size > 1000
    report = (finished_workflow / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## Synthetic study")
    # the forest plot of the claims opens the claims section
    assert report.index("## Claims") < report.index("figures/synthetic/claims.png") < report.index("Comparisons are")
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C10", "C11"):
        assert f"**{claim}**" in report
    assert "figures/synthetic/gain.png" in report and "figures/synthetic/topk.png" in report
    # the students' analyses: one per γ and world for the claims' teacher; the report shows the
    # first world's figures, and the claims pool the worlds (n = 2 worlds, not seeds)
    for gamma in ("0", "0.9"):
        for world in (0, 1):
            analysis = finished_workflow / f"results/synthetic/analyses/world{world}/gamma{gamma}/mlp/mlp8.json"
            assert analysis.is_file()
        for kind in ("rescaling", "geometry", "geometry_bars"):
            assert f"figures/synthetic/world0/gamma{gamma}_mlp_mlp8_{kind}.png" in report
            assert f"figures/synthetic/world1/gamma{gamma}_mlp_mlp8_{kind}.png" not in report
            assert (finished_workflow / f"paper/figures/synthetic/world0/gamma{gamma}_mlp_mlp8_{kind}.pdf").is_file()
    assert "(world sd " in report and "(seed sd " not in report
    # the oracle teacher's claims stand beside the MLP teacher's
    claims = json.loads((finished_workflow / "results/synthetic/claims.json").read_text())
    beside = {(b["teacher"], b["student"]): b for b in claims["beside"]}
    assert set(beside) == {("mlp", "linear"), ("oracle", "mlp8"), ("oracle", "linear")}
    assert [c["id"] for c in beside["oracle", "linear"]["claims"]][:3] == ["C1", "C2", "C3"]
    assert "`mlp8` students of the `mlp` teacher" in claims["scope"]
    assert "Beside them: the `linear` students of the `oracle` teacher" in report


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


def test_paper_tables_latex_body_and_pdf(finished_workflow: Path) -> None:
    paper = finished_workflow / "paper"
    report = (paper / "REPORT.md").read_text()
    for name in ("claims", "accuracy", "selected_variants"):
        assert (paper / f"tables/synthetic/{name}.md").read_text().rstrip() in report
        assert latex_problems((paper / f"tables/synthetic/{name}.tex").read_text(), paper, tabular=True) == []
    body = (paper / "generated/body.tex").read_text()
    assert latex_problems(body, paper) == []
    assert "\\includegraphics{figures/synthetic/world0/gamma0.9_mlp_mlp8_rescaling.pdf}" in body
    assert (paper / "main.pdf").is_file() == (find_engine() is not None)


def test_without_a_latex_engine_the_pdf_is_skipped_with_one_notice(finished_workflow: Path,
                                                                   tmp_path: Path) -> None:
    for tool in ("which", "bash", "sh"):  # what Snakemake needs from PATH, and no LaTeX engine
        (tmp_path / tool).symlink_to(shutil.which(tool))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile",
                             "tiny.yaml", "--dry-run"], cwd=finished_workflow, capture_output=True,
                            text=True, timeout=300,
                            env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{tmp_path}"})
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("Skipping paper/main.pdf: no LaTeX engine on PATH") == 1
    assert "Nothing to be done" in output


def test_snakemake_report_gives_html_with_captions(finished_workflow: Path, tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    result = snakemake(finished_workflow, "--configfile", "tiny.yaml", "--report", str(html))
    assert result.returncode == 0, result.stderr[-3000:]
    text = html.read_text()
    assert "the number of the teacher's classes kept" in text  # the top-k figure's caption
    assert "equivalence margin" in text  # the claims' caption
    assert "The claims at a glance" in text  # the forest plot's
    # the front page (workflow.rst) inlines the report rule's overview: verdicts, then forest plots
    assert "The paper's claims checked on this run's results" in text
    assert text.count("claims at a glance, synthetic") == 1


def test_redrawing_after_a_style_or_figure_parameter_change_retrains_nothing(finished_workflow: Path) -> None:
    restyled = set(planned_after_edit(finished_workflow, "reporting/style.py", "--configfile", "tiny.yaml"))
    (finished_workflow / "tiny_se.yaml").write_text(yaml.safe_dump(deep_merge(TINY, {"figures": {"error_bars": "se"}})))
    replotted = planned_rules(snakemake(finished_workflow, "--configfile", "tiny_se.yaml", "--dry-run"))
    for plan in (restyled, replotted):
        assert not [rule for rule in plan if re.search("dataset|teacher|student", rule)], plan
    assert {"track_figure", "synthetic_analysis", "report"} <= restyled
    assert replotted - {"paper_pdf", "all"} == {"track_figure", "report"}


def test_a_code_edit_reruns_exactly_the_jobs_that_run_the_code(finished_workflow: Path) -> None:
    """Issue 14: no synthetic job runs the LSTM or image-network code; every training job runs the loss."""
    check_code_edits(finished_workflow, ("training/lm.py", "models/lstm.py", "training/images.py", "models/vision.py"),
                     {"synthetic_teacher", "synthetic_student_stack"})


def test_a_new_track_is_a_track_entry_its_data_module_and_its_params(tmp_path: Path) -> None:
    """Issue 14 and the README's "Adding a track": with a `Track` entry, a data module and its
    params (section, schema, `tracks`) and no rule written, `snakemake -n` plans the new track's
    whole matrix through the shared `{track}` rules, down to its claims and the report."""
    copy_workflow(tmp_path)
    package = tmp_path / "src/partialkd"
    tracks = package / "plan/tracks.py"
    tracks.write_text(tracks.read_text().replace('    Track("cifar100",', '    Track("cifar10", "CIFAR-10", "CIFAR-10", '
                                                 '10, "vision", network_code=("training.images",)),\n    Track("cifar100",'))
    shutil.copy(package / "data/cifar100.py", package / "data/cifar10.py")
    schema_file = tmp_path / "workflow/schemas/params.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text())
    schema["properties"]["cifar10"] = schema["properties"]["cifar100"]
    schema["properties"]["tracks"]["items"]["enum"].append("cifar10")
    schema["required"].append("cifar10")
    schema_file.write_text(yaml.safe_dump(schema))
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["tracks"] = ["cifar10"]
    methods = {name: grid for name, grid in params["cifar100"]["methods"].items() if name != "kd_topk"}  # k ≤ 10
    params["cifar10"] = {**params["cifar100"], "methods": methods, "students": {"seeds": [0], "pairs": [
        {"teacher": "resnet56", "student": "resnet20"}, {"teacher": "resnet56_ls", "student": "resnet20"}]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    environment = {**tool_env(), "PYTHONPATH": str(tmp_path / "src")}  # the copy's package, not the repository's
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--dry-run"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert {"network_dataset", "network_teacher", "network_student", "network_summary", "network_analysis",
            "network_diagnosis", "network_claims", "report"} <= planned_rules(result)
    for path in ("results/cifar10/data/data.pt", "results/cifar10/teachers/resnet56_ls/model.pt",
                 "results/cifar10/students/resnet20/resnet56/kd-lam0.9-tau4/seed0/model.pt",
                 "results/cifar10/claims.json", "src/partialkd/data/cifar10.py"):
        assert path in result.stdout, path


def test_the_default_params_plan_all_five_tracks(tmp_path: Path) -> None:
    """`snakemake -n --resources gpu=4` on the repository's params.yaml plans every track's jobs;
    a dry run reads no data (the ImageNet root need not exist)."""
    copy_workflow(tmp_path)
    plan = planned_rules(snakemake(tmp_path, "--dry-run", "--resources", "gpu=4"))
    assert {"synthetic_summary", "network_summary", "network_teacher", "network_teacher_replicate",
            "network_student", "network_student_stack", "network_analysis", "network_claims", "report"} <= plan


# One γ, world, teacher and student architecture; the students train "forever" until the test
# kills the workflow, then for 2 epochs.
_ONE_CELL = {"data": {"gammas": [0.0], "world_seeds": [0]}, "teachers": ["mlp"],
             "student": {"architectures": TINY["synthetic"]["student"]["architectures"][:1], "epochs": 100_000}}
ENDLESS = deep_merge(TINY, {"synthetic": _ONE_CELL})
SHORT = deep_merge(ENDLESS, {"synthetic": {"student": {"epochs": 2}}})


def test_a_crash_then_a_changed_parameter_reruns_without_any_cleaning(tmp_path: Path) -> None:
    """Issue 16: kill the workflow while a student stack trains, change the students' epochs and
    run again: the job starts afresh beside the killed run's resume state, says why, finishes,
    and equals an uninterrupted run with the new value."""
    workdir = copy_workflow(tmp_path / "crashed", ENDLESS)
    assert snakemake(workdir, "synthetic_teachers_phase", "--configfile", "tiny.yaml").returncode == 0
    with (tmp_path / "killed.log").open("w") as output:
        killed = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "synthetic_students_phase",
                                   "--configfile", "tiny.yaml"], cwd=workdir, env=tool_env(), stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (states := list((workdir / "results/synthetic/students").rglob("resume-*.pt"))):
            assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.1)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(SHORT))
    assert snakemake(workdir, "--unlock", "--configfile", "tiny.yaml").returncode == 0
    rerun = snakemake(workdir, "synthetic_students_phase", "--rerun-incomplete", "--configfile", "tiny.yaml")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    logs = "".join(path.read_text() for path in (workdir / "logs/synthetic/students").rglob("*.log"))
    assert f"{states[0].relative_to(workdir)} holds the state of another configuration (differs in: " \
           "config.epochs: 100000 -> 2)" in logs, logs[-3000:]
    reference = copy_workflow(tmp_path / "reference", SHORT)
    assert snakemake(reference, "synthetic_students_phase", "--configfile", "tiny.yaml").returncode == 0
    for metrics in (reference / "results/synthetic/students").rglob("metrics.json"):
        assert_same_run(workdir / metrics.parent.relative_to(reference), metrics.parent)
