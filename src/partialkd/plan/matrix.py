"""The CIFAR-100 job matrix of a params.yaml `cifar100` section: which teachers and students
are trained. Used by the workflow (one job each) and by the throughput benchmark (to estimate
the whole matrix's GPU time)."""
from __future__ import annotations

from typing import Any, NamedTuple

from partialkd.core.grid import Variant, expand_grid
from partialkd.core.targets import distils
from partialkd.reporting.summary import NO_TEACHER


class StudentRun(NamedTuple):
    student: str  # architecture
    teacher: str  # a name of `cifar100.teachers`, or NO_TEACHER for ce and ls
    variant: str  # the grid point's slug
    seed: int


def variants(section: dict[str, Any]) -> dict[str, Variant]:
    """Every grid point of the section's methods, by slug."""
    return {variant.slug: variant for variant in expand_grid(section["methods"])}


def teachers_used(section: dict[str, Any]) -> list[str]:
    """The teachers some pair distils from (a teacher defined but unused is not trained)."""
    return list(dict.fromkeys(pair["teacher"] for pair in section["students"]["pairs"]))


def student_runs(section: dict[str, Any]) -> list[StudentRun]:
    """Every student job, without repeats: the teacher-free students (ce, ls) of an
    architecture are shared by every pair with that student."""
    runs = set()
    for pair in section["students"]["pairs"]:
        methods = pair.get("methods", list(section["methods"]))
        for slug, variant in variants(section).items():
            if variant.method in methods:
                teacher = pair["teacher"] if distils(variant.method) else NO_TEACHER
                runs.update(StudentRun(pair["student"], teacher, slug, seed)
                            for seed in section["students"]["seeds"])
    return sorted(runs)
