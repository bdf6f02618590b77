"""Figures computed from the summary table: `python -m partialkd.figures <figure> ...`."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from partialkd.aggregate import ACCURACY, SCORES, Score, seed_columns, selected_students
from partialkd.style import (COLUMN_WIDTH_IN, METHOD_COLORS, METHOD_MARKERS, apply_style,
                             ordered_methods, save_figure)

BASELINE = "ce"
ERROR_BARS = {"sd": "sd", "se": "se", "ci95": ("ci", 95)}  # seaborn's names for each spread
ERROR_BAR_CAPTIONS = {"sd": "mean ± sd", "se": "mean ± standard error",
                      "ci95": "mean with a 95% bootstrap confidence interval"}


def gain_over_baseline(summary: pd.DataFrame) -> pd.DataFrame:
    """Paired per-seed gain of every student method over the `ce` student, in points."""
    students = selected_students(summary)
    keys = ["teacher", *(["student"] if "student" in students and students["student"].notna().any() else []),
            "gamma", *seed_columns(students)]
    wide = students.pivot_table(index=keys, columns="method", values="best_test_acc") * 100
    gains = wide.drop(columns=BASELINE).sub(wide[BASELINE], axis=0)
    return gains.reset_index().melt(id_vars=keys, var_name="method", value_name="gain")


def synthetic_gain_figure(summary: pd.DataFrame, error_bars: str) -> plt.Figure:
    """Student accuracy minus the ce student's against γ: one line per method, mean and spread
    (`error_bars`: sd, se or ci95) over seeds."""
    apply_style()
    gains = gain_over_baseline(summary)
    gains["panel"] = [f"teacher: {teacher}" + (f", student: {student}" if pd.notna(student) else "")
                      for teacher, student in gains.reindex(columns=["teacher", "student"]).itertuples(index=False)]
    panels = sorted(gains["panel"].unique())
    figure, axes = plt.subplots(1, len(panels), figsize=(COLUMN_WIDTH_IN * len(panels), 2.8),
                                sharey=True, squeeze=False)
    methods = ordered_methods(gains["method"].unique())
    for ax, panel in zip(axes[0], panels):
        sns.lineplot(data=gains[gains["panel"] == panel], x="gamma", y="gain", hue="method",
                     style="method", hue_order=methods, style_order=methods, palette=METHOD_COLORS,
                     markers=METHOD_MARKERS, dashes=False, errorbar=ERROR_BARS[error_bars], err_style="bars",
                     err_kws={"capsize": 2}, ax=ax, legend=ax is axes[0][-1])
        ax.axhline(0, color=METHOD_COLORS[BASELINE], linestyle="--", linewidth=1)
        ax.set(xlabel="class correlation γ", ylabel="test accuracy − ce student (points)",
               title=panel, xticks=sorted(gains["gamma"].unique()))
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), title="student", frameon=False)
    return figure


def condition_labels(rows: pd.DataFrame) -> pd.Series:
    """A panel title per row: the teacher (and student architecture, where recorded) and γ
    (synthetic track) or teacher → student."""
    keys = rows.reindex(columns=["teacher", "gamma", "student"])  # a track may lack a column
    return pd.Series([f"{teacher} → {student}" if pd.isna(gamma)
                      else f"teacher {teacher}{f', {student}' if pd.notna(student) else ''}, γ = {gamma:g}"
                      for teacher, gamma, student in keys.itertuples(index=False)],
                     index=rows.index, dtype=object)


def topk_by_k(summary: pd.DataFrame, score: Score = ACCURACY) -> pd.DataFrame:
    """Per condition (teacher and γ, or teacher → student), seed and k: the test `score` (as
    shown: accuracy in points, perplexity as is) of the kd_topk grid point with the best
    validation score at that k (the other hyperparameters chosen on validation, as always)."""
    rows = summary[(summary["role"] == "student") & (summary["method"] == "kd_topk")]
    rows = rows.assign(condition=condition_labels(rows))
    keys = ["condition", *seed_columns(rows), "k"]
    groups = rows.groupby(keys)[score.column(split="valid")]
    best = groups.idxmin() if score.lower_is_better else groups.idxmax()
    chosen = rows.loc[best.to_numpy(), [*keys, score.column()]]
    return chosen.assign(score=score.points(chosen[score.column()]))


def score_label(score: Score) -> str:
    """The axis label of a score, saying which way is better where lower is."""
    return f"{score.label} (lower is better)" if score.lower_is_better else score.label


def topk_figure(summary: pd.DataFrame, error_bars: str, score: Score = ACCURACY) -> plt.Figure:
    """kd_topk's test `score` against k, one panel per condition, mean and spread over seeds;
    the validation-selected kd student as a reference line with its sd band (NOTES §5, C8)."""
    apply_style()
    topk = topk_by_k(summary, score)
    if topk.empty:
        raise ValueError("the summary has no kd_topk student: add kd_topk to the track's methods")
    kd = selected_students(summary)
    kd = kd[kd["method"] == "kd"]
    kd = kd.assign(condition=condition_labels(kd), score=score.points(kd[score.column()]))
    conditions = sorted(topk["condition"].unique())
    columns = min(3, len(conditions))
    rows = -(-len(conditions) // columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, figsize=(2 * COLUMN_WIDTH_IN, 2.2 * rows + 0.4),
                                layout="constrained")
    for ax, condition in zip(axes.flat, conditions):
        panel = topk[topk["condition"] == condition]
        sns.lineplot(data=panel, x="k", y="score", color=METHOD_COLORS["kd_topk"],
                     marker=METHOD_MARKERS["kd_topk"], errorbar=ERROR_BARS[error_bars],
                     err_style="bars", err_kws={"capsize": 2}, ax=ax, label="kd_topk")
        reference = kd.loc[kd["condition"] == condition, "score"]
        ax.axhline(reference.mean(), color=METHOD_COLORS["kd"], linestyle="--", linewidth=1,
                   label="kd (full targets)")
        ax.axhspan(reference.mean() - reference.std(), reference.mean() + reference.std(),
                   color=METHOD_COLORS["kd"], alpha=0.15, linewidth=0)
        ax.set(xlabel="k (classes kept from the teacher)", ylabel=score_label(score),
               title=condition, xticks=sorted(panel["k"].unique()))
        ax.legend().set_visible(ax is axes.flat[min(columns, len(conditions)) - 1])
    for ax in axes.flat[len(conditions):]:
        ax.set_visible(False)
    return figure


FIGURES = {"gain": synthetic_gain_figure, "topk": topk_figure}  # gain: the synthetic track's γ axis


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.figures", description=__doc__)
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--summary", required=True, help="summary.csv of the track")
    parser.add_argument("--error-bars", choices=sorted(ERROR_BARS), default="sd",
                        help="spread over seeds drawn around each mean")
    parser.add_argument("--metric", choices=sorted(SCORES), default="acc",
                        help="topk: the test score drawn and the validation score selecting each k's "
                             "grid point (ppl: perplexity, lower is better)")
    parser.add_argument("--out-stem", required=True, help="path without suffix; .png and .pdf are written")
    args = parser.parse_args(argv)
    if args.metric != "acc" and args.figure != "topk":
        parser.error(f"--metric {args.metric}: the {args.figure} figure shows accuracy only")
    options = {"score": SCORES[args.metric]} if args.figure == "topk" else {}
    save_figure(FIGURES[args.figure](pd.read_csv(args.summary), args.error_bars, **options), args.out_stem)


if __name__ == "__main__":
    main()
