"""Per-method hyperparameter grids: each grid point is one student variant trained in the stack.

A grid maps a method to lists of values, e.g. {"kd": {"lam": [0.5, 0.9], "tau": [1, 4]}}; the
variants are the Cartesian product. The best variant of each method is chosen on the held-out
validation split (NOTES §3 protocol). `ce` is the loss with λ = 0 and needs no values.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from partialkd.core.targets import TARGETS, build_target, method_params

LOSS_PARAMS = ("lam", "tau")
TEACHER_SUPPLIED = ("class_weights",)  # taken from the teacher, never from the grid


@dataclass(frozen=True)
class Variant:
    method: str
    lam: float
    tau: float
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        values = [f"lam={self.lam:g}", f"tau={self.tau:g}", *(f"{k}={v}" for k, v in self.params)]
        return f"{self.method}({', '.join(values)})"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "lam": self.lam, "tau": self.tau, **dict(self.params)}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Variant:
        """The variant of a metrics.json row (`to_dict()` plus label and metrics)."""
        params = tuple((key, row[key]) for key in method_params(row["method"]) if key in row)
        return cls(row["method"], float(row["lam"]), float(row["tau"]), params)

    @property
    def slug(self) -> str:
        """A path-safe name, e.g. 'kd_topk-lam0.9-tau4-k25', unique within a grid."""
        values = [f"lam{self.lam:g}", f"tau{self.tau:g}", *(f"{k}{v}" for k, v in self.params)]
        return "-".join([self.method, *values])

    def target(self, teacher_logits: Tensor | None, labels: Tensor, num_classes: int,
               class_weights: Tensor | None = None) -> Tensor:
        """This variant's target ρ (NOTES §2); the class vectors of the sim targets come from the
        teacher (`class_weights`), never from the grid."""
        supplied = {name: class_weights for name in TEACHER_SUPPLIED if name in method_params(self.method)}
        return build_target(self.method, teacher_logits, labels, tau=self.tau, num_classes=num_classes,
                            **dict(self.params), **supplied)

    def to_grid(self) -> dict[str, dict[str, list[Any]]]:
        """The one-point grid that expands to this variant alone."""
        return {self.method: {"lam": [self.lam], "tau": [self.tau], **{k: [v] for k, v in self.params}}}


def grid_keys(method: str) -> tuple[str, ...]:
    """The keys a grid may give for `method`: λ, τ and the target's own parameters."""
    return LOSS_PARAMS + tuple(p for p in method_params(method) if p not in TEACHER_SUPPLIED)


def expand_grid(grid: Mapping[str, Mapping[str, Sequence[Any]]]) -> list[Variant]:
    """All variants of all methods, in the grid's method order."""
    return [variant for method, values in grid.items() for variant in _expand_method(method, values)]


def _expand_method(method: str, values: Mapping[str, Sequence[Any]]) -> list[Variant]:
    if method not in TARGETS:
        raise ValueError(f"grid: unknown method '{method}'; registered: {', '.join(TARGETS)}")
    allowed = grid_keys(method)
    for key, options in values.items():
        if key not in allowed:
            raise ValueError(f"grid.{method}: unknown key '{key}'; allowed: {', '.join(allowed)}")
        if isinstance(options, (str, bytes)) or not isinstance(options, Sequence) or not options:
            raise ValueError(f"grid.{method}.{key}: give a non-empty list of values")
    if method == "ce":
        values = {"lam": [0.0], "tau": [1.0], **values}
    missing = [key for key in LOSS_PARAMS if key not in values]
    if missing:
        raise ValueError(f"grid.{method}: missing {', '.join(missing)}")
    keys = list(values)
    variants = []
    for combo in itertools.product(*(values[key] for key in keys)):
        point = dict(zip(keys, combo))
        params = tuple((k, point[k]) for k in keys if k not in LOSS_PARAMS)
        variants.append(Variant(method, float(point["lam"]), float(point["tau"]), params))
    return variants
