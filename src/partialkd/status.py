"""Where a long run stands: each track's jobs done, running and waiting, the running jobs' progress,
and an estimate of the time left.

    python -m partialkd.status                                   # params.yaml, the default target
    python -m partialkd.status --profile workflow/profiles/quick # the demo's run (`make status`)
    python -m partialkd.status synthetic_students_phase --cores 4 --configfile tiny.yaml

It takes the arguments of the `snakemake` command whose run it reports (targets, --profile,
--configfile, --config, --cores, --snakefile, --directory): Snakemake's own parser reads them,
profiles included. Snakemake then builds the job graph as `snakemake --summary --nolock` does:
without the lock, touching no output, so that it is safe beside a running workflow (like any
Snakemake command, it creates `.snakemake/`'s folders where missing and drops the I/O cache that
the last dry run saved).

A job is done when Snakemake would not rerun it (its outputs exist and are up to date); running
when Snakemake has marked its outputs incomplete (`.snakemake/incomplete/`) and a Snakemake
process holds the lock on this graph's files (without one, the marked jobs were interrupted and
count as waiting; a Snakemake killed outright leaves its lock, and its jobs read as running until
`snakemake --unlock`); waiting otherwise. A job belongs to the track of its `track` wildcard, else
of its rule's prefix (`synthetic_`, `ptb_`, ...: the `tracks` of the configuration), else to
"report/analyses". A running job's epoch and speed come from the last progress line that the
trainers (partialkd.training.engine) write to its log. The time left is, for each rule, the mean time
of its finished jobs (their `benchmark:` files, column `s`) times its jobs left, summed and
divided by the jobs run at a time (`--cores`, else `--jobs`, else 1; at most the jobs counted).
"""
from __future__ import annotations

import csv
import math
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from snakemake.api import SnakemakeApi
from snakemake.cli import parse_args, parse_config
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

STATES = ("done", "running", "waiting")
OTHER = "report/analyses"
# The trainers' progress line: "... epoch 3/200  mean loss 0.1234  top valid acc 0.5  812 images/s  lr 0.1".
PROGRESS = re.compile(r"epoch (\d+)/(\d+)\b.*?([\d.]+) (\w+)/s")


@dataclass(frozen=True)
class Job:
    rule: str
    name: str  # the rule and its wildcards
    track: str
    state: str  # one of STATES
    logs: tuple[Path, ...]
    benchmark: Path | None
    interrupted: bool = False  # marked incomplete, but no Snakemake holds the lock


def track_of(rule: str, wildcards: dict[str, str], tracks: list[str]) -> str:
    """The track of a job: its `track` wildcard, else its rule's prefix, else OTHER."""
    if "track" in wildcards:
        return wildcards["track"]
    return next((track for track in tracks if rule.startswith(f"{track}_")), OTHER)


def plan(argv: list[str]) -> tuple[list[Job], int]:
    """The jobs (with outputs) of the run that `snakemake ARGV` makes, and its parallel jobs."""
    _, args = parse_args(argv)
    output = OutputSettings(quiet={Quietness.ALL}, enable_file_logging=False)
    with SnakemakeApi(output) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=args.cores or 1),
            config_settings=ConfigSettings(config=parse_config(args.config), configfiles=args.configfile,
                                           config_args=args.config),
            snakefile=args.snakefile, workdir=args.directory)
        workflow_api.dag(DAGSettings(targets=set(args.targets)))
        # What `snakemake --summary --nolock` runs; Snakemake's API has no public call that
        # returns the graph instead of printing it.
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        dag, persistence = workflow.dag, workflow.persistence
        locked = persistence.locked
        tracks = list(workflow.config.get("tracks", []))
        jobs = []
        for job in dag.jobs:
            if not job.output:  # `all` and the phase targets: no work of their own
                continue
            marked = bool(persistence._filter_incomplete_keys(str(f) for f in job.output))
            state = "running" if marked and locked else "waiting" if dag.needrun(job) or marked else "done"
            wildcards = dict(job.wildcards_dict)
            name = " ".join([job.rule.name, *(f"{key}={value}" for key, value in wildcards.items())])
            jobs.append(Job(job.rule.name, name, track_of(job.rule.name, wildcards, tracks), state,
                            tuple(Path(os.path.abspath(f)) for f in job.log),
                            Path(os.path.abspath(job.benchmark)) if job.benchmark else None,
                            marked and not locked))
    return jobs, args.cores or args.jobs or 1


def counts(jobs: list[Job]) -> dict[str, Counter[str]]:
    """Per track, the number of jobs in each state."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for job in jobs:
        table[job.track][job.state] += 1
    return table


def progress(logs: tuple[Path, ...]) -> str:
    """The last progress line of the logs as 'epoch 3/200, 812 images/s', or why there is none."""
    for log in logs:
        if log.is_file():
            matches = PROGRESS.findall(log.read_text(errors="replace"))
            if matches:
                epoch, epochs, speed, unit = matches[-1]
                return f"epoch {epoch}/{epochs}, {float(speed):.0f} {unit}/s"
    return "no progress line yet"


def benchmark_seconds(path: Path) -> float:
    """The mean wall time (column `s`) of a Snakemake benchmark file."""
    with path.open() as handle:
        times = [float(row["s"]) for row in csv.DictReader(handle, delimiter="\t")]
    return mean(times)


def time_left(jobs: list[Job], workers: int) -> tuple[float | None, list[str]]:
    """The estimated seconds left (see the module docstring; None: no rule left has a recorded
    time) and the rules left out of it for want of one, as 'rule (jobs left)'."""
    recorded: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        if job.state == "done" and job.benchmark is not None and job.benchmark.is_file():
            recorded[job.rule].append(benchmark_seconds(job.benchmark))
    left = Counter(job.rule for job in jobs if job.state != "done")
    counted = {rule: count for rule, count in left.items() if recorded[rule]}
    unknown = [f"{rule} ({count})" for rule, count in left.items() if rule not in counted]
    if not counted:
        return None, unknown
    seconds = sum(count * mean(recorded[rule]) for rule, count in counted.items())
    return seconds / min(workers, sum(counted.values())), unknown


def duration(seconds: float) -> str:
    """'2 h 05 min', '7 min' (rounded up)."""
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def report(jobs: list[Job], workers: int) -> str:
    """The printed status: the table of counts, the running jobs, the time left."""
    table = counts(jobs)
    lines = [f"{'track':<18}" + "".join(f"{state:>9}" for state in STATES)]
    for track in sorted(table, key=lambda track: (track == OTHER, track)):
        lines.append(f"{track:<18}" + "".join(f"{table[track][state]:>9}" for state in STATES))
    total = Counter(job.state for job in jobs)
    lines.append(f"{'total':<18}" + "".join(f"{total[state]:>9}" for state in STATES))
    interrupted = sum(job.interrupted for job in jobs)
    if interrupted:
        lines.append(f"of the waiting, {interrupted} interrupted: marked incomplete, and no Snakemake"
                     " holds the lock (`snakemake --rerun-incomplete` redoes them)")
    running = [job for job in jobs if job.state == "running"]
    if running:
        lines.append("\nrunning (the last progress line of each log):")
        lines += [f"  {job.name}: {progress(job.logs)}" + "".join(f"  {os.path.relpath(log)}" for log in job.logs)
                  for job in running]
    seconds, unknown = time_left(jobs, workers)
    if not total["running"] + total["waiting"]:
        lines.append("\ntime left: none, every job is done")
        return "\n".join(lines)
    estimate = "unknown" if seconds is None else f"about {duration(seconds)}"
    lines.append(f"\ntime left: {estimate} at {workers} job{'s' * (workers != 1)} at a time (per rule,"
                 " the mean time of its finished jobs in their benchmark files times its jobs left;"
                 " summed, then divided by the jobs at a time)")
    if unknown and seconds is not None:
        lines.append(f"  not counted, no finished job with a recorded time yet: {', '.join(unknown)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    print(report(*plan(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
