"""The paper's claims checked on results (NOTES §6), each with its effect size and seed spread.

Every comparison is paired: the per-seed difference of two methods' test accuracy (the
best-on-validation checkpoint, in percentage points; with `--metric ppl`, of test perplexity,
taken so that a positive difference means the first method is better, i.e. lower), summarised
as mean ± z·SE. Verdicts:
- A > B holds when the interval lies above 0, fails when it lies below 0;
- A ≥ B holds when the interval lies above −margin, fails when it lies below 0;
- A ≈ B holds when the interval lies inside ±margin, fails when it excludes 0 and is not inside;
anything else is "inconclusive" (more seeds would decide it); a claim whose methods or
conditions are missing from the results is "not run". A claim must hold under every condition
(each γ of the synthetic track, each teacher→student pair of an image track).
`python -m partialkd.claims --summary summary.csv (--teacher T | --pair T S ...) [--analyses J ...]
[--diagnoses J ...] [--metric acc|ppl] ... --out claims.json`: C10 and C11 need the students' analyses
(`partialkd.analyse`), C9 and C12 the teachers' diagnoses (`partialkd.diagnose`).
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from partialkd.aggregate import ACCURACY, NO_TEACHER, SCORES, Score, selected_students
from partialkd.io import save_json

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
METRIC = "best_test_acc"


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences with a ±z·SE interval, in percentage points."""
    mean: float
    std: float
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, differences: Sequence[float], z: float) -> Interval:
        values = np.asarray(differences, dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else math.inf
        half = z * std / math.sqrt(len(values))
        return cls(float(values.mean()), std, len(values), float(values.mean() - half),
                   float(values.mean() + half))

    @classmethod
    def of_mean(cls, mean: float, se: float, n: int, z: float) -> Interval:
        """The interval of a mean known by its standard error (std = SE·√n)."""
        return cls(mean, se * math.sqrt(n), n, mean - z * se, mean + z * se)

    def text(self, unit: str = " pts") -> str:
        return (f"{self.mean:+.2f}{unit} [{self.low:+.2f}, {self.high:+.2f}] "
                f"(seed sd {self.std:.2f}, n = {self.n})")


def greater(interval: Interval, margin: float) -> str:
    return HOLDS if interval.low > 0 else FAILS if interval.high < 0 else INCONCLUSIVE


def at_least(interval: Interval, margin: float) -> str:
    return HOLDS if interval.low > -margin else FAILS if interval.high < 0 else INCONCLUSIVE


def approximately(interval: Interval, margin: float) -> str:
    if -margin < interval.low and interval.high < margin:
        return HOLDS
    return FAILS if interval.low > 0 or interval.high < 0 else INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """All parts must hold; one failing part fails the claim."""
    if NOT_RUN in verdicts or not verdicts:
        return NOT_RUN
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    verdict: str
    evidence: list[str]


@dataclass(frozen=True)
class Comparisons:
    """Per-seed test scores of the selected students as shown (accuracy in points, or the
    track's `score`): rows (condition, seed), columns methods. A condition is a class
    correlation γ (synthetic) or a teacher→student pair."""
    table: pd.DataFrame
    z: float
    margin: float
    score: Score = ACCURACY

    @classmethod
    def synthetic(cls, summary: pd.DataFrame, teacher: str, z: float, margin: float,
                  score: Score = ACCURACY) -> Comparisons:
        """One teacher's students, one condition per γ."""
        students = selected_students(summary)
        students = students[students["teacher"] == teacher]
        table = score.points(students.pivot_table(index=["gamma", "seed"], columns="method",
                                                  values=score.column()))
        return cls(table.rename_axis(index=["condition", "seed"]), z, margin, score)

    @classmethod
    def pairs(cls, summary: pd.DataFrame, pairs: Sequence[tuple[str, str]], z: float,
              margin: float, score: Score = ACCURACY) -> Comparisons:
        """One condition per (teacher, student architecture): the teacher's students with the
        teacher-free students (ce, ls) of the same architecture and seed."""
        students = selected_students(summary)
        frames = {}
        for teacher, student in pairs:
            rows = students[(students["student"] == student)
                            & students["teacher"].isin([teacher, NO_TEACHER])]
            frames[f"{teacher}→{student}"] = score.points(rows.pivot_table(
                index="seed", columns="method", values=score.column()))
        table = pd.concat(frames, names=["condition", "seed"]) if frames else pd.DataFrame()
        return cls(table, z, margin, score)

    def has(self, *methods: str) -> bool:
        return all(method in self.table.columns for method in methods)

    @property
    def conditions(self) -> list:
        return sorted(self.table.index.get_level_values("condition").unique()) if len(self.table) else []

    def difference(self, a: str, b: str, condition: Any) -> np.ndarray:
        """Per-seed improvement of a over b under `condition` (a − b, or b − a for a score where
        lower is better), over the seeds where both were run."""
        rows = self.table.xs(condition, level="condition")
        sign = -1.0 if self.score.lower_is_better else 1.0
        return (sign * (rows[a] - rows[b])).dropna().to_numpy()

    def check(self, test: Callable[[Interval, float], str], a: str, b: str, condition: Any,
              symbol: str) -> tuple[str, str]:
        where = describe(condition)
        differences = self.difference(a, b, condition)
        if len(differences) == 0:
            return NOT_RUN, f"{where}: no seed has both {a} and {b}"
        interval = Interval.of(differences, self.z)
        verdict = test(interval, self.margin)
        first, second = (b, a) if self.score.lower_is_better else (a, b)
        return verdict, (f"{where}: {first} − {second} = {interval.text(self.score.unit)} → "
                         f"{a} {symbol} {b} {verdict}")


def describe(condition: Any) -> str:
    return f"γ = {condition:g}" if isinstance(condition, (int, float)) else str(condition)


def _pairwise_claim(claim_id: str, statement: str, test: Callable[[Interval, float], str],
                    a: str, b: str, symbol: str) -> Callable[[Comparisons], Claim]:
    """A claim that `a symbol b` under every condition of the results."""
    def claim(data: Comparisons) -> Claim:
        if not data.has(a, b):
            return Claim(claim_id, statement, NOT_RUN, [f"needs {a} and {b}"])
        parts = [data.check(test, a, b, condition, symbol) for condition in data.conditions]
        return Claim(claim_id, statement, combine([v for v, _ in parts]), [e for _, e in parts])
    return claim


claim_c1 = _pairwise_claim("C1", "kd > ls", greater, "kd", "ls", ">")
claim_c2 = _pairwise_claim("C2", "kd_pt > ls", greater, "kd_pt", "ls", ">")
claim_c3 = _pairwise_claim("C3", "kd_sim > ls", greater, "kd_sim", "ls", ">")
claim_c4 = _pairwise_claim("C4", "kd_pt_sim ≈ kd (within the margin) or better", at_least,
                           "kd_pt_sim", "kd", "≥")
claim_c8 = _pairwise_claim("C8", "kd_topk at its validation-selected k ≥ kd", at_least,
                           "kd_topk", "kd", "≥")


def claim_c5(data: Comparisons) -> Claim:
    statement = "synthetic, uncorrelated classes (γ = 0): kd_pt ≥ kd_sim and kd_pt ≈ kd"
    if not data.has("kd_pt", "kd_sim", "kd") or 0.0 not in data.conditions:
        return Claim("C5", statement, NOT_RUN, ["needs kd_pt, kd_sim, kd and γ = 0"])
    parts = [data.check(at_least, "kd_pt", "kd_sim", 0.0, "≥"),
             data.check(approximately, "kd_pt", "kd", 0.0, "≈")]
    return Claim("C5", statement, combine([v for v, _ in parts]), [e for _, e in parts])


def claim_c6(data: Comparisons) -> Claim:
    statement = "synthetic: the gain of kd_sim over ls grows with class correlation γ"
    if not data.has("kd_sim", "ls") or len(data.conditions) < 2:
        return Claim("C6", statement, NOT_RUN, ["needs kd_sim, ls and at least two values of γ"])
    gain = (data.table["kd_sim"] - data.table["ls"]).unstack("condition").dropna()
    if gain.empty or gain.shape[1] < 2:
        return Claim("C6", statement, NOT_RUN, ["no seed has kd_sim and ls at two or more values of γ"])
    gammas = np.asarray(gain.columns, dtype=float)
    slopes = [float(np.polyfit(gammas, row.to_numpy(), 1)[0]) for _, row in gain.iterrows()]
    interval = Interval.of(slopes, data.z)
    verdict = greater(interval, data.margin)
    means = ", ".join(f"γ = {g:g}: {gain[g].mean():+.2f}" for g in gain.columns)
    return Claim("C6", statement, verdict, [
        f"mean gain kd_sim − ls per γ (pts): {means}",
        f"per-seed slope of the gain against γ (points per unit γ): {interval.text()} → {verdict}"])


def claim_c7(data: Comparisons) -> Claim:
    statement = "synthetic: kd_pt_sim ≥ max(kd_pt, kd_sim) at every γ"
    if not data.has("kd_pt_sim", "kd_pt", "kd_sim"):
        return Claim("C7", statement, NOT_RUN, ["needs kd_pt_sim, kd_pt and kd_sim"])
    parts = [data.check(at_least, "kd_pt_sim", other, gamma, "≥")
             for gamma in data.conditions for other in ("kd_pt", "kd_sim")]
    return Claim("C7", statement, combine([v for v, _ in parts]), [e for _, e in parts])


GENERAL_CLAIMS = (claim_c1, claim_c2, claim_c3, claim_c4, claim_c8)  # every track
SYNTHETIC_CLAIMS = (claim_c5, claim_c6, claim_c7)  # need the class-correlation sweep


def claim_c10(analyses: Sequence[dict[str, Any]], z: float) -> Claim:
    """Per condition, the seeds' Spearman correlations of kd's w_t with the teacher's p_t."""
    statement = "w_t rises with the teacher's confidence p_t: Spearman(w_t, p_t) > 0 for kd"
    parts = []
    for analysis in analyses:
        where = describe(analysis["meta"]["condition"])
        values = [row["spearman"] for row in analysis["rescaling"]
                  if row["method"] == "kd" and math.isfinite(row["spearman"])]
        if not values:
            parts.append((NOT_RUN, f"{where}: no kd student with a defined Spearman correlation"))
            continue
        interval = Interval.of(values, z)
        verdict = greater(interval, 0.0)
        parts.append((verdict, f"{where}: Spearman(w_t, p_t) of kd = {interval.text('')} → {verdict}"))
    return Claim("C10", statement, combine([v for v, _ in parts]), [e for _, e in parts])


def claim_c11(analyses: Sequence[dict[str, Any]], z: float) -> Claim:
    """Per condition, paired per seed: kd's correlation with the teacher's class similarities
    minus ce's and minus ls's."""
    statement = ("kd students' class-similarity matrices correlate with the teacher's more than "
                 "ce and ls students' do")
    parts = []
    for analysis in analyses:
        where = describe(analysis["meta"]["condition"])
        table = pd.DataFrame(analysis["geometry"]).pivot_table(index="seed", columns="method",
                                                               values="correlation")
        for other in ("ce", "ls"):
            if not {"kd", other} <= set(table.columns):
                parts.append((NOT_RUN, f"{where}: needs kd and {other} students"))
                continue
            interval = Interval.of((table["kd"] - table[other]).dropna().to_numpy(), z)
            verdict = greater(interval, 0.0)
            parts.append((verdict, f"{where}: correlation of kd − {other} = {interval.text('')} → "
                                   f"{verdict}"))
    return Claim("C11", statement, combine([v for v, _ in parts]), [e for _, e in parts])


def claim_c9(diagnoses: Sequence[dict[str, Any]], z: float, margin: float) -> Claim:
    """Per condition of the teachers' diagnoses (`partialkd.diagnose`), each label-smoothed
    teacher against each plain (ce) teacher of the same architecture: their kd students'
    per-seed test accuracy, plain − LS, in points."""
    statement = ("a teacher trained with label smoothing distils worse than a plain one of the "
                 "same architecture: kd students' accuracy, plain − LS > 0")
    parts, skipped = [], []
    for diagnosis in diagnoses:
        where = describe(diagnosis["meta"]["condition"])
        teachers = diagnosis["teachers"]
        pairs = [(plain, smoothed) for smoothed in teachers if smoothed["method"] == "ls"
                 for plain in teachers
                 if plain["method"] == "ce" and plain["architecture"] == smoothed["architecture"]]
        if not pairs:
            skipped.append(f"{where}: no label-smoothed teacher with a plain one of its architecture")
        parts += [_c9_part(where, plain, smoothed, _kd_points(diagnosis), z, margin)
                  for plain, smoothed in pairs]
    verdict = combine([v for v, _ in parts])
    return Claim("C9", statement, verdict, [e for _, e in parts] + skipped or ["no teacher diagnoses"])


def _kd_points(diagnosis: dict[str, Any]) -> pd.DataFrame:
    """The diagnosis's kd students' test accuracy in points, rows seed, columns teacher."""
    rows = [row for row in diagnosis["students"] if row["method"] == "kd"]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index="seed", columns="teacher", values="test_acc") * 100


def _c9_part(where: str, plain: dict[str, Any], smoothed: dict[str, Any], points: pd.DataFrame,
             z: float, margin: float) -> tuple[str, str]:
    a, b = plain["name"], smoothed["name"]
    if not {a, b} <= set(points.columns):
        return NOT_RUN, f"{where}: needs the kd students of both {a} and {b}"
    differences = (points[a] - points[b]).dropna().to_numpy()
    if len(differences) == 0:
        return NOT_RUN, f"{where}: no seed has kd students of both {a} and {b}"
    interval = Interval.of(differences, z)
    verdict = greater(interval, margin)
    return verdict, (f"{where}: kd students of {a} − of {b} ({plain['architecture']}) = "
                     f"{interval.text()} → {verdict}; teachers' mean p_t {plain['p_t_mean']:.3f} vs "
                     f"{smoothed['p_t_mean']:.3f}, mean entropy {plain['entropy']:.2f} vs "
                     f"{smoothed['entropy']:.2f} nats")


def claim_c12(diagnoses: Sequence[dict[str, Any]], z: float) -> Claim:
    """Per condition, each consecutive pair of plain (ce) teachers by size: the per-example
    p_t(larger) − p_t(smaller) on the validation split, mean ± z·SE (SE over examples)."""
    statement = ("a larger (plain) teacher's p_t distribution is more concentrated near 1: "
                 "per-example p_t, larger − smaller teacher, > 0 for every size step")
    parts, skipped = [], []
    for diagnosis in diagnoses:
        where = describe(diagnosis["meta"]["condition"])
        teachers = {row["name"]: row for row in diagnosis["teachers"]}
        if not diagnosis["size_pairs"]:
            skipped.append(f"{where}: fewer than two plain teachers of different sizes")
        for pair in diagnosis["size_pairs"]:
            interval = Interval.of_mean(pair["mean"], pair["se"], pair["n"], z)
            verdict = greater(interval, 0.0)
            parts.append((verdict, f"{where}: {_confidence(teachers[pair['larger']])} − "
                                   f"{_confidence(teachers[pair['smaller']])}: p_t difference "
                                   f"{interval.mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] "
                                   f"(SE {pair['se']:.4f}, n = {pair['n']} examples) → {verdict}"))
    verdict = combine([v for v, _ in parts])
    return Claim("C12", statement, verdict, [e for _, e in parts] + skipped or ["no teacher diagnoses"])


def _confidence(teacher: dict[str, Any]) -> str:
    return (f"{teacher['name']} ({teacher['parameters']:,} parameters; mean p_t "
            f"{teacher['p_t_mean']:.3f}, {teacher['p_t_ge_0.9']:.0%} of p_t ≥ 0.9)")


def evaluate(data: Comparisons, synthetic: bool, analyses: Sequence[dict[str, Any]] = (),
             diagnoses: Sequence[dict[str, Any]] = ()) -> list[Claim]:
    """The claims that apply to the track, in the order of their ids; C10 and C11 when the
    analyses of the students (`partialkd.analyse`) are given, C9 and C12 when the teachers'
    diagnoses (`partialkd.diagnose`) are."""
    claims = [claim(data) for claim in GENERAL_CLAIMS + (SYNTHETIC_CLAIMS if synthetic else ())]
    if analyses:
        claims += [claim_c10(analyses, data.z), claim_c11(analyses, data.z)]
    if diagnoses:
        claims += [claim_c9(diagnoses, data.z, data.margin), claim_c12(diagnoses, data.z)]
    return sorted(claims, key=lambda claim: int(claim.id[1:]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", required=True)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--teacher", help="synthetic track: the teacher whose students are compared")
    scope.add_argument("--pair", nargs=2, action="append", metavar=("TEACHER", "STUDENT"),
                       help="image tracks: a teacher and student architecture to compare on (repeatable)")
    parser.add_argument("--analyses", nargs="*", default=[],
                        help="analysis JSON files of partialkd.analyse (for C10 and C11)")
    parser.add_argument("--diagnoses", nargs="*", default=[],
                        help="diagnosis JSON files of partialkd.diagnose (for C9 and C12)")
    parser.add_argument("--z", type=float, required=True)
    parser.add_argument("--margin", type=float, required=True,
                        help="equivalence margin, in points (or the unit of --metric)")
    parser.add_argument("--metric", choices=sorted(SCORES), default="acc",
                        help="the test score compared (acc: accuracy in points; ppl: perplexity, "
                             "lower is better)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    summary = pd.read_csv(args.summary)
    score = SCORES[args.metric]
    if args.teacher:
        data = Comparisons.synthetic(summary, args.teacher, args.z, args.margin, score)
        scope_text = f"the students of the `{args.teacher}` teacher, per class correlation γ"
    else:
        data = Comparisons.pairs(summary, [tuple(pair) for pair in args.pair], args.z, args.margin, score)
        scope_text = "per teacher→student pair: " + ", ".join(f"{t}→{s}" for t, s in args.pair)
    analyses = [json.loads(Path(path).read_text()) for path in args.analyses]
    diagnoses = [json.loads(Path(path).read_text()) for path in args.diagnoses]
    claims = evaluate(data, synthetic=bool(args.teacher), analyses=analyses, diagnoses=diagnoses)
    save_json({"scope": scope_text, "z": args.z, "margin": args.margin, "metric": args.metric,
               "claims": [asdict(claim) for claim in claims]}, args.out)


if __name__ == "__main__":
    main()
