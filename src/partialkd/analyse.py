"""Analyses of trained students (NOTES §5), on any track: gradient rescaling (C10) and logit
geometry (C11), for one teacher and the students of one condition (a γ of the synthetic track,
a student architecture of a real-data track), over every seed.

`python -m partialkd.analyse --data DATA --teacher MODEL.pt|oracle --teacher-name NAME
--summary SUMMARY.csv [--student ARCH] [--gamma G] [--replicate world=N|teacher_seed=N]
--out-json J --figure-stem STEM` writes J and STEM_rescaling, STEM_geometry,
STEM_geometry_bars (.png/.pdf). J holds `meta` (with `teacher_name`, `student`, `replicate`
and `unit`: whose students these are, and which world or teacher seed, for the claims),
`geometry` (per seed and method: the correlation of the student's class-vector similarities
with the teacher's, and the block contrast) and `rescaling`: per seed, method (ls, kd, kd_pt: the
variant whose λ, τ and target define w_t, NOTES §2) and `q_from`, the Spearman correlation of
w_t with the teacher's p_t (`spearman`), the largest formula/autograd gap (`max_gap`) and the
examples kept and `dropped`. `q_from` names the student whose q enters w_t: "self", the
method's own student; two fixed references, so that w_t varies with the teacher's confidence
only (C10 as the paper means it): "ce", the ce student of the same seed (absent for a seed
without a ce student), and "init", the seed's student at initialisation (the weights every
method of the seed starts from, rebuilt by `training.read_runs.initial_state`). STEM_rescaling draws the
three views side by side.
The students are the summary's selected rows (each method's validation-selected grid point per
seed) taught by NAME or by no teacher, at their best-on-validation weights; the examples are the
validation split.

With many classes (Penn Treebank's 10k words) `--top-classes N` restricts the class-similarity
matrices (and their heatmaps) to the classes with ids below N (on PTB the N most frequent words,
ids being frequency-ordered) and `--max-examples M` scores the rescaling on the first M validation
examples (tokens) only. A teacher given as a plain state-dict file (an ImageNet teacher not
trained by the workflow) takes `--teacher-arch`, `--crop` and `--resize`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from partialkd.analysis.geometry import (block_contrast, correlation_bars, cosine_matrix, matrix_correlation,
                                         similarity_heatmaps)
from partialkd.analysis.rescaling import check_agreement, per_example_rescaling, rescaling_figure, spearman
from partialkd.common.io import save_json
from partialkd.data.prepared import Dataset, Split, first_examples, load_dataset
from partialkd.reporting.style import save_figure
from partialkd.reporting.summary import (NO_TEACHER, of_replicate, parse_replicate, replicate_meta,
                                         selected_students)
from partialkd.training.cli import positive_int
from partialkd.training.read_runs import Network, checkpoint_networks, file_teacher_network, teacher_network

RESCALING_METHODS = ("ls", "kd", "kd_pt")  # kd and kd_pt rescale alike; ls is the baseline
GEOMETRY_METHODS = ("ce", "ls", "kd_sim", "kd", "kd_pt_sim")
SPLIT = "valid"
# `q_from`: each method's own student; the fixed reference students, trained (ce) and initial
SELF, REFERENCE, INITIAL = "self", "ce", "init"
Q_FROM_TITLES = {REFERENCE: "fixed: ce student of the seed", INITIAL: "fixed: student at initialisation",
                 SELF: "each method's own student"}  # the rescaling figure's panels, in order


def analysed_students(summary: pd.DataFrame, teacher_name: str, student: str | None = None,
                      gamma: float | None = None, replicate: tuple[str, int] | None = None) -> pd.DataFrame:
    """The selected student rows of one condition (and replicate: a world or teacher seed) that
    the analyses look at, by seed and method."""
    rows = of_replicate(selected_students(summary), replicate)
    keep = rows["teacher"].isin([teacher_name, NO_TEACHER])
    keep &= rows["method"].isin(set(RESCALING_METHODS) | set(GEOMETRY_METHODS))
    if student is not None:
        keep &= rows["student"] == student
    if gamma is not None:
        keep &= rows["gamma"].apply(lambda value: math.isclose(value, gamma))
    rows = rows[keep]
    if rows.empty:
        raise ValueError(f"the summary has no selected students of teacher {teacher_name!r}"
                         f"{f', student {student!r}' if student else ''}"
                         f"{f', γ = {gamma:g}' if gamma is not None else ''}"
                         f"{f', {replicate[0]} {replicate[1]}' if replicate else ''}: check the names, "
                         "or re-run the summary step after the students have trained")
    return rows.sort_values(["seed", "method"])


def student_networks(rows: pd.DataFrame, dataset: Dataset) -> dict[int, dict[str, Network]]:
    """seed -> method -> the selected network (each run's checkpoint is read once)."""
    networks: dict[int, dict[str, Network]] = {}
    for run_dir, run_rows in rows.groupby("run", sort=False):
        in_run = checkpoint_networks(Path(run_dir) / "model.pt", dataset)
        for row in run_rows.itertuples():
            if row.variant not in in_run:
                raise ValueError(f"run {run_dir} has no variant {row.variant!r}: the summary is older "
                                 "than the run; re-run the summary step")
            networks.setdefault(int(row.seed), {})[row.method] = in_run[row.variant]
    return networks


def initial_networks(rows: pd.DataFrame, dataset: Dataset) -> dict[int, Network]:
    """seed -> its student at initialisation, rebuilt from the run and variant of the seed's
    first row (every run of a seed, and every variant of a stack, starts from the same weights)."""
    first = rows.groupby("seed", sort=False).head(1)
    return {int(row.seed): checkpoint_networks(Path(row.run) / "model.pt", dataset, initial=True)[row.variant]
            for row in first.itertuples()}


def rescaling_rows(seed: int, students: dict[str, Network], initial: Network, teacher: Network,
                   teacher_logits: Tensor, split: Split
                   ) -> tuple[list[dict[str, Any]], dict[str, dict[str, pd.DataFrame]]]:
    """Per method of the seed, w_t of its variant (NOTES §2) at its own student's q, at the
    student at initialisation's (`initial`) and, when the seed has one, at the ce student's:
    Spearman(w_t, p_t) and the formula/autograd gap; the frames by `q_from` and method."""
    fixed = {REFERENCE: students[REFERENCE]} if REFERENCE in students else {}
    references = {q_from: network.logits(split) for q_from, network in {**fixed, INITIAL: initial}.items()}
    rows, frames = [], {}
    for method in RESCALING_METHODS:
        if method not in students:
            continue
        student = students[method]
        for q_from, logits in {SELF: student.logits(split), **references}.items():
            frame = per_example_rescaling(logits, teacher_logits, split.labels, student.variant,
                                          student.training["tau_squared"], teacher.class_weights)
            rows.append({"seed": seed, "method": method, "q_from": q_from,
                         "variant": student.variant.label, "spearman": spearman(frame),
                         "max_gap": check_agreement(frame), "dropped": frame.attrs["dropped"],
                         "examples": len(frame)})
            frames.setdefault(q_from, {})[method] = frame
    return rows, frames


def geometry_rows(seed: int, students: dict[str, Network], teacher_matrix: Tensor, groups: Tensor
                  ) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """Per method of the seed: the correlation of its class similarities with the teacher's."""
    rows, matrices = [], {}
    for method in GEOMETRY_METHODS:
        if method not in students:
            continue
        matrix = cosine_matrix(students[method].class_weights)
        rows.append({"seed": seed, "method": method, "variant": students[method].variant.label,
                     "correlation": matrix_correlation(matrix, teacher_matrix),
                     "block_contrast": group_contrast(matrix, groups)})
        matrices[method] = matrix
    return rows, matrices


def top_class_weights(network: Network, top_classes: int | None) -> Tensor:
    """The class vectors of the classes with ids below `top_classes` (all when None)."""
    return network.class_weights if top_classes is None else network.class_weights[:top_classes]


def group_contrast(matrix: Tensor, groups: Tensor) -> float | None:
    """`block_contrast`, or None when the classes have no groups to contrast (ImageNet's index
    reads no class hierarchy)."""
    sizes = torch.bincount(groups)
    if (sizes > 0).sum() < 2 or sizes.max() < 2:
        return None
    return block_contrast(matrix, groups)


def analyse(data: str | Path, teacher_source: str | Path, students: pd.DataFrame, condition: float | str,
            figure_stem: str | Path, top_classes: int | None = None, max_examples: int | None = None,
            teacher_file: dict[str, Any] | None = None, labels: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """Both analyses of the `students` rows (from `analysed_students`) against one teacher;
    `condition` names them in the claims (a γ, or 'teacher→student'). `top_classes` restricts
    the geometry to the classes with ids below it, `max_examples` the rescaling to the first
    validation examples; `teacher_file` ({arch, crop, resize}) reads the teacher as a plain
    state-dict file; `labels` go into the meta for the claims (`identity`)."""
    dataset = load_dataset(data)
    teacher = (teacher_network(teacher_source, dataset) if teacher_file is None
               else file_teacher_network(teacher_source, dataset, **teacher_file))
    split = first_examples(dataset[SPLIT], max_examples)
    teacher_logits = teacher.logits(split)
    teacher_matrix = cosine_matrix(top_class_weights(teacher, top_classes))
    groups = dataset.class_groups if top_classes is None else dataset.class_groups[:top_classes]
    rescaling, geometry, heatmaps = [], [], {"teacher": teacher_matrix}
    pooled: dict[str, dict[str, list[pd.DataFrame]]] = {SELF: {}}  # a panel even if empty
    initial = initial_networks(students, dataset)
    for index, (seed, networks) in enumerate(sorted(student_networks(students, dataset).items())):
        rows, frames = rescaling_rows(seed, networks, initial[seed], teacher, teacher_logits, split)
        rescaling += rows
        for q_from, by_method in frames.items():
            for method, frame in by_method.items():
                pooled.setdefault(q_from, {}).setdefault(method, []).append(frame)
        top = {method: dataclasses.replace(network, class_weights=top_class_weights(network, top_classes))
               for method, network in networks.items()}
        rows, matrices = geometry_rows(seed, top, teacher_matrix, groups)
        geometry += rows
        if index == 0:
            heatmaps.update({f"student: {m}": matrix for m, matrix in matrices.items()})
    _figures(pooled, heatmaps, groups, pd.DataFrame(geometry), figure_stem)
    return {"meta": {"condition": condition, "teacher": str(teacher_source),
                     "split": SPLIT, "examples": len(split), "classes": len(groups),
                     "teacher_block_contrast": group_contrast(teacher_matrix, groups), **(labels or {})},
            "rescaling": rescaling, "geometry": geometry}


def identity(teacher_name: str, student: str | None, replicate: tuple[str, int] | None) -> dict[str, Any]:
    """What the claims tell analyses apart by: the teacher's name, the student architecture (None
    where the command names none), the replicate and its unit (`summary.replicate_meta`)."""
    return {"teacher_name": teacher_name, "student": student, **replicate_meta(replicate)}


def _figures(pooled: dict[str, dict[str, list[pd.DataFrame]]], heatmaps: dict[str, Tensor],
             groups: Tensor, geometry: pd.DataFrame, stem: str | Path) -> None:
    """The figures; `pooled`: the rescaling frames of every seed, by `q_from` and method."""
    stem = Path(stem)
    panels = {title: {method: pd.concat(parts) for method, parts in pooled[q_from].items()}
              for q_from, title in Q_FROM_TITLES.items() if q_from in pooled}
    save_figure(rescaling_figure(panels), stem.with_name(f"{stem.name}_rescaling"))
    save_figure(similarity_heatmaps(heatmaps, groups), stem.with_name(f"{stem.name}_geometry"))
    save_figure(correlation_bars(geometry), stem.with_name(f"{stem.name}_geometry_bars"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.analyse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the prepared dataset the runs trained on")
    parser.add_argument("--teacher", required=True, help="the teacher's model.pt, or 'oracle'")
    parser.add_argument("--teacher-name", required=True,
                        help="the teacher's name in the summary's `teacher` column")
    parser.add_argument("--summary", required=True, help="the track's summary.csv (selects the students)")
    parser.add_argument("--student", help="the student architecture (the real-data tracks)")
    parser.add_argument("--gamma", type=float, help="the class correlation γ (synthetic track)")
    parser.add_argument("--replicate", type=parse_replicate, metavar="COLUMN=N",
                        help="the students of one world (world=N) or teacher seed (teacher_seed=N)")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--figure-stem", required=True, help="path prefix of the figures")
    parser.add_argument("--top-classes", type=positive_int, help="geometry on the classes with ids below N only")
    parser.add_argument("--max-examples", type=positive_int, help="rescaling on the first M validation examples")
    parser.add_argument("--teacher-arch", help="the architecture of a plain state-dict --teacher file")
    parser.add_argument("--crop", type=int, help="with --teacher-arch: the evaluation crop (px)")
    parser.add_argument("--resize", type=int, help="with --teacher-arch: the short side before the crop (px)")
    args = parser.parse_args(argv)
    if args.teacher_arch is not None and (args.crop is None or args.resize is None):
        parser.error("--teacher-arch needs --crop and --resize (the input size the students saw)")
    students = analysed_students(pd.read_csv(args.summary), args.teacher_name, args.student, args.gamma,
                                 args.replicate)
    condition = args.gamma if args.gamma is not None else f"{args.teacher_name}→{args.student}"
    teacher_file = (None if args.teacher_arch is None
                    else {"arch": args.teacher_arch, "crop": args.crop, "resize": args.resize})
    result = analyse(args.data, args.teacher, students, condition, args.figure_stem, args.top_classes,
                     args.max_examples, teacher_file, identity(args.teacher_name, args.student, args.replicate))
    save_json(result, args.out_json)


if __name__ == "__main__":
    main()
