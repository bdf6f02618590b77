"""A copy of the repository's workflow in a temporary folder, at tiny size, and runners for it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_FILES = ("Snakefile", "params.yaml", "dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore",
                  ".gitignore", "workflow", "src", "docs", "paper/main.tex")
CONFIGS = REPO / "tests/workflow/configs"  # tiny configurations a person can also run by hand
TINY = yaml.safe_load((CONFIGS / "synthetic.yaml").read_text())


def tool_env() -> dict[str, str]:
    """The environment with this Python's tools (snakemake, dvc, python) first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(workdir: Path, *command: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(command), cwd=workdir, env=tool_env(), capture_output=True,
                            text=True, timeout=600, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(workdir, sys.executable, "-m", "snakemake", "--cores", "2", *args)


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = deep_merge(base[key], value) if isinstance(value, dict) and key in base else value
    return merged


def copy_workflow(destination: Path, overrides: dict | None = None) -> Path:
    """The workflow's files in `destination`; `overrides` are written as tiny.yaml if given."""
    for name in WORKFLOW_FILES:
        source, target = REPO / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, target)
    if overrides is not None:
        (destination / "tiny.yaml").write_text(yaml.safe_dump(overrides))
    return destination


def data_phase(workdir: Path, config: dict, track: str) -> str:
    """Run `<track>_data_phase` on a copy of the workflow with `config` (tiny.yaml); its log."""
    copy_workflow(workdir, config)
    result = snakemake(workdir, f"{track}_data_phase", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return (workdir / f"logs/{track}/data.log").read_text()


def write_params(workdir: Path, overrides: dict) -> None:
    """params.yaml = the repository's params.yaml with `overrides` merged in."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (workdir / "params.yaml").write_text(yaml.safe_dump(deep_merge(params, overrides), sort_keys=False))


def planned_jobs(dry_run: subprocess.CompletedProcess[str]) -> Counter[str]:
    """The number of jobs per rule that a dry run plans, from its job statistics (none when it has
    nothing to do)."""
    assert dry_run.returncode == 0, dry_run.stderr[-3000:]
    output = dry_run.stdout + dry_run.stderr
    if "Job stats:" not in output:
        assert "Nothing to be done" in output, output[-3000:]
        return Counter()
    stats = output.split("Job stats:")[1].split("total")[0]
    return Counter({rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.MULTILINE)})


def planned_rules(dry_run: subprocess.CompletedProcess[str]) -> set[str]:
    """The rules of the jobs a dry run plans."""
    return set(planned_jobs(dry_run))


def planned_after_edit(workdir: Path, modules: str | tuple[str, ...], *args: str) -> Counter[str]:
    """The jobs a dry run (`args`: its options) plans after a comment line is appended to each of
    the package files src/partialkd/`modules`; the files are restored afterwards. Snakemake compares
    an input's contents, not only its time, so the edit must change the text."""
    paths = [workdir / "src/partialkd" / module for module in ((modules,) if isinstance(modules, str) else modules)]
    originals = [path.read_text() for path in paths]
    try:
        for path, original in zip(paths, originals):
            path.write_text(original + "# an edit\n")
        return planned_jobs(snakemake(workdir, "--dry-run", *args))
    finally:
        for path, original in zip(paths, originals):
            path.write_text(original)


def check_code_edits(workdir: Path, unrelated: tuple[str, ...], training_rules: set[str],
                     related: tuple[str, ...] = ()) -> None:
    """Issue 14, in a finished tiny workflow: comments added to the `unrelated` package modules
    plan no job; one added to the loss, or to any `related` module, plans every training job
    again (their rules: `training_rules`): one per run directory that the workflow trained,
    besides the teacher-logit caches that the students read."""
    assert not planned_after_edit(workdir, unrelated, "--configfile", "tiny.yaml")
    runs = [path for role in ("teachers", "students") for path in workdir.glob(f"results/*/{role}/**/metrics.json")]
    assert runs
    for module in ("core/losses.py", *related):
        replanned = planned_after_edit(workdir, module, "--configfile", "tiny.yaml")
        training = {rule: count for rule, count in replanned.items() if re.search("teacher|student", rule)}
        trained = sum(count for rule, count in training.items() if not rule.endswith("_cache"))
        assert set(training) == training_rules and trained == len(runs), (module, training)
