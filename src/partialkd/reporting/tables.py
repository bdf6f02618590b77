"""The report's tables: one builder per table (a frame of text cells computed from the summary
table or the claims), two renderers (Markdown, and LaTeX with booktabs).

Cells use Markdown's inline `code` and **bold**; the LaTeX renderer converts them and escapes
the rest (partialkd.reporting.latex_text), so a table reads the same in paper/REPORT.md and paper/main.pdf.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from partialkd.common.io import atomic_write
from partialkd.core.methods import SIMILARITY_TARGETS
from partialkd.reporting.latex_text import inline
from partialkd.reporting.reference import PEERS_TRAIN_IMAGES, published
from partialkd.reporting.style import ordered_methods
from partialkd.reporting.summary import ACCURACY, NO_TEACHER, Score, selected_students


@dataclass(frozen=True)
class Table:
    """A table to write as `<stem>.md` and `<stem>.tex` (stem relative to the tables folder);
    `wrap` names a column of long text that wraps in LaTeX."""
    stem: str
    caption: str
    frame: pd.DataFrame
    wrap: str | None = None

    def write(self, folder: Path) -> None:
        for suffix, text in ((".md", to_markdown(self.frame)), (".tex", to_latex(self.frame, self.wrap))):
            atomic_write(folder / f"{self.stem}{suffix}", lambda handle, t=text: handle.write(t.encode()))


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table; a `|` inside a cell is escaped."""
    def row(cells) -> str:
        return "| " + " | ".join(str(cell).replace("|", r"\|") for cell in cells) + " |"
    return "\n".join([row(frame.columns), "|" + "---|" * len(frame.columns),
                      *(row(cells) for cells in frame.itertuples(index=False))]) + "\n"


RAGGED_X = r">{\raggedright\arraybackslash}X"  # wrapped text, not stretched to both edges
NUMBER = re.compile(r"^[-+−]?\d[\d.]*( ± \d[\d.]*)?$")


def to_latex(frame: pd.DataFrame, wrap: str | None = None) -> str:
    """A booktabs tabular: numeric columns right-aligned; with `wrap`, a tabularx as wide as the
    line whose `wrap` column takes the remaining width."""
    if wrap is not None and wrap not in frame.columns:
        raise ValueError(f"no column {wrap!r} to wrap in a table with columns {list(frame.columns)}")
    spec = "".join(RAGGED_X if column == wrap else _alignment(frame[column]) for column in frame.columns)
    begin, end = ((rf"\begin{{tabularx}}{{\linewidth}}{{{spec}}}", r"\end{tabularx}") if wrap
                  else (rf"\begin{{tabular}}{{{spec}}}", r"\end{tabular}"))

    def row(cells) -> str:
        return " & ".join(inline(str(cell)) for cell in cells) + r" \\"
    return "\n".join([begin, r"\toprule", row(frame.columns), r"\midrule",
                      *(row(cells) for cells in frame.itertuples(index=False)), r"\bottomrule", end]) + "\n"


def _alignment(cells: pd.Series) -> str:
    filled = [str(cell) for cell in cells if str(cell)]
    return "r" if filled and all(NUMBER.match(cell) for cell in filled) else "l"


def mean_sd(values: pd.Series, digits: int = 2) -> str:
    mean = f"{values.mean():.{digits}f}"
    return f"{mean} ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else mean


def chosen_variants(variants: pd.Series) -> str:
    """How often each grid point was chosen: 'kd(lam=0.9, tau=4) ×3, ...'."""
    return ", ".join(f"{variant} ×{count}" for variant, count in variants.value_counts().items())


def students_of(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    students = selected_students(summary)
    return students[students["teacher"] == teacher]


def accuracy_table(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """Test accuracy (%) per γ: Bayes, the teacher, then each student method (mean ± sd over seeds)."""
    students = students_of(summary, teacher)
    methods = ordered_methods(students["method"].unique())
    rows = []
    for gamma, at_gamma in students.groupby("gamma"):
        row = {"γ": f"{gamma:g}", "Bayes": f"{100 * at_gamma['bayes_test_acc'].iloc[0]:.2f}",
               "teacher": _teacher_accuracy(summary, teacher, gamma)}
        for method in methods:
            row[method] = mean_sd(100 * at_gamma.loc[at_gamma["method"] == method, ACCURACY.column()])
        rows.append(row)
    return pd.DataFrame(rows)


def _teacher_accuracy(summary: pd.DataFrame, teacher: str, gamma: float) -> str:
    if teacher == "oracle":
        return "= Bayes"
    rows = summary[(summary["role"] == "teacher") & (summary["teacher"] == teacher)
                   & (summary["gamma"] == gamma)]
    return f"{100 * rows[ACCURACY.column()].mean():.2f}"


def selected_variants(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """How often each grid point was chosen on validation, per γ and method."""
    students = students_of(summary, teacher)
    order = {method: i for i, method in enumerate(ordered_methods(students["method"].unique()))}
    rows = [{"γ": f"{gamma:g}", "method": method, "selected on validation (× seeds)": chosen_variants(rows["variant"])}
            for (gamma, method), rows in sorted(students.groupby(["gamma", "method"]),
                                                key=lambda item: (item[0][0], order[item[0][1]]))]
    return pd.DataFrame(rows)


SIM_ENTROPY = "row entropy (1 = uniform)"


def sim_degeneracy_table(summary: pd.DataFrame, teacher: str) -> pd.DataFrame:
    """Per γ and sim method (kd_sim, kd_pt_sim) of the students of `teacher`: the α chosen on
    validation (× seeds) and the mean ± sd over seeds of the chosen variants' `sim_entropy`, how
    close to uniform their similarity rows are; at 1 kd_sim is label smoothing and kd_pt_sim is
    kd_pt (NOTES §2), whatever the class relations."""
    students = students_of(summary, teacher)
    return _sim_degeneracy(((f"{gamma:g}", rows) for gamma, rows in students.groupby("gamma")), "γ")


def pair_sim_degeneracy_table(summary: pd.DataFrame, pairs: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """`sim_degeneracy_table` per teacher → student pair (the image and language-model tracks)."""
    students = selected_students(summary)
    of_pair = {pair: rows for pair, rows in students.groupby(["teacher", "student"])}
    return _sim_degeneracy(((f"`{teacher}` → `{student}`", of_pair[teacher, student])
                            for teacher, student in pairs if (teacher, student) in of_pair), "pair")


def _sim_degeneracy(conditions: Iterable[tuple[str, pd.DataFrame]], condition: str) -> pd.DataFrame:
    """One row per condition (label, students) and sim method with selected students."""
    rows = [{condition: label, "method": method,
             "α chosen (× seeds)": chosen_variants(chosen["alpha"].map("{:g}".format)),
             SIM_ENTROPY: _entropy(chosen)}
            for label, students in conditions for method in SIMILARITY_TARGETS
            if len(chosen := students[students["method"] == method])]
    return pd.DataFrame(rows, columns=[condition, "method", "α chosen (× seeds)", SIM_ENTROPY])


def _entropy(students: pd.DataFrame) -> str:
    """Mean ± sd of the recorded `sim_entropy` ('not recorded' for runs from before it was)."""
    values = students.get("sim_entropy", pd.Series(dtype=float)).dropna()
    return mean_sd(values, digits=3) if len(values) else "not recorded"


PEAK = "peak test over epochs"  # our runs' number under the published numbers' protocol
DELTA_OURS, DELTA_PEERS = "Δ (ours)", "Δ (peers' protocol)"


def pair_table(summary: pd.DataFrame, section: dict[str, Any], teacher: str, student: str,
               score: Score = ACCURACY, track: str = "cifar100") -> pd.DataFrame:
    """One teacher → student pair of an image track (params.yaml section `track`): the teacher
    and each method of the pair's matrix, by `score`, beside the published numbers; on a track
    whose published numbers follow another protocol (`reference.PEERS_TRAIN_IMAGES`), also our
    peak test score over the epochs, that protocol's number, and its Δ."""
    reference = published(track, section, teacher, student)
    peers = track in PEERS_TRAIN_IMAGES
    teacher_rows = summary[(summary["role"] == "teacher") & (summary["teacher"] == teacher)]
    rows = [_accuracy_row("teacher", teacher_rows, reference.get("teacher"), score, peers)]
    students = selected_students(summary)
    students = students[(students["student"] == student)
                        & students["teacher"].isin([teacher, NO_TEACHER])]
    methods = next(p.get("methods", list(section["methods"])) for p in section["students"]["pairs"]
                   if (p["teacher"], p["student"]) == (teacher, student))
    for method in ordered_methods(methods):
        rows.append(_accuracy_row(method, students[students["method"] == method], reference.get(method),
                                  score, peers))
    return pd.DataFrame(rows)


def _accuracy_row(name: str, rows: pd.DataFrame, published: float | None,
                  score: Score = ACCURACY, peers: bool = False) -> dict[str, str]:
    """A pair table's row of `rows` (one per seed); with `peers`, the peak test columns too."""
    best = score.points(rows[score.column()])
    row = {"model": name, "runs": str(len(rows)),
           "last epoch": mean_sd(score.points(rows[score.column("last")])) if len(rows) else "not run",
           "best on valid": mean_sd(best) if len(rows) else "not run",
           "published": "" if published is None else f"{published:.2f}",
           DELTA_OURS: _delta(best, published)}
    if peers:
        row.update(_peak_cells(rows, published, score))
    return {**row, "chosen on valid (× seeds)": chosen_variants(rows["variant"])}


def _peak_cells(rows: pd.DataFrame, published: float | None, score: Score) -> dict[str, str]:
    """Mean ± sd of the rows' peak test score over the epochs and its Δ against `published`
    ("not recorded" for runs from before it was, or from a trainer that does not record it)."""
    column = score.column("peak")
    if not len(rows):
        return {PEAK: "not run", DELTA_PEERS: ""}
    if column not in rows or rows[column].isna().any():
        return {PEAK: "not recorded", DELTA_PEERS: ""}
    peak = score.points(rows[column])
    return {PEAK: mean_sd(peak), DELTA_PEERS: _delta(peak, published)}


def _delta(points: pd.Series, published: float | None) -> str:
    """The mean of `points` minus the published number ('' without either)."""
    return "" if published is None or not len(points) else f"{points.mean() - published:+.2f}"


# The mean of an interval in a claim's evidence, as partialkd.claims.Interval.text writes it:
# "+2.98 pts [+2.85, +3.11]", "+3.10 ppl [...]" or, unitless, "+0.25 [+0.22, +0.27]".
EFFECT = re.compile(r"([+-]\d+\.\d+)( pts| ppl)? \[[+-]\d")


def effect_range(evidence: list[str]) -> str:
    """The smallest and largest estimated effect in a claim's evidence ('' when it has none)."""
    found = [match for line in evidence for match in EFFECT.findall(line)]
    if not found:
        return ""
    values = sorted(float(mean) for mean, _ in found)
    units = {unit for _, unit in found}
    unit = units.pop() if len(units) == 1 else ""
    low, high = f"{values[0]:+.2f}", f"{values[-1]:+.2f}"
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"


def part_counts(verdicts: list[str]) -> str:
    """How many parts of a claim got each verdict, e.g. '2 holds, 1 inconclusive'."""
    counts = pd.Series(verdicts, dtype=object).value_counts(sort=False)
    return ", ".join(f"{count} {verdict}" for verdict, count in counts.items())


def claims_table(claims: dict[str, Any]) -> pd.DataFrame:
    """One row per claim of a track's claims.json: id, statement, verdict, its parts' verdicts
    and its effect range."""
    return pd.DataFrame([{"claim": claim["id"], "statement": claim["statement"],
                          "verdict": claim["verdict"] + (" (caveat: near-uniform sim target)"
                                                         if claim.get("caveats") else ""),
                          "parts": part_counts(claim.get("parts", [])),
                          "effect (min to max)": effect_range(claim["evidence"])}
                         for claim in claims["claims"]],
                        columns=["claim", "statement", "verdict", "parts", "effect (min to max)"])
