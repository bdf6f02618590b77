"""`python -m partialkd.status` beside a running tiny workflow: each track's counts, the running
job's progress from its log, interrupted jobs, and the arithmetic of the time left."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from partialkd.status import Job, duration, time_left
from helpers.workflow_copy import TINY, copy_workflow, deep_merge, run, snakemake, tool_env

# One γ, and student stacks that train for minutes: the test stops the workflow while the first
# one runs.
SLOW_STUDENTS = deep_merge(TINY, {"synthetic": {"data": {"gammas": [0.0]}, "student": {"epochs": 100_000}}})


def status(workdir: Path, *args: str) -> str:
    return run(workdir, sys.executable, "-m", "partialkd.status", *args, "--configfile", "tiny.yaml",
               check=True).stdout


def row(text: str, name: str) -> list[str]:
    """The words after NAME on the line of TEXT that starts with it."""
    return next(line.split()[1:] for line in text.splitlines() if line.split()[:1] == [name])


def jobs_planned(output: str, target: str) -> int:
    """The jobs that a Snakemake run of TARGET plans, the target rule aside (it has no outputs),
    from the job statistics it prints before it starts."""
    stats = output.split("Job stats:")[1].split("total")[0]
    return sum(int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, flags=re.MULTILINE)
               if rule != target)


def wait_for_progress(workdir: Path, workflow: subprocess.Popen, output: Path) -> Path:
    """The first student log with a progress line (an epoch done)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert workflow.poll() is None, f"the workflow stopped:\n{output.read_text()[-3000:]}"
        for log in (workdir / "logs/synthetic/students").rglob("*.log"):
            if " epoch " in log.read_text():
                return log
        time.sleep(0.2)
    raise AssertionError("no student logged an epoch within 60 s")


def test_status_of_a_half_finished_workflow(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path, SLOW_STUDENTS)
    result = snakemake(workdir, "synthetic_teachers_phase", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    done = jobs_planned(result.stderr, "synthetic_teachers_phase")  # the data and the teachers
    # The student stacks, one at a time, in a session of their own so that the test can stop it all.
    output = tmp_path / "students.log"
    with output.open("w") as handle:
        workflow = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "synthetic_students_phase",
                                     "--configfile", "tiny.yaml"], cwd=workdir, env=tool_env(),
                                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log = wait_for_progress(workdir, workflow, output)
        phase = status(workdir, "synthetic_students_phase", "--cores", "1")
        everything = status(workdir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(workflow.pid, signal.SIGKILL)  # as a crash would: the lock and marks stay
        workflow.wait(timeout=30)
    students = jobs_planned(output.read_text(), "synthetic_students_phase")  # the student stacks
    # One student stack running, the others waiting.
    assert row(phase, "synthetic") == row(phase, "total") == [str(done), "1", str(students - 1)]
    running = row(phase, "synthetic_student_stack")
    assert running[running.index("epoch") + 1].endswith("/100000,") and running[-2] == "examples/s"
    assert running[-1] == str(log.relative_to(workdir))
    assert "time left: unknown at 1 job at a time" in phase  # no student stack finished yet
    # The default target adds the summary, analyses and figures to the track, and the report.
    assert row(everything, "synthetic")[:2] == [str(done), "1"]
    assert int(row(everything, "synthetic")[2]) > students - 1
    assert row(everything, "report/analyses")[:2] == ["0", "0"]

    assert snakemake(workdir, "--unlock", "--configfile", "tiny.yaml").returncode == 0
    after = status(workdir, "synthetic_students_phase")
    assert row(after, "total") == [str(done), "0", str(students)]
    assert "of the waiting, 1 interrupted" in after


def test_time_left_from_the_benchmarks_of_finished_jobs(tmp_path: Path) -> None:
    def job(rule: str, state: str, seconds: float | None = None) -> Job:
        benchmark = None
        if seconds is not None:
            benchmark = tmp_path / f"{rule}{seconds}.tsv"
            benchmark.write_text(f"s\th:m:s\n{seconds}\t0:00:{seconds:02.0f}\n")
        return Job(rule, rule, "synthetic", state, (), benchmark)

    jobs = [job("teacher", "done", 10), job("teacher", "done", 20), *[job("teacher", "waiting")] * 2,
            job("teacher", "running"), job("summary", "waiting")]
    # 3 teachers left at a mean of 15 s, 2 at a time; the summary has no recorded time.
    assert time_left(jobs, workers=2) == (3 * 15 / 2, ["summary (1)"])
    assert time_left(jobs, workers=8) == (3 * 15 / 3, ["summary (1)"])
    assert time_left(jobs[-1:], workers=1) == (None, ["summary (1)"])
    assert (duration(3 * 3600 + 301), duration(61)) == ("3 h 06 min", "2 min")
