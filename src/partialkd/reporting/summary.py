"""The summary table of a track's runs (`python -m partialkd.aggregate` writes it) and reading it.

One row per variant of each run (a synthetic run trains a stack of variants, an image run one):
its hyperparameters, for kd_sim and kd_pt_sim how uniform their similarity rows are
(`sim_entropy`, 1 = uniform), its metrics at the best-on-validation epoch (`best_*`) and at
the last epoch (`last_*`), and its best test accuracy over the epochs with that epoch
(`peak_test_acc`, `peak_epoch`: the public benchmarks' protocol number, never used for
selection; empty where the trainer does not record it: the synthetic, Fashion-MNIST student and
language-model trainers); accuracies are fractions, NLL in nats. Per seed and method (and
teacher, student, γ), the variant with the best validation score (`--select-by`: accuracy by
default, or a score where lower is better, like perplexity) is marked `selected`: it represents
its method in tables, figures and claims.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from partialkd.common.io import atomic_write

HYPERPARAMETERS = ("lam", "tau", "alpha", "k", "renormalize")
# What identifies one trained model apart from its hyperparameters: selection happens within.
SELECTION_GROUP = ["track", "role", "teacher", "student", "gamma", "world", "teacher_seed", "seed", "method"]
# The tags naming a replicate above the student seed, with the unit's name in words: a synthetic
# world (its own data and teacher), a teacher seed (a track training several teachers of a kind).
REPLICATES = {"world": "world", "teacher_seed": "teacher seed"}


def seed_columns(rows: pd.DataFrame) -> list[str]:
    """The columns that tell apart the students of one condition: the replicate columns the rows
    fill (world, teacher seed), then the seed."""
    return [column for column in REPLICATES if column in rows and rows[column].notna().any()] + ["seed"]


def parse_replicate(text: str) -> tuple[str, int]:
    """`--replicate COLUMN=VALUE` (e.g. world=1) as (column, value), an argparse type."""
    column, _, value = text.partition("=")
    if column not in REPLICATES or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected {' or '.join(f'{c}=N' for c in REPLICATES)}, got {text!r}")
    return column, int(value)


def replicate_meta(replicate: tuple[str, int] | None) -> dict[str, Any]:
    """An analysis's or diagnosis's replicate for the claims: its value and the unit's name
    (0 and "seed" for a track with one replicate)."""
    return {"replicate": 0, "unit": "seed"} if replicate is None else \
        {"replicate": replicate[1], "unit": REPLICATES[replicate[0]]}


def of_replicate(rows: pd.DataFrame, replicate: tuple[str, int] | None) -> pd.DataFrame:
    """The rows of one replicate (all rows for None)."""
    if replicate is None:
        return rows
    column, value = replicate
    return rows[rows[column] == value] if column in rows else rows.iloc[:0]
NO_TEACHER = "none"  # the teacher tag of image-track students that take nothing from a teacher


@dataclass(frozen=True)
class Score:
    """A metric that selects grid points and that tables and claims compare: its name in the
    runs' metrics (`best_valid_<name>`, `best_test_<name>`), its direction, and how it is shown
    (value × scale, with a unit)."""
    name: str
    lower_is_better: bool
    scale: float
    unit: str  # after a number, e.g. " pts"
    label: str  # what a table's cells hold

    def column(self, when: str = "best", split: str = "test") -> str:
        return f"{when}_{split}_{self.name}"

    def points(self, values: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
        """Values as shown: accuracy fractions as percentages, perplexities as they are."""
        return values * self.scale


# The scores a track may use (`--select-by`, `--metric`): a property of the metric, not of a track.
SCORES = {
    "acc": Score("acc", False, 100.0, " pts", "test accuracy (%)"),
    "ppl": Score("ppl", True, 1.0, " ppl", "test perplexity"),
}
ACCURACY = SCORES["acc"]


def summarise(metrics_paths: Sequence[str | Path], select_by: Score = ACCURACY) -> pd.DataFrame:
    rows = [row for path in metrics_paths for row in _rows(Path(path))]
    table = pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*SELECTION_GROUP, *rows[0]])))
    groups = table.groupby(SELECTION_GROUP, dropna=False)[select_by.column(split="valid")]
    best = groups.idxmin() if select_by.lower_is_better else groups.idxmax()  # first on ties
    table["selected"] = table.index.isin(best.to_numpy())
    return table


def selected_students(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that represent each student method: its validation-selected variant."""
    return table[(table["role"] == "student") & table["selected"]]


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read run metrics {path} ({error}); re-run that training job") from error
    run = {**metrics["tags"], "track": metrics["dataset"].get("track"),
           "gamma": metrics["dataset"].get("gamma"),
           "bayes_test_acc": metrics["dataset"].get("bayes_test_accuracy"),
           "seed": metrics["config"]["config"]["seed"],
           "epochs": metrics["config"]["config"]["epochs"],
           "seconds_per_epoch": metrics["provenance"]["seconds_per_epoch"],
           "device": metrics["provenance"]["device"], "git_commit": metrics["provenance"]["git_commit"],
           "run": str(path.parent)}
    return [{**run, **_variant_row(variant)} for variant in metrics["variants"]]


def _variant_row(variant: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": variant["method"], "variant": variant["label"]}
    row.update({name: variant.get(name) for name in HYPERPARAMETERS})
    row["sim_entropy"] = variant.get("sim_entropy")  # kd_sim, kd_pt_sim (`run_directory.sim_entropy`)
    row["best_epoch"] = variant["best"]["epoch"]
    peak = variant.get("peak", {})  # `training.peak_test`
    row["peak_epoch"], row["peak_test_acc"] = peak.get("epoch"), peak.get("test", {}).get("acc")
    for when in ("best", "last"):
        for split in ("valid", "test"):
            for name, value in variant[when][split].items():
                row[f"{when}_{split}_{name}"] = value
    return row


def headline_metrics(table: pd.DataFrame, score: Score = ACCURACY) -> dict[str, Any]:
    """Mean test score (accuracy in %, best-on-validation checkpoint) per teacher, condition (γ
    and the student architecture where recorded, or the student architecture) and student method: the numbers `dvc metrics diff` compares.
    Keys avoid '.', which DVC uses as a separator."""
    students = selected_students(table)
    condition = [f"gamma_{gamma:g}".replace(".", "_") + (f"_student_{student}" if pd.notna(student) else "")
                 if pd.notna(gamma) else f"student_{student}"
                 for gamma, student in zip(students["gamma"], students["student"])]
    means = students.groupby([students["teacher"], pd.Series(condition, index=students.index),
                              students["method"]])[score.column()].mean() * score.scale
    metrics: dict[str, Any] = {}
    for (teacher, key, method), value in means.items():
        metrics.setdefault(teacher, {}).setdefault(key, {})[method] = round(float(value), 3)
    return metrics


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    atomic_write(path, lambda handle: handle.write(table.to_csv(index=False).encode()))
