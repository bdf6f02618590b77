"""Analyses of trained students (NOTES §5) on the synthetic track: gradient rescaling (C10) and
logit geometry (C11), for one dataset (one γ) and teacher over the student runs of its seeds.

`python -m partialkd.analyse --data DATA --teacher MODEL.pt|oracle --runs RUN... --out-json J
--figure-stem STEM` writes J (per seed and method: the Spearman correlation of w_t with the
teacher's p_t, the largest formula/autograd gap, the correlation of the student's class-vector
similarities with the teacher's) and STEM_rescaling, STEM_geometry, STEM_geometry_bars (.png/.pdf).
Each student method is represented by its validation-selected variant, at its
best-on-validation weights; examples are the validation split.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from partialkd.datasets import Split, load_dataset
from partialkd.geometry import (block_contrast, correlation_bars, cosine_matrix, matrix_correlation,
                                similarity_heatmaps)
from partialkd.grid import Variant
from partialkd.io import load_torch, save_json
from partialkd.models import StackedMLP
from partialkd.rescaling import check_agreement, per_example_rescaling, rescaling_figure, spearman
from partialkd.style import save_figure
from partialkd.teachers import Teacher, build_model, load_teacher

RESCALING_METHODS = ("ls", "kd", "kd_pt")  # kd and kd_pt rescale alike; ls is the baseline
GEOMETRY_METHODS = ("ce", "ls", "kd_sim", "kd", "kd_pt_sim")
SPLIT = "valid"


@dataclass(frozen=True)
class StudentRun:
    """One seed's trained stack: best-on-validation weights and each method's selected variant."""
    seed: int
    model: StackedMLP
    selected: dict[str, tuple[int, Variant]]  # method -> (index in the stack, variant)

    @classmethod
    def load(cls, run_dir: str | Path) -> StudentRun:
        run_dir = Path(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        saved = load_torch(run_dir / "model.pt", "student checkpoint")
        model = build_model(saved["arch"])
        model.load_state_dict(saved["best_state"])
        selected = {method: (index, Variant.from_dict(metrics["variants"][index]))
                    for method, index in metrics["selected"].items()}
        return cls(int(metrics["config"]["config"]["seed"]), model.eval(), selected)

    @torch.no_grad()
    def logits(self, method: str, x: Tensor) -> Tensor:
        return self.model(x)[self.selected[method][0]]


def rescaling_rows(run: StudentRun, teacher: Teacher, teacher_logits: Tensor, split: Split,
                   tau_squared: bool) -> tuple[list[dict[str, Any]], dict[str, pd.DataFrame]]:
    """Per method of the run: Spearman(w_t, p_t) and the formula/autograd gap; the frames."""
    rows, frames = [], {}
    for method in RESCALING_METHODS:
        if method not in run.selected:
            continue
        variant = run.selected[method][1]
        frame = per_example_rescaling(run.logits(method, split.x), teacher_logits, split.labels,
                                      variant, tau_squared, teacher.class_weights)
        rows.append({"seed": run.seed, "method": method, "variant": variant.label,
                     "spearman": spearman(frame), "max_gap": check_agreement(frame),
                     "dropped": frame.attrs["dropped"], "examples": len(frame)})
        frames[method] = frame
    return rows, frames


def geometry_rows(run: StudentRun, teacher_matrix: Tensor, groups: Tensor
                  ) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """Per method of the run: the correlation of its class similarities with the teacher's."""
    rows, matrices = [], {}
    for method in GEOMETRY_METHODS:
        if method not in run.selected:
            continue
        matrix = cosine_matrix(run.model.class_weights(run.selected[method][0]))
        rows.append({"seed": run.seed, "method": method, "variant": run.selected[method][1].label,
                     "correlation": matrix_correlation(matrix, teacher_matrix),
                     "block_contrast": block_contrast(matrix, groups)})
        matrices[method] = matrix
    return rows, matrices


def analyse(data: str | Path, teacher_source: str | Path, runs: Sequence[str | Path],
            tau_squared: bool, figure_stem: str | Path) -> dict[str, Any]:
    dataset = load_dataset(data)
    teacher = load_teacher(teacher_source, dataset)
    teacher_logits = teacher.logits(dataset[SPLIT])
    teacher_matrix = cosine_matrix(teacher.class_weights)
    rescaling, geometry, pooled, heatmaps = [], [], {}, {"teacher": teacher_matrix}
    for index, run_dir in enumerate(runs):
        run = StudentRun.load(run_dir)
        rows, frames = rescaling_rows(run, teacher, teacher_logits, dataset[SPLIT], tau_squared)
        rescaling += rows
        for method, frame in frames.items():
            pooled.setdefault(method, []).append(frame)
        rows, matrices = geometry_rows(run, teacher_matrix, dataset.class_groups)
        geometry += rows
        if index == 0:
            heatmaps.update({f"student: {m}": matrix for m, matrix in matrices.items()})
    _figures(pooled, heatmaps, dataset.class_groups, pd.DataFrame(geometry), figure_stem)
    return {"meta": {"gamma": dataset.meta.get("gamma"), "teacher": str(teacher_source),
                     "split": SPLIT, "teacher_block_contrast": block_contrast(teacher_matrix,
                                                                              dataset.class_groups)},
            "rescaling": rescaling, "geometry": geometry}


def _figures(pooled: dict[str, list[pd.DataFrame]], heatmaps: dict[str, Tensor], groups: Tensor,
             geometry: pd.DataFrame, stem: str | Path) -> None:
    stem = Path(stem)
    frames = {method: pd.concat(parts) for method, parts in pooled.items()}
    save_figure(rescaling_figure(frames), stem.with_name(f"{stem.name}_rescaling"))
    save_figure(similarity_heatmaps(heatmaps, groups), stem.with_name(f"{stem.name}_geometry"))
    save_figure(correlation_bars(geometry), stem.with_name(f"{stem.name}_geometry_bars"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.analyse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the prepared dataset the runs trained on")
    parser.add_argument("--teacher", required=True, help="the teacher's model.pt, or 'oracle'")
    parser.add_argument("--runs", nargs="+", required=True, help="student run directories (seeds)")
    parser.add_argument("--no-tau-squared", action="store_true", help="the runs used c(τ) = 1")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--figure-stem", required=True, help="path prefix of the figures")
    args = parser.parse_args(argv)
    result = analyse(args.data, args.teacher, args.runs, not args.no_tau_squared, args.figure_stem)
    save_json(result, args.out_json)


if __name__ == "__main__":
    main()
