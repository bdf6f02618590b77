"""DVC over the Snakemake workflow, with the real `dvc` and `git`, in a temporary repository."""
from __future__ import annotations

import csv
import hashlib
import io
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from helpers.workflow_copy import TINY, copy_workflow, deep_merge, run, snakemake, tool_env, write_params

GIT = ("git", "-c", "user.name=test", "-c", "user.email=test@example.invalid")
# Smaller than the workflow test's size: DVC's behaviour does not depend on the matrix size.
_ONE_STUDENT = TINY["synthetic"]["student"]["architectures"][:1]  # mlp8
DVC_TINY = deep_merge(TINY, {"synthetic": {"data": {"gammas": [0.0], "world_seeds": [0]}, "teachers": ["mlp"],
                                           "student": {"seeds": [0], "architectures": _ONE_STUDENT}}})
# The per-track stages of dvc.yaml, generated for each track that `tracks` lists.
PHASES = ("data", "train", "summary", "analyses")
SYNTHETIC_STAGES = {f"{phase}@synthetic" for phase in PHASES} | {"report"}
# Every track at a tiny size, for plans and DVC's stage list only (nothing runs, so no data is
# needed). Each image track has a student taught by several teachers (its diagnoses), except
# Penn Treebank, which has none (an empty diagnoses folder); ImageNet's teacher is trained.
_METHODS = {"ce": {}, "ls": {"lam": [0.1, 0.2], "tau": [1]}, "kd": {"lam": [0.9], "tau": [4]},
            "kd_pt": {"lam": [0.9], "tau": [4]}, "kd_sim": {"lam": [0.9], "tau": [4], "alpha": [0.3]},
            "kd_pt_sim": {"lam": [0.9], "tau": [4], "alpha": [0.3]},
            "kd_topk": {"lam": [0.9], "tau": [4], "k": [2]}}
ALL_TRACKS_TINY = deep_merge(TINY, {
    "tracks": ["synthetic", "cifar100", "fashion_mnist", "ptb", "imagenet"],
    "cifar100": {"teachers": {"small": {"arch": "resnet8", "target": {"ce": {}}},
                              "small_ls": {"arch": "resnet8", "target": {"ls": {"lam": [0.1], "tau": [1]}}}},
                 "students": {"seeds": [0], "pairs": [{"teacher": "small", "student": "resnet8"},
                                                      {"teacher": "small_ls", "student": "resnet8",
                                                       "methods": ["kd"]}]},
                 "methods": _METHODS},
    "fashion_mnist": {"teachers": {"cnn": {"arch": "cnn_16_32", "target": {"ce": {}}},
                                   "cnn_wide": {"arch": "cnn_32_64", "target": {"ce": {}}}},
                      "students": {"seeds": [0], "architectures": {"mlp8": {"hidden": [8]}},
                                   "pairs": [{"teacher": "cnn", "student": "mlp8"},
                                             {"teacher": "cnn_wide", "student": "mlp8", "methods": ["kd"]}]},
                      "methods": _METHODS},
    "ptb": {"teachers": {"medium": {"arch": "tiny", "target": {"ce": {}}}},
            "students": {"seeds": [0], "pairs": [{"teacher": "medium", "student": "tiny"}]},
            "methods": _METHODS},
    "imagenet": {"teachers": {"resnet34": {"arch": "resnet34", "target": {"ce": {}}},
                              "resnet34_ls": {"arch": "resnet34",
                                              "target": {"ls": {"lam": [0.1], "tau": [1]}}}},
                 "students": {"seeds": [0], "pairs": [{"teacher": "resnet34", "student": "resnet18"},
                                                      {"teacher": "resnet34_ls", "student": "resnet18",
                                                       "methods": ["kd"]}]},
                 "methods": _METHODS},
})


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
    """A fresh clone's state after a first run: the workflow committed to git; `dvc repro` of the
    data stage; everything else by a plain `snakemake` run, whose results `make record` records
    (`dvc commit --force`) without recomputing them."""
    repo = copy_workflow(tmp_path_factory.mktemp("dvc_repo"))
    write_params(repo, DVC_TINY)
    run(repo, "git", "init", "-q", check=True)
    run(repo, "git", "add", "-A", check=True)
    run(repo, *GIT, "commit", "-qm", "workflow", check=True)
    assert stages_run(run(repo, "dvc", "repro", "data@synthetic", check=True).stdout) == {"data@synthetic"}
    assert snakemake(repo).returncode == 0
    before = fingerprints(repo, "results/**/*.pt")
    run(repo, "dvc", "commit", "--force", check=True)
    assert fingerprints(repo, "results/**/*.pt") == before
    return repo


def test_recorded_results_are_up_to_date_and_a_repro_does_nothing(dvc_repo: Path) -> None:
    assert (dvc_repo / "paper/REPORT.md").is_file()
    assert (dvc_repo / "dvc.lock").is_file()
    assert "up to date" in run(dvc_repo, "dvc", "status", check=True).stdout
    before = fingerprints(dvc_repo, "results/**/*.pt")
    assert stages_run(dvc_repro(dvc_repo)) == set()
    assert fingerprints(dvc_repo, "results/**/*.pt") == before
    metrics = run(dvc_repo, "dvc", "metrics", "show", check=True).stdout
    assert "mlp.gamma_0_student_mlp8.kd_pt" in metrics
    plots = dvc_repo.parent / "plots"
    run(dvc_repo, "dvc", "plots", "show", "-o", str(plots), check=True)
    assert "best_test_acc" in (plots / "index.html").read_text()


def test_debris_of_killed_runs_is_no_result(dvc_repo: Path) -> None:
    """Issue 16: a resume state left by a failed run, and the temporary file of a write killed
    mid-way, are not results: `dvc status` stays clean and `dvc commit` records neither."""
    run_dir = next(path.parent for path in (dvc_repo / "results/synthetic/students").rglob("model.pt"))
    debris = [run_dir / "resume-0123456789abcdef.pt", run_dir / ".model.pt.k9j8h7g6.tmp",
              dvc_repo / "results/synthetic/teachers/.metrics.json.a1b2c3d4.tmp"]
    for path in debris:
        path.write_bytes(b"left by a killed run")
    try:
        assert "up to date" in run(dvc_repo, "dvc", "status", check=True).stdout
    finally:
        for path in debris:
            path.unlink()


def test_a_student_parameter_retrains_the_students_alone(dvc_repo: Path) -> None:
    teachers = fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt")
    students = fingerprints(dvc_repo, "results/synthetic/students/**/model.pt")
    assert teachers and students

    change_params(dvc_repo, {"synthetic": {"student": {"epochs": 3}}})
    assert "synthetic.student.epochs" in run(dvc_repo, "dvc", "params", "diff", check=True).stdout
    # the teachers and students are one stage; Snakemake retrains the students alone
    assert stages_run(dvc_repro(dvc_repo)) == SYNTHETIC_STAGES - {"data@synthetic"}
    assert "mlp.gamma_0_student_mlp8.kd" in run(dvc_repo, "dvc", "metrics", "diff", check=True).stdout
    assert fingerprints(dvc_repo, "results/synthetic/teachers/**/model.pt") == teachers
    retrained = fingerprints(dvc_repo, "results/synthetic/students/**/model.pt")
    assert all(retrained[name][0] != students[name][0] for name in students)


# paper/main.pdf exists only where a LaTeX engine is installed: DVC does not version it.
UNVERSIONED_RULES = {"paper_pdf"}
PACKAGE = "src/partialkd/"


def test_every_snakemake_output_belongs_to_exactly_one_stage(tmp_path: Path) -> None:
    """dvc.yaml and the Snakemake graph agree, with every track listed: DVC generates each
    phase's stage for each track, each output lies under one stage's outs, each input is a
    dependency of that stage (or its own output), and each stage's targets are rules."""
    repo = copy_workflow(tmp_path)
    write_params(repo, ALL_TRACKS_TINY)
    stages = dvc_stages(repo)
    tracks = ALL_TRACKS_TINY["tracks"]
    assert set(stages) == {f"{phase}@{track}" for phase in PHASES for track in tracks} | {"report"}
    commands = {name: stage_command(stage["cmd"]) for name, stage in stages.items()}
    targets = [target for command in commands.values() for target in command["targets"]]
    plan = snakemake(repo, "--dry-run", "--forceall", "all", *dict.fromkeys(targets))
    assert plan.returncode == 0, plan.stderr[-3000:]
    rules = set(re.findall(r"^(?:local)?rule (\w+):", plan.stdout, flags=re.MULTILINE))
    jobs = planned_jobs(plan.stdout + plan.stderr)
    assert jobs
    planned = {output for _, _, outputs in jobs for output in outputs}
    for name, command in commands.items():
        assert set(command["targets"]) <= rules, f"stage {name}: a target is not a rule"
        assert all(until in rules or until in planned for until in command["until"]), name
        if command["until"]:  # a track's part of the report's graph: that track's jobs alone
            assert command["config"] == [f"tracks=[{name.partition('@')[2]}]"], name
        assert all(any(_under(made, out) for out in stages[name]["outs"]) for made in command["made"]), (
            f"stage {name}: it creates a folder outside its outs")
    code_inputs = {phase: set() for phase in {name.partition("@")[0] for name in stages}}
    for rule, inputs, outputs in jobs:
        if rule in UNVERSIONED_RULES:
            continue
        for output in outputs:
            owners = [name for name, stage in stages.items() if any(_under(output, p) for p in stage["outs"])]
            assert len(owners) == 1, f"{output} (rule {rule}) lies under the outs of {owners}"
            stage = stages[owners[0]]
            code_inputs[owners[0].partition("@")[0]] |= {path for path in inputs if path.startswith(PACKAGE)}
            for needed in inputs:
                assert any(_under(needed, p) for p in stage["deps"] + stage["outs"]), (
                    f"stage {owners[0]}: {needed}, an input of rule {rule}, is not a dependency")
    for name, stage in stages.items():  # a phase's stages share one code list: its jobs' code, no more
        extra = {path for path in stage["deps"] if path.startswith(PACKAGE)} - code_inputs[name.partition("@")[0]]
        assert not extra, f"stage {name}: no job of its phase runs {sorted(extra)}; drop them from dvc.yaml"


def test_only_the_listed_tracks_have_stages(tmp_path: Path) -> None:
    repo = copy_workflow(tmp_path)
    write_params(repo, {**ALL_TRACKS_TINY, "tracks": ["fashion_mnist", "ptb"]})
    stages = dvc_stages(repo)
    assert set(stages) == {f"{phase}@{track}" for phase in PHASES for track in ("fashion_mnist", "ptb")} | {
        "report"}
    assert stages["train@ptb"]["params"] == ["ptb"]
    assert stages["report"]["params"] == []  # the whole file, as Snakemake's report rule


def dvc_stages(repo: Path) -> dict[str, dict]:
    """The stages DVC generates from dvc.yaml and params.yaml: command, dependency paths (a params
    file tracked whole, `params.yaml:`, among them), output paths (metrics included) and params
    keys (an empty list: every parameter)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo), config={"core": {"no_scm": True}}) as dvc:  # no git needed to read
        stages = dvc.index.stages
    return {stage.name: {"cmd": stage.cmd,
                         "deps": [dep.def_path for dep in stage.deps
                                  if not isinstance(dep, ParamsDependency) or not dep.params],
                         "params": [key for dep in stage.deps if isinstance(dep, ParamsDependency)
                                    for key in dep.params],
                         "outs": [out.def_path for out in stage.outs]}
            for stage in stages}


def stage_command(cmd: str) -> dict[str, list[str]]:
    """A stage's `snakemake --cores all TARGET... [--until X...] [--config ...] [&& mkdir -p DIR]`:
    its targets, its `--until` rules or files, its `--config` overrides and the folders it creates."""
    command, _, made = cmd.partition("&&")
    words = shlex.split(command)
    assert words[:3] == ["snakemake", "--cores", "all"], cmd
    options = re.split(r" (?=--)", " ".join(words[3:]))
    given = {option.split()[0]: option.split()[1:] for option in options[1:]}
    folders = shlex.split(made)
    assert folders[:2] == ["mkdir", "-p"] or not folders, cmd
    return {"targets": options[0].split(), "until": given.get("--until", []),
            "config": given.get("--config", []), "made": folders[2:]}


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


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


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


def test_a_claims_or_figures_experiment_reruns_the_analyses_and_report_only(dvc_repo: Path) -> None:
    trained = fingerprints(dvc_repo, "results/synthetic/*/**/model.pt")
    figure = fingerprints(dvc_repo, "paper/figures/synthetic/gain.png")
    result = run(dvc_repo, "dvc", "exp", "run", "-S", "claims.margin=0.3", "-S", "figures.error_bars=se",
                 check=True)
    assert stages_run(result.stdout + result.stderr) == {"analyses@synthetic", "report"}
    params = yaml.safe_load((dvc_repo / "params.yaml").read_text())
    assert (params["claims"]["margin"], params["figures"]["error_bars"]) == (0.3, "se")
    report = (dvc_repo / "paper/REPORT.md").read_text()
    assert "margin δ = 0.3 pts" in report and "mean ± standard error over" in report
    assert fingerprints(dvc_repo, "results/synthetic/*/**/model.pt") == trained
    assert fingerprints(dvc_repo, "paper/figures/synthetic/gain.png") != figure
    shown = csv.DictReader(io.StringIO(run(dvc_repo, "dvc", "exp", "show", "--csv", check=True).stdout))
    assert "0.3" in [row["claims.margin"] for row in shown]


def test_a_second_repro_while_one_runs_is_refused_and_corrupts_nothing(dvc_repo: Path) -> None:
    change_params(dvc_repo, {"claims": {"margin": 0.4}})
    first = subprocess.Popen(["dvc", "repro"], cwd=dvc_repo, env=tool_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _newer_than_params(dvc_repo):
            assert first.poll() is None, "the first repro ended before the second could start"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = run(dvc_repo, "dvc", "repro")
        assert first.poll() is None, "the first repro ended before the second was refused"
        assert second.returncode != 0
        assert "lock" in (second.stdout + second.stderr).lower()
    finally:
        output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output[-3000:]
    assert "up to date" in run(dvc_repo, "dvc", "status", check=True).stdout
    assert stages_run(dvc_repro(dvc_repo)) == set()


def _newer_than_params(repo: Path) -> bool:
    """A job of the running repro has started (the claims' log is newer than params.yaml)."""
    log = repo / "logs/synthetic/claims.log"
    return log.is_file() and log.stat().st_mtime > (repo / "params.yaml").stat().st_mtime
