"""Figures computed from the summary table (gain, topk) or the claims file (claims):
`python -m partialkd.figures <figure> ...`."""
from __future__ import annotations

import argparse
import json
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory

from partialkd.reporting.style import (COLUMN_WIDTH_IN, MARGIN_COLOR, METHOD_COLORS, METHOD_MARKERS,
                                       VERDICT_MARKS, apply_style, ordered_methods, save_figure, score_label)
from partialkd.reporting.summary import ACCURACY, SCORES, Score, seed_columns, selected_students

BASELINE = "ce"
ERROR_BARS = {"sd": "sd", "se": "se", "ci95": ("ci", 95)}  # seaborn's names for each spread


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
        ks = sorted(panel["k"].unique())
        ax.set_xscale("log")  # k spans decades on Penn Treebank (10k classes)
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set(xlabel="k (classes kept from the teacher, log scale)", ylabel=score_label(score), title=condition)
        ax.legend().set_visible(ax is axes.flat[min(columns, len(conditions)) - 1])
    for ax in axes.flat[len(conditions):]:
        ax.set_visible(False)
    return figure


UNIT_NAMES = {"pts": "points of test accuracy", "ppl": "test perplexity",
              "": "unitless: correlations, their differences, differences of p_t"}
LABEL_CHARS = 48  # a row's comparison is shortened to this
FOREST_WIDTH_IN, ROW_IN = 8.0, 0.17  # wide: the rows' labels, the plot, each claim's verdict


def forest_rows(claims: dict[str, Any]) -> pd.DataFrame:
    """One row per part of the lead claims of a claims file (not those beside), in order: the
    part's estimate (`mean`, `low`, `high`, `unit`, `margin`, `verdict`), its claim (`claim`,
    `claim_verdict`, `level`, `caveats`) and its label (`row`)."""
    columns = ["claim", "claim_verdict", "level", "caveats", "row", "where", "label", "rule", "verdict",
               "mean", "low", "high", "n", "unit", "margin"]
    rows = [{**estimate, "claim": claim["id"], "claim_verdict": claim["verdict"], "level": claim["level"],
             "caveats": bool(claim.get("caveats")), "row": part_label(claim["id"], estimate)}
            for claim in claims["claims"] for estimate in claim.get("estimates", [])]
    return pd.DataFrame(rows, columns=columns)


def part_label(claim_id: str, estimate: dict[str, Any]) -> str:
    """'C1 γ = 0: kd − ls [>]': the claim, the condition, the comparison without its details (in
    parentheses or after a colon), shortened, and the rule."""
    comparison = re.sub(r"\s\([^()]*\)", "", estimate["label"]).split(": ")[0]
    comparison = textwrap.shorten(comparison, LABEL_CHARS, placeholder=" …")
    return f"{claim_id} {estimate['where']}: {comparison} [{estimate['rule']}]"


def not_run_note(claims: dict[str, Any]) -> str:
    """'Not run: C8 (needs kd_topk and kd); …', wrapped, for the claims without an estimate ('' if none)."""
    skipped = [f"{claim['id']} ({textwrap.shorten(claim['evidence'][0], 60, placeholder=' …')})"
               if claim["evidence"] else claim["id"]
               for claim in claims["claims"] if not claim.get("estimates")]
    return textwrap.fill(f"Not run: {'; '.join(skipped)}", 110) if skipped else ""


def forest_panel(ax: plt.Axes, parts: pd.DataFrame, unit: str) -> None:
    """The parts of one unit (`forest_rows`, indexed from 0): each part's interval (a line; an
    arrowhead at the axis edge where it is unbounded), its estimate (a mark) coloured by verdict
    over its ±margin band, if any; each claim's verdict and level at the right."""
    y = np.arange(len(parts))
    low, high, mean, margin = (parts[c].to_numpy(dtype=float) for c in ("low", "high", "mean", "margin"))
    values = np.concatenate([mean, low, high, margin, -margin, [0.0]])
    values = values[np.isfinite(values)]
    pad = 0.06 * (np.ptp(values) or 1.0)
    left, right = values.min() - pad, values.max() + pad
    banded = margin > 0
    ax.barh(y[banded], 2 * margin[banded], left=-margin[banded], height=0.8, color=MARGIN_COLOR, alpha=0.45,
            linewidth=0, zorder=0)
    ax.axvline(0, color="0.2", linewidth=0.8, zorder=1)
    for verdict, mark in VERDICT_MARKS.items():
        at = (parts["verdict"] == verdict).to_numpy()
        ax.hlines(y[at], np.clip(low[at], left, right), np.clip(high[at], left, right), color=mark.color,
                  linewidth=1.6, zorder=2)
        ax.scatter(mean[at], y[at], color=mark.color, marker=mark.marker, s=24, zorder=3, label=verdict)
        for ends, edge, arrow in ((low, left, "<"), (high, right, ">")):
            open_end = at & np.isinf(ends)
            ax.scatter(np.full(open_end.sum(), edge), y[open_end], color=mark.color, marker=arrow, s=24,
                       zorder=3, clip_on=False)
    ax.set_xlim(left, right)
    ax.set_ylim(len(parts) - 0.5, -0.5)
    ax.set_yticks(y, parts["row"])
    ax.grid(axis="y", visible=False)
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for claim, rows in parts.groupby("claim", sort=False):
        first, (verdict, level, caveats) = rows.index[0], rows.iloc[0][["claim_verdict", "level", "caveats"]]
        if first:
            ax.axhline(first - 0.5, color="0.75", linewidth=0.6)
        ax.text(1.03, first + (len(rows) - 1) / 2,
                f"{claim} {verdict}{', caveat' if caveats else ''} ({100 * level:.3g}%)",
                transform=beside, va="center", fontsize=7, clip_on=False,
                color=VERDICT_MARKS[verdict].color if verdict in VERDICT_MARKS else "black")
    ax.set_xlabel(f"effect ({UNIT_NAMES.get(unit, unit)}); > 0 favours the claim")


def claims_figure(claims: dict[str, Any]) -> plt.Figure:
    """A forest plot of a track's lead claims (a claims file of `partialkd.claims`): one row per
    part, its estimate and interval at its claim's level coloured by the part's verdict, the
    ±margin band of the ≥ and ≈ rules, one panel (its own axis) per unit; the claims not run
    below."""
    apply_style()
    rows = forest_rows(claims)
    units = list(dict.fromkeys(rows["unit"]))
    sizes = [int((rows["unit"] == unit).sum()) for unit in units]
    figure, axes = plt.subplots(max(len(units), 1), 1, squeeze=False, layout="constrained",
                                figsize=(FOREST_WIDTH_IN, 1.0 + ROW_IN * sum(sizes) + 0.7 * len(units)),
                                height_ratios=[size + 3 for size in sizes] or None)
    for ax, unit in zip(axes[:, 0], units):
        forest_panel(ax, rows[rows["unit"] == unit].reset_index(drop=True), unit)
    if not units:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no claim has an estimate yet", ha="center", va="center")
    handles = [Line2D([], [], color=mark.color, marker=mark.marker, label=verdict)
               for verdict, mark in VERDICT_MARKS.items()]
    if (rows["margin"] > 0).any():
        handles.append(Patch(color=MARGIN_COLOR, alpha=0.45, label="margin ±δ (≥, ≈ rules)"))
    figure.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    if note := not_run_note(claims):
        figure.supxlabel(note, fontsize=7, x=0.0, ha="left")
    return figure


FIGURES = {"gain": synthetic_gain_figure, "topk": topk_figure}  # gain: the synthetic track's γ axis


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.figures", description=__doc__)
    parser.add_argument("figure", choices=sorted([*FIGURES, "claims"]))
    parser.add_argument("--summary", help="summary.csv of the track (gain, topk)")
    parser.add_argument("--claims", help="claims.json of the track (claims: a forest plot of the lead claims)")
    parser.add_argument("--error-bars", choices=sorted(ERROR_BARS), default="sd",
                        help="spread over seeds drawn around each mean")
    parser.add_argument("--metric", choices=sorted(SCORES), default="acc",
                        help="topk: the test score drawn and the validation score selecting each k's "
                             "grid point (ppl: perplexity, lower is better)")
    parser.add_argument("--out-stem", required=True, help="path without suffix; .png and .pdf are written")
    args = parser.parse_args(argv)
    source = "claims" if args.figure == "claims" else "summary"
    if getattr(args, source) is None:
        parser.error(f"the {args.figure} figure needs --{source}")
    if args.metric != "acc" and args.figure != "topk":
        parser.error(f"--metric {args.metric}: the {args.figure} figure " + (
            "takes each part's unit from the claims file" if source == "claims" else "shows accuracy only"))
    if args.figure == "claims":
        figure = claims_figure(json.loads(Path(args.claims).read_text()))
    else:
        options = {"score": SCORES[args.metric]} if args.figure == "topk" else {}
        figure = FIGURES[args.figure](pd.read_csv(args.summary), args.error_bars, **options)
    save_figure(figure, args.out_stem)


if __name__ == "__main__":
    main()
