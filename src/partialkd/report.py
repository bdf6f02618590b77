"""The generated report, paper/REPORT.md: claims first, then each track's tables and figures,
parameters, provenance. Every number comes from the summary tables and claim files.

`python -m partialkd.report --params JSON [--synthetic SUMMARY CLAIMS FIGURE]
[--cifar100 SUMMARY CLAIMS] --out paper/REPORT.md`
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

from partialkd.aggregate import NO_TEACHER, selected_students
from partialkd.claims import METRIC
from partialkd.figures import ERROR_BAR_CAPTIONS
from partialkd.io import atomic_write
from partialkd.provenance import provenance
from partialkd.reference import published_cifar100
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
    students = _students_of(summary, teacher)
    methods = ordered_methods(students["method"].unique())
    rows = []
    for gamma, at_gamma in students.groupby("gamma"):
        row = {"γ": f"{gamma:g}", "Bayes": f"{100 * at_gamma['bayes_test_acc'].iloc[0]:.2f}",
               "teacher": _teacher_accuracy(summary, teacher, gamma)}
        for method in methods:
            row[method] = _mean_sd(100 * at_gamma.loc[at_gamma["method"] == method, METRIC])
        rows.append(row)
    return pd.DataFrame(rows)


def _students_of(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    students = selected_students(summary)
    return students[students["teacher"] == teacher]


def _teacher_accuracy(summary: pd.DataFrame, teacher: str, gamma: float) -> str:
    if teacher == "oracle":
        return "= Bayes"
    rows = summary[(summary["role"] == "teacher") & (summary["teacher"] == teacher)
                   & (summary["gamma"] == gamma)]
    return f"{100 * rows[METRIC].mean():.2f}"


def selected_variants(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """How often each grid point was chosen on validation, per method and γ."""
    students = _students_of(summary, teacher)
    counts = students.groupby(["gamma", "method"])["variant"].agg(
        lambda chosen: ", ".join(f"{v} ×{n}" for v, n in chosen.value_counts().items()))
    frame = counts.reset_index().rename(columns={"gamma": "γ", "variant": "selected on validation (× seeds)"})
    frame["order"] = frame["method"].map({m: i for i, m in enumerate(ordered_methods(frame["method"]))})
    return frame.sort_values(["γ", "order"]).drop(columns="order")


HARD_LIMITS = {"lam": (0.0, 1.0), "k": (1,)}  # values no grid can go beyond


def edge_selections(summary: pd.DataFrame, teacher: str, grids: dict[str, dict[str, list]]) -> list[str]:
    """Grid axes whose smallest or largest value was chosen for most seeds at some γ
    (a limit of the parameter itself, like λ = 1, is not an edge of the grid)."""
    students = _students_of(summary, teacher)
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


def claims_section(claims_by_track: dict[str, dict[str, Any]]) -> str:
    first = next(iter(claims_by_track.values()))
    lines = [f"Each comparison is a paired per-seed difference of test accuracy (best-on-validation "
             f"checkpoint), shown as mean [mean ± {first['z']:g}·SE]; equivalence margin "
             f"±{first['margin']:g} points (rules in `partialkd.claims`). C10 and C11 use the "
             "students' analyses (Spearman correlations and similarity-matrix correlations, "
             "unitless); C9 and C12 need the teacher-confidence analyses that come next."]
    for track, claims in claims_by_track.items():
        lines += ["", f"### {TRACK_TITLES[track]}", "", f"Compared: {claims['scope']}.", ""]
        for claim in claims["claims"]:
            lines.append(f"- **{claim['id']}** ({claim['statement']}): **{claim['verdict']}**")
            lines += [f"  - {line}" for line in claim["evidence"]]
    return "\n".join(lines)


def provenance_section(summaries: list[pd.DataFrame]) -> str:
    now = provenance()
    runs = pd.concat(summaries).drop_duplicates("run")
    compute_hours = (runs["seconds_per_epoch"] * runs["epochs"]).sum() / 3600
    return "\n".join([
        f"- generated: {now['finished_utc']}",
        f"- code (git commit of the runs): {', '.join(sorted(map(str, runs['git_commit'].unique())))}",
        f"- packages: {', '.join(f'{k} {v}' for k, v in now['versions'].items())}; Python {now['python']}",
        f"- devices: {', '.join(sorted(runs['device'].unique()))}",
        f"- training runs: {len(runs)}; training compute ≈ {compute_hours:.2f} device-hours",
    ])


TRACK_TITLES = {"synthetic": "Synthetic study (NOTES §3)", "cifar100": "CIFAR-100 (NOTES §4)"}


ANALYSIS_CAPTIONS = {
    "rescaling": "gradient rescaling w_t (the true-class gradient of the loss divided by CE's) "
                 "against the teacher's confidence p_t on the validation examples, in ten "
                 "equal-count bins of p_t: median and 10–90% band, pooled over seeds (NOTES §2, C10)",
    "geometry": "cosine similarities of the last-layer class vectors, classes ordered by group: "
                "the teacher and the first seed's students (NOTES §5, C11)",
    "geometry_bars": "correlation of each student's class-similarity matrix with the teacher's: "
                     "mean ± sd over seeds, one dot per seed (C11)",
}


TOPK_CAPTION = ("test accuracy of the `kd_topk` student against k, the number of the teacher's "
                "classes kept (at each k the other hyperparameters chosen on validation), mean "
                "and spread over seeds; dashed, the `kd` student with its sd band (C8)")


def analysis_figures_section(links: list[str]) -> str:
    """Each analysis figure (named gamma{γ}_{teacher}_{kind}.png, or topk.png) with its caption."""
    blocks = []
    for link in links:
        if Path(link).stem == "topk":
            blocks.append(f"![kd_topk against k]({link})\n\n*Figure: {TOPK_CAPTION}.*")
            continue
        condition, teacher, kind = Path(link).stem.split("_", 2)
        gamma = condition.removeprefix("gamma")
        blocks.append(f"![{kind} at γ = {gamma}]({link})\n\n*Figure: γ = {gamma}, teacher "
                      f"`{teacher}`: {ANALYSIS_CAPTIONS[kind]}.*")
    return "\n\n".join(blocks)


def synthetic_section(summary: pd.DataFrame, claims: dict[str, Any], params: dict[str, Any],
                      figure_link: str, analysis_links: list[str]) -> str:
    teacher = params["claims"]["teacher"]
    seeds = summary.loc[summary["role"] == "student", "seed"].nunique()
    return f"""## {TRACK_TITLES["synthetic"]}

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

The full table, one row per run and variant (with last-epoch metrics, NLL and calibration
error; `selected` marks the variant that represents its method), is `results/synthetic/summary.csv`.

### Analyses of the students

{analysis_figures_section(analysis_links) if analysis_links else "Not run."}
"""


def cifar_section(summary: pd.DataFrame, params: dict[str, Any]) -> str:
    section = params["cifar100"]
    seeds = len(section["students"]["seeds"])
    pairs = dict.fromkeys((pair["teacher"], pair["student"]) for pair in section["students"]["pairs"])
    tables = [f"### {teacher} → {student}\n\n"
              f"{markdown_table(pair_table(summary, section, teacher, student))}"
              for teacher, student in pairs]
    return f"""## {TRACK_TITLES["cifar100"]}

Top-1 test accuracy (%) per teacher → student pair: the teacher, then each student method at
its validation-selected grid point (per seed), mean ± sd over up to {seeds} seeds, of the
last-epoch weights and of the best-on-validation checkpoint (held-out {section["data"]["valid_size"]}
training images; the test set is never used for selection). "published" is the CIFAR-100 KD
benchmark's number for the same recipe (NOTES §4), where one exists; "Δ" is best-on-validation
minus published. A cell reads "not run" until its jobs have finished.

{(chr(10) * 2).join(tables)}

The full table, one row per run (every grid point, `selected` marking the chosen ones), is
`results/cifar100/summary.csv`.
"""


def pair_table(summary: pd.DataFrame, section: dict[str, Any], teacher: str, student: str) -> pd.DataFrame:
    """One pair's rows: the teacher and each method of the pair's matrix."""
    published = published_cifar100(section, teacher, student)
    teacher_rows = summary[(summary["role"] == "teacher") & (summary["teacher"] == teacher)]
    rows = [_accuracy_row("teacher", teacher_rows, published.get("teacher"))]
    students = selected_students(summary)
    students = students[(students["student"] == student)
                        & students["teacher"].isin([teacher, NO_TEACHER])]
    methods = next(p.get("methods", list(section["methods"])) for p in section["students"]["pairs"]
                   if (p["teacher"], p["student"]) == (teacher, student))
    for method in ordered_methods(methods):
        rows.append(_accuracy_row(method, students[students["method"] == method], published.get(method)))
    return pd.DataFrame(rows)


def _accuracy_row(name: str, rows: pd.DataFrame, published: float | None) -> dict[str, str]:
    chosen = ", ".join(f"{v} ×{n}" for v, n in rows["variant"].value_counts().items()) if len(rows) else ""
    best = 100 * rows[METRIC]
    return {"model": name, "runs": str(len(rows)),
            "last epoch": _mean_sd(100 * rows["last_test_acc"]) if len(rows) else "not run",
            "best on valid": _mean_sd(best) if len(rows) else "not run",
            "published": "" if published is None else f"{published:.2f}",
            "Δ": "" if published is None or not len(rows) else f"{best.mean() - published:+.2f}",
            "chosen on valid (× seeds)": chosen}


def build_report(params: dict[str, Any], synthetic: tuple[pd.DataFrame, dict, str, list[str]] | None,
                 cifar100: tuple[pd.DataFrame, dict] | None) -> str:
    """`synthetic`: (summary, claims, figure link, analysis figure links); `cifar100`: (summary,
    claims)."""
    claims = {track: results[1] for track, results in (("synthetic", synthetic), ("cifar100", cifar100))
              if results is not None}
    sections = []
    if synthetic is not None:
        sections.append(synthetic_section(*synthetic[:2], params, *synthetic[2:]))
    if cifar100 is not None:
        sections.append(cifar_section(cifar100[0], params))
    summaries = [results[0] for results in (synthetic, cifar100) if results is not None]
    return f"""# Reproduction report: Understanding and Improving Knowledge Distillation

Generated by the workflow from the results under `results/`; do not edit by hand (re-run
`snakemake`). Paper: Tang et al., arXiv 2002.03532. Claims and formulas: `NOTES.md` §2–§6.

## Claims

{claims_section(claims)}

{chr(10).join(sections)}
## Parameters

Choices that are ours (NOTES §3, §4): the synthetic generator and its β, the sizes, the
architectures and schedules, the per-method grids, the validation split, and the verdict rule
of the claims.

```yaml
{yaml.safe_dump(params, sort_keys=False, width=100).strip()}
```

## Provenance

{provenance_section(summaries)}
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.report", description=__doc__)
    parser.add_argument("--params", required=True, type=json.loads, help="the parameters, as JSON")
    parser.add_argument("--synthetic", nargs=3, metavar=("SUMMARY", "CLAIMS", "FIGURE"),
                        help="the synthetic track's summary.csv, claims.json and gain figure (PNG)")
    parser.add_argument("--analysis-figures", nargs="*", default=[],
                        help="the synthetic analyses' PNG figures (topk.png, gamma{γ}_{teacher}_{kind}.png)")
    parser.add_argument("--cifar100", nargs=2, metavar=("SUMMARY", "CLAIMS"),
                        help="the CIFAR-100 track's summary.csv and claims.json")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not (args.synthetic or args.cifar100):
        parser.error("give at least one track: --synthetic and/or --cifar100")
    synthetic = cifar100 = None
    if args.synthetic:
        summary, claims, figure = args.synthetic
        synthetic = (pd.read_csv(summary), json.loads(Path(claims).read_text()),
                     os.path.relpath(figure, Path(args.out).parent),
                     [os.path.relpath(path, Path(args.out).parent) for path in args.analysis_figures])
    if args.cifar100:
        cifar100 = (pd.read_csv(args.cifar100[0]), json.loads(Path(args.cifar100[1]).read_text()))
    text = build_report(args.params, synthetic, cifar100)
    atomic_write(args.out, lambda handle: handle.write(text.encode()))


if __name__ == "__main__":
    main()
