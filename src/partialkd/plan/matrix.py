"""The job matrix of a real-data track's params.yaml section: which teachers and students are
trained. Used by the workflow (one job each) and by the throughput benchmark (to estimate the
whole CIFAR-100 matrix's GPU time)."""
from __future__ import annotations

from typing import Any, NamedTuple

from partialkd.core.grid import Variant, expand_grid
from partialkd.core.targets import distils
from partialkd.reporting.summary import NO_TEACHER


class StudentRun(NamedTuple):
    """One student network: one grid point of one method (CIFAR-100, Penn Treebank, ImageNet)."""
    student: str  # architecture
    teacher: str  # a name of the section's `teachers`, or NO_TEACHER for ce and ls
    variant: str  # the grid point's slug
    seed: int


class StackRun(NamedTuple):
    """One stack of students: every grid point of a pair's methods, trained as one stacked MLP on
    one teacher run (Fashion-MNIST)."""
    student: str  # architecture
    teacher: str  # a name of the section's `teachers`
    teacher_seed: int
    seed: int


def variants(section: dict[str, Any]) -> dict[str, Variant]:
    """Every grid point of the section's methods, by slug."""
    return {variant.slug: variant for variant in expand_grid(section["methods"])}


def teachers_used(section: dict[str, Any]) -> list[str]:
    """The teachers some pair distils from (a teacher defined but unused is not trained)."""
    return list(dict.fromkeys(pair["teacher"] for pair in section["students"]["pairs"]))


def trained_teachers(section: dict[str, Any]) -> list[str]:
    """The teachers some pair distils from that the workflow trains (not given as files)."""
    return [name for name in teachers_used(section) if "file" not in section["teachers"][name]]


def teacher_seeds(section: dict[str, Any]) -> list[int]:
    """The seeds of the section's teachers: several where the track trains several teachers of each
    kind (`teacher_seeds`, the claims' replicates), else its one `teacher_seed`."""
    return section["teacher_seeds"] if "teacher_seeds" in section else [section["teacher_seed"]]


def pair_methods(section: dict[str, Any], teacher: str, student: str) -> dict[str, Any]:
    """The method grids the pair (teacher, student) trains: its `methods`, or all of the section's."""
    pair = next(p for p in section["students"]["pairs"] if (p["teacher"], p["student"]) == (teacher, student))
    return {method: grid for method, grid in section["methods"].items()
            if method in pair.get("methods", section["methods"])}


def stack_runs(section: dict[str, Any]) -> list[StackRun]:
    """Every student stack: one per pair, teacher seed and seed."""
    return [StackRun(pair["student"], pair["teacher"], teacher_seed, seed)
            for pair in section["students"]["pairs"] for teacher_seed in section["teacher_seeds"]
            for seed in section["students"]["seeds"]]


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
