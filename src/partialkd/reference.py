"""The paper's and the benchmarks' published numbers that our tables stand beside (NOTES §4).

These are references to compare with, never inputs to any result.
"""
from __future__ import annotations

from typing import Any

# Top-1 test accuracy (%) on CIFAR-100 with the benchmark recipe, per (teacher, student)
# architecture: the teacher, the student trained alone (ce) and with KD.
CIFAR100_PUBLISHED: dict[tuple[str, str], dict[str, float]] = {
    ("resnet56", "resnet20"): {"teacher": 72.34, "ce": 69.06, "kd": 70.66},
    ("resnet110", "resnet32"): {"teacher": 74.31, "ce": 71.14, "kd": 73.08},
    ("resnet32x4", "resnet8x4"): {"teacher": 79.42, "ce": 72.50, "kd": 73.33},
    ("wrn_40_2", "wrn_16_2"): {"teacher": 75.61, "ce": 73.26, "kd": 74.92},
}


def published_cifar100(section: dict[str, Any], teacher: str, student: str) -> dict[str, float]:
    """The published numbers for a pair of params.yaml's `cifar100` section: only for a teacher
    trained plainly (target ce), since the benchmarks' teachers are."""
    spec = section["teachers"][teacher]
    if list(spec["target"]) != ["ce"]:
        return {}
    return CIFAR100_PUBLISHED.get((spec["arch"], student), {})
