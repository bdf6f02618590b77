"""The generated report, paper/REPORT.md: claims first, then tables, figure, parameters, provenance.

`python -m partialkd.report --summary ... --claims ... --figure ... --params ... --out paper/REPORT.md`
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from partialkd.claims import METRIC
from partialkd.figures import ERROR_BAR_CAPTIONS
from partialkd.io import atomic_write
from partialkd.provenance import provenance
from partialkd.style import ordered_methods


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) if lines else "- none"


def _mean_sd(values: pd.Series) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def accuracy_table(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """Test accuracy (%) per γ: Bayes, the teacher, then each student method (mean ± sd over seeds)."""
    students = summary[(summary["role"] == "student") & (summary["teacher"] == teacher)]
    methods = ordered_methods(students["method"].unique())
    rows = []
    for gamma, at_gamma in students.groupby("gamma"):
        row = {"γ": f"{gamma:g}", "Bayes": f"{100 * at_gamma['bayes_test_acc'].iloc[0]:.2f}",
               "teacher": _teacher_accuracy(summary, teacher, gamma)}
        for method in methods:
            row[method] = _mean_sd(100 * at_gamma.loc[at_gamma["method"] == method, METRIC])
        rows.append(row)
    return pd.DataFrame(rows)


def _teacher_accuracy(summary: pd.DataFrame, teacher: str, gamma: float) -> str:
    if teacher == "oracle":
        return "= Bayes"
    rows = summary[(summary["role"] == "teacher") & (summary["teacher"] == teacher)
                   & (summary["gamma"] == gamma)]
    return f"{100 * rows[METRIC].mean():.2f}"


def selected_variants(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """How often each grid point was chosen on validation, per method and γ."""
    students = summary[(summary["role"] == "student") & (summary["teacher"] == teacher)]
    counts = students.groupby(["gamma", "method"])["variant"].agg(
        lambda chosen: ", ".join(f"{v} ×{n}" for v, n in chosen.value_counts().items()))
    frame = counts.reset_index().rename(columns={"gamma": "γ", "variant": "selected on validation (× seeds)"})
    frame["order"] = frame["method"].map({m: i for i, m in enumerate(ordered_methods(frame["method"]))})
    return frame.sort_values(["γ", "order"]).drop(columns="order")


HARD_LIMITS = {"lam": (0.0, 1.0), "k": (1,)}  # values no grid can go beyond


def edge_selections(summary: pd.DataFrame, teacher: str, grids: dict[str, dict[str, list]]) -> list[str]:
    """Grid axes whose smallest or largest value was chosen for most seeds at some γ
    (a limit of the parameter itself, like λ = 1, is not an edge of the grid)."""
    students = summary[(summary["role"] == "student") & (summary["teacher"] == teacher)]
    notes = []
    for method, axes in grids.items():
        for axis, values in axes.items():
            if len(values) < 2 or isinstance(values[0], bool):
                continue
            for gamma, rows in students[students["method"] == method].groupby("gamma"):
                for edge in {min(values), max(values)} - set(HARD_LIMITS.get(axis, ())):
                    count = int((rows[axis] == edge).sum())
                    if count > len(rows) / 2:
                        side = "lowest" if edge == min(values) else "highest"
                        notes.append(f"{method} {axis} = {edge:g} (the grid's {side} value) at "
                                     f"γ = {gamma:g}: {count} of {len(rows)} seeds")
    return notes


def claims_section(claims: dict[str, Any]) -> str:
    lines = [f"Evaluated on the students of the `{claims['teacher']}` teacher. Each comparison is a "
             f"paired per-seed difference of test accuracy (best-on-validation checkpoint), shown as "
             f"mean [mean ± {claims['z']:g}·SE]; equivalence margin ±{claims['margin']:g} points "
             "(rules in `partialkd.claims`).", ""]
    for claim in claims["claims"]:
        lines.append(f"- **{claim['id']}** ({claim['statement']}): **{claim['verdict']}**")
        lines += [f"  - {line}" for line in claim["evidence"]]
    return "\n".join(lines)


def provenance_section(summary: pd.DataFrame) -> str:
    now = provenance()
    runs = summary.drop_duplicates("run")
    compute_hours = (runs["seconds_per_epoch"] * runs["epochs"]).sum() / 3600
    return "\n".join([
        f"- generated: {now['finished_utc']}",
        f"- code (git commit of the runs): {', '.join(sorted(map(str, runs['git_commit'].unique())))}",
        f"- packages: {', '.join(f'{k} {v}' for k, v in now['versions'].items())}; Python {now['python']}",
        f"- devices: {', '.join(sorted(runs['device'].unique()))}",
        f"- training runs: {len(runs)}; training compute ≈ {compute_hours:.2f} device-hours",
    ])


def build_report(summary: pd.DataFrame, claims: dict[str, Any], params: dict[str, Any],
                 figure_link: str) -> str:
    teacher = claims["teacher"]
    seeds = summary.loc[summary["role"] == "student", "seed"].nunique()
    return f"""# Reproduction report: Understanding and Improving Knowledge Distillation

Generated by the workflow from the results under `results/`; do not edit by hand (re-run
`snakemake`). Paper: Tang et al., arXiv 2002.03532. Claims and formulas: `NOTES.md` §2–§6.

## Claims

{claims_section(claims)}

## Synthetic study (NOTES §3)

![Student accuracy minus the ce student's against class correlation]({figure_link})

*Figure: test accuracy of each student method minus that of the `ce` student trained from the
same seed (paired), against the class correlation γ; {ERROR_BAR_CAPTIONS[params["figures"]["error_bars"]]} over {seeds} seeds.*

Test accuracy (%, expected accuracy under the Bayes posterior) of the best-on-validation
checkpoint, mean ± sd over {seeds} seeds, students of the `{teacher}` teacher:

{markdown_table(accuracy_table(summary, teacher))}

Hyperparameters chosen on the validation split:

{markdown_table(selected_variants(summary, teacher))}

Choices at the edge of their grid for most seeds (a wider grid in `params.yaml` may move them):

{_bullets(edge_selections(summary, teacher, params["synthetic"]["methods"]))}

The full table, one row per run and method (with last-epoch metrics, NLL and calibration
error), is `results/synthetic/summary.csv`.

## Parameters

Choices that are ours (NOTES §3): the generator and its β, the sizes, the student and teacher
architectures and schedules, the per-method grids, and the verdict rule of the claims.

```yaml
{yaml.safe_dump(params, sort_keys=False, width=100).strip()}
```

## Provenance

{provenance_section(summary)}
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.report", description=__doc__)
    parser.add_argument("--summary", required=True)
    parser.add_argument("--claims", required=True)
    parser.add_argument("--figure", required=True, help="the synthetic gain figure (PNG)")
    parser.add_argument("--params", required=True, type=json.loads, help="the parameters, as JSON")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    link = os.path.relpath(args.figure, Path(args.out).parent)
    text = build_report(pd.read_csv(args.summary), json.loads(Path(args.claims).read_text()),
                        args.params, link)
    atomic_write(args.out, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
