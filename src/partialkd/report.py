"""The generated report: claims first, then each track's tables and figures, parameters,
provenance. Every number comes from the summary tables and claim files. One document, written
as paper/REPORT.md and as the LaTeX body that paper/main.tex inputs; every table also as
Markdown and LaTeX under the tables folder (`<track>/<name>.{md,tex}`).

`python -m partialkd.report --params JSON --track TRACK SUMMARY CLAIMS [--track ...]
[--figures TRACK PNG... ...] --out paper/REPORT.md --latex paper/generated/body.tex
--tables paper/tables [--overview paper/generated/overview.html]`

Figures are PNGs named `<kind>.png` (a track's own figures: gain, topk; `claims.png`, the
forest plot of its claims, opens the claims section) or `<condition>_<kind>.png` (an analysis
under one condition); the LaTeX body uses the PDF beside each PNG when there is one. Paths in
both documents are relative to the folder of --out, where paper/main.tex lives too. --overview
writes the front page of the HTML report (`snakemake --report`, whose description
workflow/report/workflow.rst inlines it): every claim's verdict per track, then the forest plots.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from partialkd.common.io import atomic_write
from partialkd.common.provenance import provenance
from partialkd.plan.tracks import SYNTHETIC, TRACKS
from partialkd.reporting.document import (Block, Bullet, Bullets, Code, Figure, Heading, Paragraph,
                                          TableBlock, render_latex, render_markdown)
from partialkd.reporting.reference import PEERS_TRAIN_IMAGES
from partialkd.reporting.style import ERROR_BAR_CAPTIONS, VERDICT_MARKS, score_label
from partialkd.reporting.summary import ACCURACY, SCORES, Score
from partialkd.reporting.tables import (DELTA_OURS, DELTA_PEERS, PEAK, Table, accuracy_table, claims_table,
                                        pair_sim_degeneracy_table, pair_table, selected_variants,
                                        sim_degeneracy_table, students_of)

TITLE = "Reproduction report: Understanding and Improving Knowledge Distillation"

ANALYSIS_CAPTIONS = {
    "rescaling": "gradient rescaling w_t (the true-class gradient of the loss divided by CE's) "
                 "against the teacher's confidence p_t on the validation examples, in ten "
                 "equal-count bins of p_t: median and 10–90% band, pooled over seeds (NOTES §2, "
                 "C10). Left: each method's w_t (its λ, τ and target) at a fixed reference "
                 "student's q, the ce student of the same seed, so that only the teacher's "
                 "confidence varies (C10 as the paper means it); right: at each method's own "
                 "student's q. Each panel has its own y axis, covering every median; the bands are "
                 "clipped (w_t has tails of thousands where q_t → 1)",
    "geometry": "cosine similarities of the last-layer class vectors, classes ordered by group: "
                "the teacher and the first seed's students (NOTES §5, C11)",
    "geometry_bars": "correlation of each student's class-similarity matrix with the teacher's: "
                     "mean ± sd over seeds, one dot per seed (C11)",
    "confidence": "histograms of the teacher's p_t on the validation split (its first "
                  "`analysis.max_examples` examples where the track sets it) for plain, "
                  "label-smoothed and differently sized teachers; right: test accuracy of the kd "
                  "students they produce, per seed, with the ce student as reference (C9, C12)",
    "tau": "the teacher's class-probability correlations at low and high τ, classes ordered by "
           "group/superclass (NOTES §5); on a track with `analysis.top_classes` (Penn Treebank), "
           "the correlations of the most frequent classes only",
}
SIM_DEGENERACY_CAPTION = (
    "the similarity targets' α chosen on validation (× seeds) and how uniform the chosen "
    "variants' similarity rows are: the mean over classes t of the normalised entropy of row t of "
    "S (`kd_sim`, H/log K) or of its wrong classes' part, S_tj over j ≠ t renormalised to sum to "
    "1 (`kd_pt_sim`, H/log(K−1)), mean ± sd over seeds. Near 1 the rows are nearly uniform: "
    "`kd_sim` is then label smoothing and `kd_pt_sim` is `kd_pt`, so their results say nothing "
    "about class relations (NOTES §2)")
TOPK_CAPTION = ("of the `kd_topk` student against k, the number of the teacher's classes kept "
                "(at each k the other hyperparameters chosen on validation), mean and spread over "
                "seeds; dashed, the `kd` student with its sd band (C8)")


FOREST = "claims"  # the stem of a track's forest plot of its claims
FOREST_CAPTION = (
    "one row per part of each claim (the claim, condition and comparison, its rule in brackets): "
    "the mark is the estimated effect, positive where it favours the claim, and the line its "
    "Student-t interval at the claim's level (an arrowhead at the axis edge: unbounded, one "
    "replicate); shaded, the equivalence margin ±δ of the `≥` and `≈` rules; colour and mark give "
    f"the part's verdict ({', '.join(f'{verdict}: {mark.words}' for verdict, mark in VERDICT_MARKS.items())}); "
    "at the right, each claim's verdict and level; one panel, with its own axis, per unit; the "
    "claims not run are listed below the plot")


def forest_caption(track: str, claims: dict[str, Any]) -> str:
    """The caption of a track's forest plot: what it shows, with the claims file's level and margin."""
    alpha = f"{1 - claims['confidence']:g}"
    level = (f"1 − α/m for a claim of m parts, α = {alpha} (Bonferroni)" if claims["correction"] == "bonferroni"
             else f"{claims['confidence']:g} (no correction)")
    lead = f" ({claims['scope']}; those beside them are in the tables below)" if claims.get("beside") else ""
    return (f"{TRACKS[track].title}, the claims at a glance{lead}: {FOREST_CAPTION}. Level: {level}; "
            f"margin δ = {claims['margin']:g}{SCORES[claims.get('metric', 'acc')].unit}")


def is_forest(png: str | Path) -> bool:
    """Whether a figure is a track's forest plot of its claims."""
    return Path(png).stem == FOREST


def topk_caption(score: Score) -> str:
    """The KD-topk figure's caption for a track scored by `score` (accuracy or perplexity)."""
    return f"{score_label(score)} {TOPK_CAPTION}"


def gain_caption(error_bars: str, students: str) -> str:
    return ("test accuracy of each student method minus that of the `ce` student trained from "
            "the same seed (paired), against the class correlation γ; "
            f"{ERROR_BAR_CAPTIONS[error_bars]} over {students}")


def replicate_count(track: str, params: dict[str, Any]) -> int:
    """How many replicates a track's parameters give: synthetic worlds or teacher seeds (1: one)."""
    section = params.get(track, {})
    return len(section.get("data", {}).get("world_seeds") or section.get("teacher_seeds") or [0])


def students_text(track: str, params: dict[str, Any]) -> str:
    """How many students of a method a condition has: '10 seeds', or '6 students (3 worlds × 2
    seeds)' on a track with replicates."""
    section = params[track]
    seeds = len(section["student" if track == "synthetic" else "students"]["seeds"])
    replicates, unit = replicate_count(track, params), "worlds" if track == "synthetic" else "teacher seeds"
    if replicates < 2:
        return f"{seeds} seeds"
    return f"{replicates * seeds} students ({replicates} {unit} × {seeds} seeds)"


TRACK_FIGURES = ("gain", "topk")  # a track's own figures; the others are <condition>_<kind>


def figure_kind(stem: str) -> tuple[str | None, str]:
    """(condition, kind) of a figure's file stem; the condition of a track's own figure is None.
    The kind is a known suffix: conditions may contain underscores (`resnet56_ls_resnet20`)."""
    if stem in TRACK_FIGURES:
        return None, stem
    for kind in sorted(ANALYSIS_CAPTIONS, key=len, reverse=True):
        if stem.endswith(f"_{kind}") and len(stem) > len(kind) + 1:
            return stem[:-len(kind) - 1], kind
    raise ValueError(f"figure {stem!r}: expected one of {', '.join(TRACK_FIGURES)} or "
                     f"<condition>_<kind> with kind in {', '.join(ANALYSIS_CAPTIONS)}")


GAMMA_CONDITION = re.compile(r"gamma(?P<gamma>[0-9.]+)(?:_(?P<teacher>[^_]+)(?:_(?P<student>.+))?)?")


def condition_label(track: str, condition: str, params: dict[str, Any]) -> str:
    """A condition in words: γ (and teacher) on the synthetic track, a teacher → student pair or
    a student's teachers on an image track."""
    if track == "synthetic" and (match := GAMMA_CONDITION.fullmatch(condition)):
        teacher = f", teacher `{match['teacher']}`" if match["teacher"] else ""
        student = f", student `{match['student']}`" if match["student"] else ""
        return f"γ = {match['gamma']}{teacher}{student}"
    pairs = [(p["teacher"], p["student"]) for p in params.get(track, {}).get("students", {}).get("pairs", [])]
    if (pair := next((p for p in pairs if condition == "_".join(p)), None)) is not None:
        return f"`{pair[0]}` → `{pair[1]}`"
    if condition in {student for _, student in pairs}:
        return f"the teachers of `{condition}`"
    return f"`{condition}`"


REPLICATE_FOLDER = re.compile(r"(?P<unit>world|teacher_seed)(?P<value>[0-9]+)")


def replicate_label(folder: str, track: str, params: dict[str, Any]) -> str:
    """', world 0 (the claims pool every world)' for a figure under the folder of one of the
    track's several replicates ('' for a track with one)."""
    if replicate_count(track, params) < 2 or not (match := REPLICATE_FOLDER.fullmatch(folder)):
        return ""
    unit = match["unit"].replace("_", " ")
    return f", {unit} {match['value']} (the claims pool every {unit})"


def figure_blocks(track: str, figures: Sequence[tuple[str, str]], params: dict[str, Any],
                  students: str, score: Score = ACCURACY) -> list[Block]:
    """A track's own figures, then the analyses' figures grouped by condition (conditions in the
    given order, kinds in ANALYSIS_CAPTIONS' order), each with its caption; `figures`: (PNG
    link, LaTeX graphic link) pairs."""
    blocks: list[Block] = []  # the track's own figures, then the groups
    by_condition: dict[str, dict[str, Figure]] = {}
    for png, graphic in figures:
        condition, kind = figure_kind(Path(png).stem)
        if condition is None:
            caption = gain_caption(params["figures"]["error_bars"], students) if kind == "gain" else topk_caption(score)
            blocks.append(Figure(png, graphic, caption, alt=kind))
            continue
        label = condition_label(track, condition, params) + replicate_label(Path(png).parent.name, track, params)
        by_condition.setdefault(label, {})[kind] = Figure(
            png, graphic, f"{label}: {ANALYSIS_CAPTIONS[kind]}", alt=f"{kind}, {label.replace('`', '')}")
    for label, kinds in by_condition.items():
        blocks += [Heading(4, label), *(kinds[kind] for kind in ANALYSIS_CAPTIONS if kind in kinds)]
    return blocks


HARD_LIMITS = {"lam": (0.0, 1.0), "k": (1,)}  # values no grid can go beyond


def edge_selections(summary: pd.DataFrame, teacher: str, grids: dict[str, dict[str, list]]) -> list[str]:
    """Grid axes whose smallest or largest value was chosen for most seeds at some γ
    (a limit of the parameter itself, like λ = 1, is not an edge of the grid)."""
    students = students_of(summary, teacher)
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


def interval_level(claim: dict[str, Any]) -> str:
    """The level of a claim's part intervals, as text after its verdict ('' when not run)."""
    parts = len(claim.get("parts", []))
    level = claim.get("level")
    if level is None:
        return ""
    return f" ({parts} part{'s' if parts != 1 else ''}, {100 * level:.3g}% intervals)"


def caveat_text(claim: dict[str, Any]) -> str:
    """What a claim's verdict rests on that undermines it, as text after the verdict."""
    caveats = claim.get("caveats", [])
    return f"; **caveat**, a near-uniform similarity target: {'; '.join(caveats)}" if caveats else ""


def comparison_text(track: str, data: dict[str, Any]) -> str:
    """What a pair table's published numbers and Δs are on `track` (its params.yaml `data`
    section); where the published numbers come from another protocol
    (`reference.PEERS_TRAIN_IMAGES`), how it differs from ours and what compares under it."""
    ours = f"“{DELTA_OURS}” is best-on-validation minus published."
    total = PEERS_TRAIN_IMAGES.get(track)
    if total is None:
        return ("“published” is the published number for the same architectures and recipe "
                f"(NOTES §4), where one exists; {ours}")
    trained_on = f"{total - data['valid_size']:,} of the {total:,} training images"
    return ("“published” is the published number for the same architectures and training recipe "
            "(NOTES §4), where one exists, but under another protocol: we train on "
            f"{trained_on} and report the best-on-validation checkpoint; the published numbers "
            f"come from training on all {total:,} training images and reporting the best test "
            f"accuracy over the epochs. {ours} “{PEAK}” is the best of the same runs' test "
            "accuracies recorded after every epoch (never used for selection here), the number "
            f"the published protocol reports; “{DELTA_PEERS}” is it minus published, like for "
            "like in how the epoch is chosen though not in the number of training images.")


def lead_student_text(section: dict[str, Any]) -> str:
    """'students' or, with several architectures, '`mlp32` students (the other architectures'
    claims stand beside)'."""
    architectures = section.get("student", {}).get("architectures", [])
    if len(architectures) < 2:
        return "students"
    return f"`{architectures[0]['name']}` students (the other architectures' claims stand beside)"


def lead_student_rows(summary: pd.DataFrame, section: dict[str, Any]) -> pd.DataFrame:
    """The synthetic summary without the students of architectures after the first (their
    claims stand beside the first's; their rows are in the summary CSV)."""
    architectures = section.get("student", {}).get("architectures", [])
    if "student" not in summary or len(architectures) < 2:
        return summary
    return summary[summary["student"].isna() | (summary["student"] == architectures[0]["name"])]


class Report:
    """The blocks of the report, built from each track's results; tables go to `tables` (a
    folder relative to the documents)."""

    def __init__(self, params: dict[str, Any], tables: str) -> None:
        self.params, self.tables_folder = params, tables
        self.tables: list[Table] = []

    def table(self, table: Table) -> TableBlock:
        self.tables.append(table)
        return TableBlock(table, self.tables_folder)

    def claims(self, claims_by_track: dict[str, dict[str, Any]],
               forests: dict[str, tuple[str, str]]) -> list[Block]:
        """The claims section: each track's forest plot (`forests`: per track, its PNG and LaTeX
        graphic links), the procedure, then each track's claims."""
        first = next(iter(claims_by_track.values()))
        blocks: list[Block] = [Heading(2, "Claims"), *(
            Figure(*forests[track], forest_caption(track, claims), alt=f"claims at a glance, {track}")
            for track, claims in claims_by_track.items() if track in forests), Paragraph(
            "Comparisons are of test accuracy (best-on-validation checkpoint), or of test "
            f"perplexity where a track says so. {first['procedure']} Each claim lists its parts "
            "with their intervals (rules in `partialkd.claims`). C10 and C11 use the students' "
            "analyses (Spearman correlations and similarity-matrix correlations, unitless); C9 "
            "and C12 use the teachers' diagnoses: the students that a label-smoothed or a larger "
            "teacher produces, and how concentrated each teacher's confidence p_t is.")]
        for track, claims in claims_by_track.items():
            blocks += [Heading(3, TRACKS[track].title), *self.claim_set(track, "claims", claims)]
            for beside in claims.get("beside", []):
                who = "_".join(filter(None, (beside["teacher"], beside["student"])))
                blocks += [Heading(4, f"Beside them: {beside['scope']}"),
                           *self.claim_set(track, f"claims_{who}", {**claims, **beside})]
        return blocks

    def claim_set(self, track: str, stem: str, claims: dict[str, Any]) -> list[Block]:
        """One claims file's scope, table (`<track>/<stem>`) and evidence."""
        score = SCORES[claims.get("metric", "acc")]
        compared = f"Compared: {claims['scope']}."
        if score != ACCURACY:
            compared += (f" Metric: {score.label}, lower is better; each difference is taken "
                         "so that a positive one favours the claim's first method (unit"
                         f"{score.unit}).") if score.lower_is_better else f" Metric: {score.label}."
        return [Paragraph(compared),
                self.table(Table(f"{track}/{stem}", "each claim's verdict and the range of its "
                                 "estimated effects over the conditions (in points of accuracy "
                                 "where marked pts, of perplexity where marked ppl, otherwise "
                                 "unitless)",
                                 claims_table(claims), wrap="statement")),
                Bullets(tuple(Bullet(f"**{claim['id']}** ({claim['statement']}): "
                                     f"**{claim['verdict']}**{interval_level(claim)}"
                                     f"{caveat_text(claim)}", tuple(claim["evidence"]))
                              for claim in claims["claims"]))]

    def synthetic(self, summary: pd.DataFrame, figures: Sequence[tuple[str, str]]) -> list[Block]:
        teacher = self.params["claims"]["teacher"]
        summary = lead_student_rows(summary, self.params["synthetic"])
        students = students_text("synthetic", self.params)
        return [
            Heading(2, TRACKS[SYNTHETIC].title),
            self.table(Table("synthetic/accuracy", "test accuracy (%, expected accuracy under the "
                             "Bayes posterior) of the best-on-validation checkpoint, mean ± sd over "
                             f"{students}, {lead_student_text(self.params['synthetic'])} of the "
                             f"`{teacher}` teacher",
                             accuracy_table(summary, teacher))),
            self.table(Table("synthetic/selected_variants", "the grid points chosen on the "
                             "validation split, with the number of seeds that chose each",
                             selected_variants(summary, teacher), wrap="selected on validation (× seeds)")),
            *self.sim_degeneracy("synthetic", sim_degeneracy_table(summary, teacher)),
            Paragraph("Choices at the edge of their grid for most seeds (a wider grid in "
                      "`params.yaml` may move them):"),
            Bullets(tuple(map(Bullet, edge_selections(summary, teacher,
                                                      self.params["synthetic"]["methods"])))),
            Paragraph("The full table, one row per run and variant (with last-epoch metrics, NLL "
                      "and calibration error; `selected` marks the variant that represents its "
                      "method), is `results/synthetic/summary.csv`."),
            *self.figures("synthetic", figures, students),
        ]

    def image_track(self, track: str, summary: pd.DataFrame, figures: Sequence[tuple[str, str]],
                    score: Score = ACCURACY) -> list[Block]:
        section = self.params[track]
        students = students_text(track, self.params)
        data = section["data"]
        valid = (f"held-out {data['valid_size']} training images" if "valid_size" in data
                 else f"held-out {data['valid_per_class']} training images per class"
                 if "valid_per_class" in data else "the validation split")
        blocks: list[Block] = [Heading(2, TRACKS[track].title), Paragraph(
            f"The {score.label} per teacher → student pair"
            f"{' (lower is better)' if score.lower_is_better else ''}: the teacher, then each "
            "student method at its validation-selected grid point (per seed), mean ± sd over up to "
            f"{students}, of the last-epoch weights and of the best-on-validation checkpoint "
            f"({valid}; the test set is never used for selection). {comparison_text(track, data)} "
            "A cell reads “not run” until its jobs have finished (a teacher given as a file has no "
            "run).")]
        pairs = dict.fromkeys((p["teacher"], p["student"]) for p in section["students"]["pairs"])
        for teacher, student in pairs:
            blocks += [Heading(3, f"{teacher} → {student}"),
                       self.table(Table(f"{track}/accuracy_{teacher}_{student}",
                                        f"`{teacher}` → `{student}`: {score.label}",
                                        pair_table(summary, section, teacher, student, score, track)))]
        if degeneracy := self.sim_degeneracy(track, pair_sim_degeneracy_table(summary, pairs)):
            blocks += [Heading(3, "Similarity targets"), *degeneracy]
        blocks.append(Paragraph("The full table, one row per run (every grid point, `selected` "
                                f"marking the chosen ones), is `results/{track}/summary.csv`."))
        return blocks + self.figures(track, figures, students, score)

    def sim_degeneracy(self, track: str, frame: pd.DataFrame) -> list[Block]:
        """A `tables.sim_degeneracy_table` (or its per-pair form) of `track`; none without sim
        students."""
        if frame.empty:
            return []
        return [self.table(Table(f"{track}/sim_degeneracy", SIM_DEGENERACY_CAPTION, frame))]

    def figures(self, track: str, figures: Sequence[tuple[str, str]], students: str,
                score: Score = ACCURACY) -> list[Block]:
        return ([Heading(3, "Figures"), *figure_blocks(track, figures, self.params, students, score)]
                if figures else [])

    def this_run(self, defaults: dict[str, Any]) -> list[Block]:
        """The run's parameters that differ from params.yaml's (a profile's or --config's)."""
        rows = parameter_differences(self.params, defaults)
        if not rows:
            return [Heading(2, "This run"), Paragraph("This run uses `params.yaml` as it is.")]
        return [Heading(2, "This run"), Paragraph(
            "This run's parameters differ from `params.yaml` where a profile or `--config` overrides "
            "them (`make demo`: the quick profile, a smaller study on fewer worlds, teacher seeds and "
            "grid points); the verdicts above are about this run:"),
            self.table(Table("parameters/this_run", "the parameters of this run that differ from "
                             "`params.yaml` (— where one of them has no such key)",
                             pd.DataFrame(rows, columns=["parameter", "this run", "params.yaml"]),
                             wrap="this run"))]

    def parameters(self) -> list[Block]:
        return [Heading(2, "Parameters"), Paragraph(
            "Choices that are ours (NOTES §3, §4): the synthetic generator and its β, the sizes, "
            "the architectures and schedules, the per-method grids, the validation split, and the "
            "verdict rule of the claims."),
            Code(yaml.safe_dump(self.params, sort_keys=False, width=100), "yaml")]

    def forking_paths(self, sizing: Path) -> list[Block]:
        """The grids tried while sizing the synthetic study and the verdicts under each, quoted
        from the sizing record (its section SIZING_SECTION)."""
        return [Heading(2, "Forking paths"), Paragraph(
            "The synthetic study's sizes and grids were chosen in recorded sizing runs, before the "
            f"results above. The grids tried and the verdicts of C5–C7 under each, quoted from "
            f"`{sizing.name}` (section “{SIZING_SECTION}”, which says which decision rule those "
            "runs used and what changed between them):"),
            self.table(Table("synthetic/forking_paths", "grids tried while sizing, and the verdicts "
                             "then", markdown_table(sizing.read_text(), SIZING_SECTION), wrap="grid"))]


def parameter_differences(run: Any, defaults: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, the run's value, the default) for every parameter where they differ; nested
    mappings are compared key by key, anything else (lists included) whole."""
    if not (isinstance(run, dict) and isinstance(defaults, dict)):
        return [] if run == defaults else [(prefix.rstrip("."), _flow(run), _flow(defaults))]
    return [row for key in dict.fromkeys([*defaults, *run])
            for row in parameter_differences(run.get(key, MISSING), defaults.get(key, MISSING), f"{prefix}{key}.")]


MISSING = "—"  # a key that one side lacks


def _flow(value: Any) -> str:
    """A parameter value as one line of YAML flow style."""
    if value is MISSING:
        return value
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).removesuffix("...\n").strip()


SIZING_SECTION = "What the verdicts depend on"


def markdown_table(text: str, section: str) -> pd.DataFrame:
    """The first Markdown table under the `## section` heading of `text`."""
    lines = text.split(f"## {section}\n", 1)[-1].splitlines() if f"## {section}\n" in text else []
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise ValueError(f"no table under '## {section}'")
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return pd.DataFrame(rows[2:], columns=rows[0])  # rows[1] is the |---| rule


def provenance_lines(summaries: list[pd.DataFrame]) -> list[str]:
    now = provenance()
    runs = pd.concat(summaries).drop_duplicates("run")
    compute_hours = (runs["seconds_per_epoch"] * runs["epochs"]).sum() / 3600
    return [
        f"generated: {now['finished_utc']}",
        f"code (git commit of the runs): {', '.join(sorted(map(str, runs['git_commit'].unique())))}",
        f"packages: {', '.join(f'{k} {v}' for k, v in now['versions'].items())}; Python {now['python']}",
        f"devices: {', '.join(sorted(runs['device'].unique()))}",
        f"training runs: {len(runs)}; training compute ≈ {compute_hours:.2f} device-hours",
    ]


def build_report(params: dict[str, Any], results: dict[str, tuple[pd.DataFrame, dict[str, Any]]],
                 figures: dict[str, Sequence[tuple[str, str]]], tables: str,
                 sizing: Path | None = None, defaults: dict[str, Any] | None = None
                 ) -> tuple[list[Block], list[Table]]:
    """The report's blocks and tables. `results`: per track, (summary, claims); `figures`: per
    track, (PNG link, LaTeX graphic link) pairs, its forest plot (`FOREST`, which opens the
    claims) among them; `tables`: the tables folder's link; `sizing`: the synthetic study's
    sizing record, quoted in the forking-paths section; `defaults`: the repository's
    params.yaml, against which the run's parameters are compared."""
    report = Report(params, tables)
    forests = {track: links for track, pairs in figures.items() for links in pairs if is_forest(links[0])}
    figures = {track: [links for links in pairs if not is_forest(links[0])] for track, pairs in figures.items()}
    blocks: list[Block] = [Paragraph(
        "Generated by the workflow from the results under `results/`; do not edit by hand (re-run "
        "`snakemake`). Paper: Tang et al., arXiv 2002.03532. Claims and formulas: `NOTES.md` "
        "§2–§6. Every table is also under `paper/tables/` as Markdown and LaTeX."),
        *report.claims({track: claims for track, (_, claims) in results.items()}, forests),
        *(report.this_run(defaults) if defaults is not None else [])]
    for track, (summary, claims) in results.items():
        blocks += (report.synthetic(summary, figures.get(track, ())) if track == "synthetic"
                   else report.image_track(track, summary, figures.get(track, ()),
                                           SCORES[claims.get("metric", "acc")]))
    blocks += [*report.parameters(), *(report.forking_paths(sizing) if sizing else []), Heading(2, "Provenance"),
               Bullets(tuple(map(Bullet, provenance_lines([summary for summary, _ in results.values()]))))]
    return blocks, report.tables


OVERVIEW_CLASS = "claims-overview"  # the hook of the report's stylesheet (workflow/report/report.css)
MARKDOWN_CODE = re.compile(r"`([^`]+)`")


def inline_html(text: str) -> str:
    """Text with Markdown's inline `code` as HTML, the rest escaped."""
    return MARKDOWN_CODE.sub(r"<code>\1</code>", html.escape(text))


def verdict_cell(claim: dict[str, Any] | None) -> str:
    """A claim's verdict on one track, coloured as in the forest plots, '(caveat)' where it rests on
    a near-uniform similarity target ('—': the track has no such claim)."""
    if claim is None:
        return "<td>—</td>"
    mark = VERDICT_MARKS.get(claim["verdict"])
    style = f' style="color: {mark.color}; font-weight: bold"' if mark else ""
    caveat = " (caveat)" if claim.get("caveats") else ""
    return f"<td{style}>{html.escape(claim['verdict'])}{caveat}</td>"


def verdicts_html(claims_by_track: dict[str, dict[str, Any]]) -> str:
    """A table of the tracks' lead claims: one row per claim (in order of first appearance, its
    statement as the first track that has it words it), one verdict column per track."""
    by_id = {track: {claim["id"]: claim for claim in claims["claims"]} for track, claims in claims_by_track.items()}
    rows = []
    for claim_id in dict.fromkeys(claim_id for claims in by_id.values() for claim_id in claims):
        statement = next(claims[claim_id] for claims in by_id.values() if claim_id in claims)["statement"]
        cells = "".join(verdict_cell(claims.get(claim_id)) for claims in by_id.values())
        rows.append(f'<tr><th>{html.escape(claim_id)}</th><td class="statement" title="{html.escape(statement)}">'
                    f"{inline_html(statement)}</td>{cells}</tr>")
    header = "".join(f"<th>{html.escape(track)}</th>" for track in by_id)
    return (f"<table><thead><tr><th>claim</th><th>statement</th>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def forest_html(track: str, claims: dict[str, Any], png: Path) -> str:
    """A track's forest plot, embedded as a data URI (the report stays one file), with its scope."""
    uri = f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"
    return (f'<figure><img src="{uri}" alt="claims at a glance, {html.escape(track)}">'
            f"<figcaption>{html.escape(TRACKS[track].title)}, the claims at a glance: "
            f"{inline_html(claims['scope'])}</figcaption></figure>")


def overview_html(claims_by_track: dict[str, dict[str, Any]], forests: dict[str, Path]) -> str:
    """The HTML report's front page: every claim's verdict per track, then each track's forest
    plot (`forests`: per track, its PNG; a track without one has its verdicts alone)."""
    figures = "".join(forest_html(track, claims, forests[track])
                      for track, claims in claims_by_track.items() if track in forests)
    return (f'<div class="{OVERVIEW_CLASS}"><p>The paper\'s claims checked on this run\'s results: each '
            "claim's verdict per track (its lead teacher and student), then each track's forest plot; "
            "“caveat”: the verdict rests on a near-uniform similarity target. The claims of the other "
            "teachers and students, the decision rule and the evidence: <code>paper/REPORT.md</code> "
            "and the <em>Claims</em> results.</p>"
            f"{verdicts_html(claims_by_track)}{figures}</div>\n")


def figure_links(png: Path, base: Path) -> tuple[str, str]:
    """A figure's PNG link and its LaTeX graphic (the PDF beside the PNG, if any), relative to `base`."""
    if not png.is_file():
        raise ValueError(f"no figure {png}")
    pdf = png.with_suffix(".pdf")
    return os.path.relpath(png, base), os.path.relpath(pdf if pdf.is_file() else png, base)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m partialkd.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", required=True, type=json.loads, help="the parameters, as JSON")
    parser.add_argument("--track", action="append", nargs=3, required=True,
                        metavar=("TRACK", "SUMMARY", "CLAIMS"), help="a track's summary.csv and claims.json")
    parser.add_argument("--figures", action="append", nargs="+", default=[], metavar="TRACK PNG",
                        help="a track, then its figures (PNG)")
    parser.add_argument("--out", required=True, type=Path, help="the Markdown report")
    parser.add_argument("--latex", required=True, type=Path, help="the LaTeX body for main.tex")
    parser.add_argument("--tables", required=True, type=Path, help="the folder of the tables")
    parser.add_argument("--sizing", type=Path,
                        help="the synthetic study's sizing record (docs/synthetic-sizing.md)")
    parser.add_argument("--defaults", type=Path,
                        help="the repository's params.yaml: the report lists where the run differs from it")
    parser.add_argument("--overview", type=Path,
                        help="the HTML report's front page: the verdicts and the forest plots, as HTML")
    args = parser.parse_args(argv)
    tracks = [track for track, _, _ in args.track]
    for track in tracks:
        if track not in TRACKS:
            parser.error(f"--track {track}: unknown track (known: {', '.join(TRACKS)})")
    if len(set(tracks)) < len(tracks):
        parser.error(f"--track given twice for one track: {' '.join(tracks)}")
    for track, *pngs in args.figures:
        if track not in tracks or not pngs:
            parser.error(f"--figures {track}: give a track that has a --track, then its PNG figures")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    base = args.out.parent
    results = {track: (pd.read_csv(summary), json.loads(Path(claims).read_text()))
               for track, summary, claims in args.track}
    figures: dict[str, list[tuple[str, str]]] = {}
    for track, *pngs in args.figures:
        figures.setdefault(track, []).extend(figure_links(Path(png), base) for png in pngs)
    defaults = yaml.safe_load(args.defaults.read_text()) if args.defaults else None
    blocks, tables = build_report(args.params, results, figures, os.path.relpath(args.tables, base),
                                  args.sizing, defaults)
    for table in tables:
        table.write(args.tables)
    documents = [(args.latex, render_latex(blocks)), (args.out, render_markdown(TITLE, blocks))]
    if args.overview:
        forests = {track: Path(png) for track, *pngs in args.figures for png in pngs if is_forest(png)}
        documents.append((args.overview, overview_html({track: claims for track, (_, claims) in results.items()},
                                                       forests)))
    for path, text in documents:
        atomic_write(path, lambda handle, t=text: handle.write(t.encode()))


if __name__ == "__main__":
    main()
