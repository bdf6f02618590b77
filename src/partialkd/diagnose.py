"""Teacher failure diagnoses (NOTES §5, claims C9 and C12): how confident each teacher is on
the true class, how its class probabilities correlate at low and high τ, and how well the kd
students it teaches do.

`python -m partialkd.diagnose --data DATA --teachers NAME=MODEL.pt|oracle ... [--summary
SUMMARY.csv (--student ARCH | --gamma G)] [--replicate world=N|teacher_seed=N] [--taus τ ...]
--out-json J --figure-stem STEM`
writes J and STEM_confidence, STEM_tau (.png/.pdf). The examples are the validation split;
p_t = softmax(v)_t is the teacher's probability of the true class t at τ = 1.

With many classes (Penn Treebank's 10k words) `--top-classes N` restricts the class-probability
correlations (and their heatmaps) to the classes with ids below N (on PTB the N most frequent
words), their probabilities still those of the softmax over every class, and `--max-examples M`
scores the first M validation examples only. Teachers given as plain state-dict files (ImageNet
teachers not trained by the workflow) take `--teacher-arch NAME=ARCH ...`, `--crop` and `--resize`.

J holds (accuracies are fractions, p_t a probability, entropy in nats):
- "meta": {"split", "examples" (scored), "taus", "student", "gamma" (the dataset's), "num_classes",
  "replicate" and "unit" (the world or teacher seed of the teachers, `--replicate`; 0 and "seed"
  without),
  "classes" (of the correlations), "condition" (how the claims name it: the synthetic γ, or
  'teachers→ARCH' for a student architecture)};
- "teachers": one row per teacher, in command-line order: "name", "source", "method" (its
  training target, "ce" or "ls", "oracle", or "file" for a state-dict file, whose target is
  unknown), "architecture" (an image network's or language model's name, "mlp-<hidden widths>"
  for a synthetic MLP; null for the oracle), "parameters" (of one network; null for the
  oracle), "epochs" (its training length; null for the oracle and a state-dict file), "accuracy" on the examples, "p_t_mean", "p_t_median", "p_t_q10",
  "p_t_q90", "p_t_ge_0.9" and "p_t_ge_0.99" (fractions of examples), "entropy" (mean entropy
  of the teacher's distribution);
- "size_pairs": the plain (ce) teachers ordered by parameter count, one row per consecutive
  pair of different sizes: "smaller", "larger" (names), "smaller_parameters",
  "larger_parameters", and "mean", "se", "n" of the per-example p_t(larger) − p_t(smaller);
- "students": the summary's selected kd students of each listed teacher and the ce students
  (teacher "none" on image tracks, the teacher's name on the synthetic track) of the condition:
  "teacher", "method", "seed", "test_acc" (best-on-validation checkpoint); empty without
  --summary.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from torch import Tensor

from partialkd.analysis.geometry import similarity_heatmaps, teacher_probability_correlation
from partialkd.common.io import save_json
from partialkd.common.torch_files import load_torch
from partialkd.core.metrics import accuracy
from partialkd.data.prepared import Dataset, Split, first_examples, load_dataset
from partialkd.reporting.style import COLUMN_WIDTH_IN, apply_style, save_figure
from partialkd.reporting.summary import (NO_TEACHER, of_replicate, parse_replicate, replicate_meta,
                                         selected_students)
from partialkd.training.cli import positive_int
from partialkd.training.read_runs import Network, file_teacher_network, network_parameters, teacher_network
from partialkd.training.teachers import ORACLE

SPLIT = "valid"
DEFAULT_TAUS = (1.0, 4.0, 16.0)  # low, KD's usual, high
CONFIDENT = (0.9, 0.99)  # thresholds of the "p_t_ge_*" fractions
HISTOGRAM_BINS = np.linspace(0.0, 1.0, 41)
P_T_LABEL = "teacher confidence on the true class p_t"
TEACHER_COLORS = (0, 1, 2, 4, 3, 5, 6, 7, 8, 9)  # colour-blind palette, far-apart hues first
FILE_TEACHER = "file"  # the "method" of a teacher given as a state-dict file: its target is unknown


def parse_teachers(items: Sequence[str], option: str = "--teachers",
                   form: str = "NAME=MODEL.pt or NAME=oracle") -> dict[str, str]:
    """NAME=VALUE arguments of `option` as {name: value}, in order; ValueError on a malformed or
    repeated one."""
    teachers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option}: expected {form}, got {item!r}")
        if name in teachers:
            raise ValueError(f"{option}: the name {name!r} is given twice")
        teachers[name] = value
    return teachers


def checkpoint_identity(source: str | Path) -> tuple[str | None, int | None, int | None]:
    """The architecture, parameter count (of one network) and training epochs of a checkpoint
    (None each: the oracle)."""
    if str(source) == ORACLE:
        return None, None, None
    checkpoint = load_torch(source, "teacher checkpoint")
    arch, epochs = checkpoint["arch"], checkpoint["fingerprint"]["config"]["epochs"]
    name = arch["name"] if arch.get("family") is not None else "-".join(["mlp", *map(str, arch["hidden"])])
    return name, network_parameters(arch), epochs


def load_teacher(source: str, dataset: Dataset, file: Mapping[str, Any] | None
                 ) -> tuple[Network, dict[str, Any]]:
    """A teacher's network and its "method", "architecture", "parameters" and training "epochs":
    from a run's model.pt or 'oracle', or (`file`: {arch, crop, resize}) from a plain state-dict
    file (epochs unknown: None)."""
    if file is None:
        network = teacher_network(source, dataset)
        method = network.variant.method if network.variant is not None else ORACLE
        architecture, parameters, epochs = checkpoint_identity(source)
    else:
        network = file_teacher_network(source, dataset, **file)
        method, architecture, epochs = FILE_TEACHER, file["arch"], None
        parameters = network_parameters({"family": "image", "name": architecture, "num_classes": dataset.num_classes})
    return network, {"method": method, "architecture": architecture, "parameters": parameters,
                     "epochs": epochs}


def true_class_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """p_t = softmax(v)_t per example, [N] float64."""
    return torch.softmax(logits.double(), dim=1).gather(1, labels[:, None].long()).squeeze(1)


def confidence_stats(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Summary of p_t (mean, median, 10/90% quantiles, fractions ≥ CONFIDENT) and the mean
    entropy −Σ_k p_k log p_k of the teacher's distribution (nats)."""
    p_t = true_class_probability(logits, labels)
    log_p = torch.log_softmax(logits.double(), dim=1)
    stats = {"p_t_mean": p_t.mean(), "p_t_median": p_t.quantile(0.5), "p_t_q10": p_t.quantile(0.1),
             "p_t_q90": p_t.quantile(0.9),
             **{f"p_t_ge_{level:g}": (p_t >= level).double().mean() for level in CONFIDENT},
             "entropy": -(log_p.exp() * log_p).sum(1).mean()}
    return {key: float(value) for key, value in stats.items()}


def teacher_row(name: str, source: str, identity: Mapping[str, Any], logits: Tensor, split: Split,
                num_classes: int) -> dict[str, Any]:
    """One teacher's row of the diagnosis (see the module docstring) on the examples of `split`;
    `identity`: its method, architecture and parameters (from `load_teacher`)."""
    return {"name": name, "source": source, **identity,
            "accuracy": float(accuracy(logits, split.truth(num_classes))),
            **confidence_stats(logits, split.labels)}


def size_pairs(rows: Sequence[Mapping[str, Any]], p_t: Mapping[str, Tensor]) -> list[dict[str, Any]]:
    """Consecutive (smaller, larger) plain-CE teachers by parameter count: mean, SE and n of the
    per-example p_t(larger) − p_t(smaller) (C12)."""
    plain = sorted((row for row in rows if row["method"] == "ce"), key=lambda row: row["parameters"])
    pairs = []
    for smaller, larger in zip(plain, plain[1:]):
        if larger["parameters"] == smaller["parameters"]:
            continue
        difference = p_t[larger["name"]] - p_t[smaller["name"]]
        n = len(difference)
        se = float(difference.std() / math.sqrt(n)) if n > 1 else math.inf
        pairs.append({"smaller": smaller["name"], "larger": larger["name"],
                      "smaller_parameters": smaller["parameters"],
                      "larger_parameters": larger["parameters"],
                      "mean": float(difference.mean()), "se": se, "n": n})
    return pairs


def taught_students(summary: pd.DataFrame, teachers: Sequence[str], student: str | None = None,
                    gamma: float | None = None, replicate: tuple[str, int] | None = None
                    ) -> list[dict[str, Any]]:
    """The selected kd students of `teachers` and the ce students of the condition (an image
    track's student architecture and/or a synthetic γ) and replicate, per seed."""
    rows = of_replicate(selected_students(summary), replicate)
    kd = (rows["method"] == "kd") & rows["teacher"].isin(teachers)
    ce = (rows["method"] == "ce") & rows["teacher"].isin([*teachers, NO_TEACHER])
    keep = kd | ce
    if student is not None:
        keep &= rows["student"] == student
    if gamma is not None:
        keep &= np.isclose(rows["gamma"].astype(float), gamma)
    rows = rows[keep]
    if not (rows["method"] == "kd").any():
        raise ValueError(f"the summary has no selected kd student of the teachers {list(teachers)}"
                         f"{f', student {student!r}' if student else ''}"
                         f"{f', γ = {gamma:g}' if gamma is not None else ''}: check the names, "
                         "or re-run the summary step after the students have trained")
    return [{"teacher": row.teacher, "method": row.method, "seed": int(row.seed),
             "test_acc": float(row.best_test_acc)}
            for row in rows.sort_values(["method", "teacher", "seed"]).itertuples()]


def diagnose(data: str | Path, teachers: Mapping[str, str], students: list[dict[str, Any]],
             taus: Sequence[float], figure_stem: str | Path, student: str | None = None,
             top_classes: int | None = None, max_examples: int | None = None,
             teacher_files: Mapping[str, Mapping[str, Any]] | None = None,
             replicate: tuple[str, int] | None = None) -> dict[str, Any]:
    """The diagnosis of `teachers` ({name: model.pt or 'oracle'}) with their `students` (from
    `taught_students` for the `student` architecture or the dataset's γ, or []) and its figures.
    `top_classes` restricts the correlations to the classes with ids below it, `max_examples`
    the examples to the first validation ones; `teacher_files` ({name: {arch, crop, resize}})
    reads those teachers as plain state-dict files; `replicate` (world or teacher seed) is
    recorded for the claims."""
    dataset = load_dataset(data)
    split = first_examples(dataset[SPLIT], max_examples)
    rows, logits = [], {}
    for name, source in teachers.items():
        network, identity = load_teacher(source, dataset, (teacher_files or {}).get(name))
        logits[name] = network.logits(split)
        rows.append(teacher_row(name, source, identity, logits[name], split, dataset.num_classes))
    p_t = {name: true_class_probability(values, split.labels) for name, values in logits.items()}
    groups = dataset.class_groups[:top_classes]
    stem = Path(figure_stem)
    save_figure(confidence_figure(p_t, rows, students), stem.with_name(f"{stem.name}_confidence"))
    save_figure(tau_figure(logits, taus, groups), stem.with_name(f"{stem.name}_tau"))
    return {"meta": {"split": SPLIT, "examples": len(split), "taus": list(taus),
                     "num_classes": dataset.num_classes, "classes": len(groups),
                     "gamma": dataset.meta.get("gamma"), "student": student,
                     "condition": condition(dataset, student), **replicate_meta(replicate)},
            "teachers": rows, "size_pairs": size_pairs(rows, p_t), "students": students}


def condition(dataset: Dataset, student: str | None) -> float | str:
    """What the claims call the diagnosis: the synthetic dataset's γ, else 'teachers→ARCH', else
    the dataset's track."""
    if dataset.meta.get("gamma") is not None:
        return dataset.meta["gamma"]
    return f"teachers→{student}" if student is not None else dataset.meta.get("track", "all")


# --------------------------------------------------------------------------- figures


def teacher_label(row: Mapping[str, Any]) -> str:
    """'resnet56: ce, 0.86M params' (the legend entry of a teacher)."""
    if row["parameters"] is None:
        return f"{row['name']}: {row['method']}"
    return f"{row['name']}: {row['method']}, {_count(row['parameters'])} params"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n / 1e3:.1f}k" if n >= 1000 else str(n)


def confidence_figure(p_t: Mapping[str, Tensor], rows: Sequence[Mapping[str, Any]],
                      students: Sequence[Mapping[str, Any]]) -> plt.Figure:
    """Left: histograms of p_t per teacher (Failure 2); right, with students: the kd students'
    test accuracy per teacher against the ce students' mean (Failure 1)."""
    apply_style()
    palette = sns.color_palette("colorblind")
    colors = {name: palette[TEACHER_COLORS[i % len(TEACHER_COLORS)]] for i, name in enumerate(p_t)}
    ncols = 2 if students else 1
    figure, axes = plt.subplots(1, ncols, squeeze=False, layout="constrained",
                                figsize=(ncols * COLUMN_WIDTH_IN, 2.6))
    _histograms(axes[0, 0], p_t, rows, colors)
    if students:
        _student_accuracy(axes[0, 1], pd.DataFrame(list(students)), colors)
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center",
                  ncol=min(2, len(p_t)), frameon=False)
    return figure


def _histograms(ax: plt.Axes, p_t: Mapping[str, Tensor], rows: Sequence[Mapping[str, Any]],
                colors: Mapping[str, Any]) -> None:
    styles = ("-", "--", "-.", ":")
    for index, row in enumerate(rows):
        ax.hist(p_t[row["name"]].numpy(), bins=HISTOGRAM_BINS, histtype="step", linewidth=1.2,
                color=colors[row["name"]], linestyle=styles[index % len(styles)],
                label=teacher_label(row))
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set(xlabel=P_T_LABEL, ylabel=f"{SPLIT} examples per bin (log scale)")


def _student_accuracy(ax: plt.Axes, students: pd.DataFrame, colors: Mapping[str, Any]) -> None:
    kd = students[students["method"] == "kd"]
    names = [name for name in colors if name in set(kd["teacher"])]
    for x, name in enumerate(names):
        points = kd.loc[kd["teacher"] == name, "test_acc"].to_numpy() * 100
        jitter = np.linspace(-0.12, 0.12, len(points)) if len(points) > 1 else np.zeros(1)
        ax.scatter(x + jitter, points, s=12, color=colors[name], alpha=0.7, zorder=3)
        spread = points.std(ddof=1) if len(points) > 1 else 0.0
        ax.errorbar(x + 0.3, points.mean(), yerr=spread, fmt="o", color="black", markersize=3.5,
                    capsize=3, zorder=4)
    ce = students.loc[students["method"] == "ce", "test_acc"]
    if len(ce):
        ax.axhline(ce.mean() * 100, color="0.3", linestyle="--", linewidth=1.0,
                   label="ce student, mean")
        ax.legend(loc="best", frameon=False)
    ax.set_xlim(-0.5, len(names) - 0.5 + 0.3)  # one slot per teacher, its mean ± sd at +0.3
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 2 else 0,
                  ha="right" if len(names) > 2 else "center")
    ax.grid(axis="x", visible=False)
    ax.set(xlabel="teacher", ylabel="kd student test accuracy (%)\n(seeds; mean ± sd in black)")


def tau_figure(logits: Mapping[str, Tensor], taus: Sequence[float], class_groups: Tensor
               ) -> plt.Figure:
    """Per teacher (rows) and τ (columns): the correlation across examples of its probabilities
    softmax(v/τ) of the first len(class_groups) classes, ordered by group (superclass blocks
    appear at high τ)."""
    matrices = {f"{name}, τ = {tau:g}": top_class_correlation(values, tau, len(class_groups))
                for name, values in logits.items() for tau in taus}
    return similarity_heatmaps(matrices, class_groups, columns=len(taus),
                               label="correlation of class probabilities")


def top_class_correlation(logits: Tensor, tau: float, classes: int) -> Tensor:
    """`teacher_probability_correlation` of the classes with ids below `classes`, [classes,
    classes]: the others are lumped into one class of logit τ·logsumexp(v_rest/τ), which leaves
    every kept probability softmax(v/τ)_i as it is."""
    if classes >= logits.shape[1]:
        return teacher_probability_correlation(logits, tau)
    kept = logits[:, :classes].double()
    rest = tau * torch.logsumexp(logits[:, classes:].double() / tau, dim=1, keepdim=True)
    return teacher_probability_correlation(torch.cat([kept, rest], dim=1), tau)[:classes, :classes]


# ------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the prepared dataset the teachers trained on")
    parser.add_argument("--teachers", nargs="+", required=True, metavar="NAME=MODEL.pt",
                        help="each teacher's name (as in the summary) and model.pt, or NAME=oracle")
    parser.add_argument("--summary", help="the track's summary.csv (selects the students)")
    parser.add_argument("--student", help="the student architecture (image tracks)")
    parser.add_argument("--gamma", type=float, help="the class correlation γ (synthetic track)")
    parser.add_argument("--replicate", type=parse_replicate, metavar="COLUMN=N",
                        help="the teachers and students of one world (world=N) or teacher seed (teacher_seed=N)")
    parser.add_argument("--taus", nargs="+", type=float, default=list(DEFAULT_TAUS),
                        help="temperatures of the class-correlation heatmaps")
    parser.add_argument("--out-json", required=True)
    parser.add_argument("--figure-stem", required=True, help="path prefix of the figures")
    parser.add_argument("--top-classes", type=positive_int, help="correlations of the classes with ids below N only")
    parser.add_argument("--max-examples", type=positive_int, help="the first M validation examples only")
    parser.add_argument("--teacher-arch", nargs="+", default=[], metavar="NAME=ARCH",
                        help="teachers whose MODEL.pt is a plain state-dict file of torchvision's ARCH")
    parser.add_argument("--crop", type=int, help="with --teacher-arch: the evaluation crop (px)")
    parser.add_argument("--resize", type=int, help="with --teacher-arch: the short side before the crop (px)")
    args = parser.parse_args(argv)
    try:
        teachers = parse_teachers(args.teachers)
        teacher_files = file_teachers(parse_teachers(args.teacher_arch, "--teacher-arch", "NAME=ARCH"),
                                      teachers, args.crop, args.resize)
    except ValueError as error:
        parser.error(str(error))
    has_condition = args.student is not None or args.gamma is not None
    if has_condition != (args.summary is not None):
        parser.error("--summary goes with --student (image tracks) and/or --gamma (synthetic track)")
    students = (taught_students(pd.read_csv(args.summary), list(teachers), args.student, args.gamma,
                                args.replicate) if args.summary else [])
    save_json(diagnose(args.data, teachers, students, args.taus, args.figure_stem, args.student,
                       args.top_classes, args.max_examples, teacher_files, args.replicate), args.out_json)


def file_teachers(archs: Mapping[str, str], teachers: Mapping[str, str], crop: int | None,
                  resize: int | None) -> dict[str, dict[str, Any]]:
    """{name: {arch, crop, resize}} of the teachers given as state-dict files; ValueError on a
    name that is not a teacher or a missing input size."""
    unknown = [name for name in archs if name not in teachers]
    if unknown:
        raise ValueError(f"--teacher-arch: {', '.join(unknown)} not among the --teachers")
    if archs and (crop is None or resize is None):
        raise ValueError("--teacher-arch needs --crop and --resize (the input size the students saw)")
    return {name: {"arch": arch, "crop": crop, "resize": resize} for name, arch in archs.items()}


if __name__ == "__main__":
    main()
