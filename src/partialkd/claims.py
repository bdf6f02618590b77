"""The paper's claims checked on results (NOTES §6), each with its effect size and seed spread.

One statistical procedure for every claim, stated once in the report (`procedure_text`):
- **Parts.** A claim is a family of parts: one paired comparison per condition (each γ of the
  synthetic track, each teacher→student pair of a real-data track) and per comparison the claim
  makes. A part's evidence is the per-seed differences (a − b of test accuracy in points, of the
  best-on-validation checkpoint; with `--metric ppl` of test perplexity, signed so that a
  positive difference favours a), or per-seed statistics (C6's slope, C10's and C11's
  correlations).
- **Unit.** Where a track has replicates above the student seed (synthetic worlds, each with its
  own data and teacher; teacher seeds of a track that trains several teachers of each kind), the
  students of one replicate share its world or teacher: a part's per-seed values are averaged
  within each replicate and the n of the interval counts replicates. With one replicate the
  unit is the student seed, and the verdict is about that world or teacher.
- **Interval.** Student t with n − 1 degrees of freedom around the mean difference, two-sided at
  level 1 − α/m for a claim of m parts (Bonferroni over the parts; `--correction none`: 1 − α),
  α = 1 − `--confidence`.
- **Rules**, monotone in the evidence (a narrower interval can only move a verdict from
  inconclusive to holds or fails), with the equivalence margin δ in the metric's unit:
  `>` holds if low > 0, fails if high < 0; `≥` (at least, within the margin) holds if
  low > −δ, fails if high < −δ; `≈` holds if −δ < low and high < δ, fails if low > δ or
  high < −δ; otherwise inconclusive.
- **Claim.** Holds when every part holds, fails when any part fails, otherwise inconclusive;
  "not run" when a part's methods or conditions are missing from the results. A claim is thus
  called holds while false, or fails while true, with probability at most α/2.
`python -m partialkd.claims --summary summary.csv (--teacher T | --pair T S ...) [--analyses J ...]
[--diagnoses J ...] [--metric acc|ppl] --confidence C --correction bonferroni|none --margin M
--out claims.json`: C10 and C11 need the students' analyses (`partialkd.analyse`), C9 and C12 the
teachers' diagnoses (`partialkd.diagnose`).
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from partialkd.common.io import save_json
from partialkd.reporting.summary import (ACCURACY, NO_TEACHER, REPLICATES, SCORES, Score, seed_columns,
                                         selected_students)

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
CORRECTIONS = ("bonferroni", "none")

# ------------------------------------------------------------------------------- statistics


def t_bounds(mean: Any, std: Any, n: Any, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided Student-t interval (n − 1 degrees of freedom) of means with sample standard
    deviations `std` over `n` values, at level `confidence`; elementwise on arrays. One value
    (n = 1) gives (−∞, +∞)."""
    mean, std, n = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (mean, std, n)))
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    half = np.where(n > 1, half, np.inf)
    return mean - half, mean + half


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval at `confidence`, in the unit of its part."""
    mean: float
    std: float
    n: int
    low: float
    high: float
    confidence: float

    def text(self, unit: str = " pts", digits: int = 2, spread: str = "seed sd") -> str:
        f = f"+.{digits}f"
        return (f"{self.mean:{f}}{unit} [{self.low:{f}}, {self.high:{f}}] "
                f"({spread} {self.std:.{digits}f}, n = {self.n})")


@dataclass(frozen=True)
class Sample:
    """Paired differences (or per-seed statistics) by their mean, sample sd (ddof 1) and count."""
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Sample:
        values = np.asarray(values, dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else math.inf
        return cls(float(values.mean()), std, len(values))

    @classmethod
    def of_mean(cls, mean: float, se: float, n: int) -> Sample:
        """A mean known by its standard error (std = SE·√n)."""
        return cls(mean, se * math.sqrt(n), n)

    def interval(self, confidence: float) -> Interval:
        low, high = t_bounds(self.mean, self.std, self.n, confidence)
        return Interval(self.mean, self.std, self.n, float(low), float(high), confidence)


REPLICATE, SEED = "replicate", "seed"  # the index levels of per-seed values


def replicate_column(rows: pd.DataFrame) -> str | None:
    """The replicate column the rows fill (None: a track with one world and one teacher each)."""
    return next(iter(seed_columns(rows)[:-1]), None)  # the filled replicate columns, then "seed"


def with_replicate(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with a `replicate` column: their world or teacher seed, or 0 where there is none."""
    column = replicate_column(rows)
    return rows.assign(**{REPLICATE: rows[column].astype(int) if column else 0})


def pooled(values: pd.Series, unit: str) -> tuple[Sample, str]:
    """Per-seed values indexed by (replicate, seed) as the sample of the claims' unit, with the
    name of its spread: the replicates' means when there are several (`unit`: what a replicate
    is), else the seeds themselves."""
    values = values.dropna()
    if values.index.get_level_values(REPLICATE).nunique() > 1:
        return Sample.of(values.groupby(level=REPLICATE).mean().to_numpy()), f"{unit} sd"
    return Sample.of(values.to_numpy()), "seed sd"


@dataclass(frozen=True)
class Rule:
    """A decision rule on an interval [low, high] with equivalence margin m (elementwise on
    arrays): `holds` and `fails` are disjoint regions; anything else is inconclusive."""
    symbol: str
    text: str
    holds: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    fails: Callable[[np.ndarray, np.ndarray, float], np.ndarray]

    def decide(self, low: Any, high: Any, margin: float) -> np.ndarray:
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        return np.where(self.holds(low, high, margin), HOLDS,
                        np.where(self.fails(low, high, margin), FAILS, INCONCLUSIVE))

    def __call__(self, interval: Interval, margin: float) -> str:
        return str(self.decide(interval.low, interval.high, margin))


GREATER = Rule(">", "holds if low > 0, fails if high < 0",
               lambda low, high, m: low > 0, lambda low, high, m: high < 0)
AT_LEAST = Rule("≥", "(at least, within the margin) holds if low > −δ, fails if high < −δ",
                lambda low, high, m: low > -m, lambda low, high, m: high < -m)
APPROXIMATELY = Rule("≈", "(equal within the margin) holds if −δ < low and high < δ, fails "
                          "if low > δ or high < −δ",
                     lambda low, high, m: (low > -m) & (high < m),
                     lambda low, high, m: (low > m) | (high < -m))
RULES = (GREATER, AT_LEAST, APPROXIMATELY)
MARGIN_RULES = (AT_LEAST, APPROXIMATELY)  # the rules whose regions the margin δ moves


def combine(verdicts: Sequence[str]) -> str:
    """All parts must hold; one failing part fails the claim; a part not run leaves it not run."""
    if NOT_RUN in verdicts or not verdicts:
        return NOT_RUN
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else INCONCLUSIVE


@dataclass(frozen=True)
class Inference:
    """How every part is judged: the family confidence 1 − α, the correction over a claim's m
    parts, and the equivalence margin (in the metric's unit)."""
    confidence: float
    correction: str
    margin: float

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence: expected a level in (0, 1), got {self.confidence}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction: expected one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"margin: expected a finite value ≥ 0, got {self.margin}")

    def level(self, parts: int) -> float:
        """Each part's interval level: 1 − α/m under Bonferroni."""
        alpha = 1 - self.confidence
        return 1 - alpha / parts if self.correction == "bonferroni" and parts > 1 else self.confidence


# ----------------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Part:
    """One comparison of a claim: `sample` is None when it could not be run (`label` says why)."""
    where: str
    label: str
    sample: Sample | None
    rule: Rule
    phrase: str = ""     # what the rule asserts, e.g. "kd > ls" (default: the rule's symbol)
    unit: str = " pts"
    digits: int = 2
    spread: str = "seed sd"
    detail: str = ""     # context after the verdict, e.g. the teachers' confidence
    caveats: tuple[str, ...] = ()  # what the verdict rests on that undermines it (a near-uniform sim target)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    verdict: str
    evidence: list[str]
    parts: list[str] = field(default_factory=list)  # each part's verdict, in evidence order
    level: float | None = None                      # each part's interval level
    caveats: list[str] = field(default_factory=list)  # shown next to the verdict
    estimates: list[dict[str, Any]] = field(default_factory=list)  # each part's interval, for figures


def judge(claim_id: str, statement: str, parts: Sequence[Part], inference: Inference,
          notes: Sequence[str] = ()) -> Claim:
    """The claim's verdict from its parts' intervals at the corrected level; `notes` are context
    lines (e.g. conditions without the needed teachers) listed after the parts."""
    if not parts or any(part.sample is None for part in parts):
        lines = [f"{p.where}: {p.label}" for p in parts if p.sample is None]
        return Claim(claim_id, statement, NOT_RUN, lines + list(notes) or ["no results to compare"])
    level = inference.level(len(parts))
    lines, verdicts, estimates = [], [], []
    for part in parts:
        interval = part.sample.interval(level)
        verdict = part.rule(interval, inference.margin)
        estimates.append({"where": part.where, "label": part.label, "rule": part.rule.symbol,
                          "verdict": verdict, "mean": interval.mean, "low": interval.low,
                          "high": interval.high, "n": interval.n, "unit": part.unit.strip(),
                          "margin": inference.margin if part.rule in MARGIN_RULES else 0.0})
        detail = "".join(f"; {text}" for text in (part.detail, *(f"caveat: {c}" for c in part.caveats))
                         if text)
        lines.append(f"{part.where}: {part.label} = {interval.text(part.unit, part.digits, part.spread)} "
                     f"→ {part.phrase or part.rule.symbol} {verdict}{detail}")
        verdicts.append(verdict)
    caveats = list(dict.fromkeys(f"{part.where}: {caveat}" for part in parts for caveat in part.caveats))
    return Claim(claim_id, statement, combine(verdicts), lines + list(notes), verdicts, level, caveats,
                 estimates)


@dataclass(frozen=True)
class Comparisons:
    """Per-seed test scores of the selected students as shown (accuracy in points, or the
    track's `score`): rows (condition, replicate, seed), columns methods. A condition is a class
    correlation γ (synthetic) or a teacher→student pair; `unit` names the replicates (a world,
    a teacher seed; "seed" where there is one replicate)."""
    table: pd.DataFrame
    inference: Inference
    score: Score = ACCURACY
    entropy: pd.DataFrame = field(default_factory=pd.DataFrame)  # sim_entropy, like `table`
    uniform_entropy: float = 1.0  # a sim target this close to uniform is flagged
    unit: str = SEED

    @classmethod
    def synthetic(cls, summary: pd.DataFrame, teacher: str, inference: Inference,
                  score: Score = ACCURACY, uniform_entropy: float = 1.0, student: str | None = None
                  ) -> Comparisons:
        """One teacher's students (of one architecture, where given), one condition per γ."""
        students = selected_students(summary)
        keep = students["teacher"] == teacher
        if student is not None:
            keep &= students["student"] == student
        students = with_replicate(students[keep])
        tables = [_by_seed(students, column, ["gamma", REPLICATE, SEED])
                  for column in (score.column(), SIM_ENTROPY)]
        tables = [t.rename_axis(index=["condition", REPLICATE, SEED]) if len(t) else t for t in tables]
        return cls(score.points(tables[0]), inference, score, tables[1], uniform_entropy,
                   REPLICATES.get(replicate_column(students), SEED))

    @classmethod
    def pairs(cls, summary: pd.DataFrame, pairs: Sequence[tuple[str, str]], inference: Inference,
              score: Score = ACCURACY, uniform_entropy: float = 1.0) -> Comparisons:
        """One condition per (teacher, student architecture): the teacher's students with the
        teacher-free students (ce, ls) of the same architecture, replicate and seed."""
        students = with_replicate(selected_students(summary))
        frames: dict[str, dict[str, pd.DataFrame]] = {score.column(): {}, SIM_ENTROPY: {}}
        for teacher, student in pairs:
            rows = students[(students["student"] == student)
                            & students["teacher"].isin([teacher, NO_TEACHER])]
            for column, by_pair in frames.items():
                by_pair[f"{teacher}→{student}"] = _by_seed(rows, column, [REPLICATE, SEED])
        table, entropy = (pd.concat(by_pair, names=["condition", REPLICATE, SEED])
                          if any(len(frame) for frame in by_pair.values()) else pd.DataFrame()
                          for by_pair in frames.values())
        return cls(score.points(table), inference, score, entropy, uniform_entropy,
                   REPLICATES.get(replicate_column(students), SEED))

    def has(self, *methods: str) -> bool:
        return all(method in self.table.columns for method in methods)

    @property
    def conditions(self) -> list:
        return sorted(self.table.index.get_level_values("condition").unique()) if len(self.table) else []

    def difference(self, a: str, b: str, condition: Any) -> pd.Series:
        """Per-seed improvement of a over b under `condition` (a − b, or b − a for a score where
        lower is better), over the seeds where both were run, indexed by (replicate, seed)."""
        rows = self.table.xs(condition, level="condition")
        sign = -1.0 if self.score.lower_is_better else 1.0
        return (sign * (rows[a] - rows[b])).dropna()

    def part(self, rule: Rule, a: str, b: str, condition: Any) -> Part:
        """The part `a rule b` under `condition`."""
        where = describe(condition)
        differences = self.difference(a, b, condition)
        if len(differences) == 0:
            return Part(where, f"no seed has both {a} and {b}", None, rule)
        first, second = (b, a) if self.score.lower_is_better else (a, b)
        sample, spread = pooled(differences, self.unit)
        return Part(where, f"{first} − {second}", sample, rule, f"{a} {rule.symbol} {b}", self.score.unit,
                    spread=spread, caveats=self.uniform_sim_targets([a, b], condition))

    def uniform_sim_targets(self, methods: Sequence[str], condition: Any) -> tuple[str, ...]:
        """A caveat per similarity target among `methods` that is nearly uniform under
        `condition` (mean normalised entropy of its chosen rows ≥ `uniform_entropy`): it carries
        no class relations, and kd_pt_sim is kd_pt, kd_sim is ls in all but name."""
        if self.entropy.empty or condition not in self.entropy.index.get_level_values("condition"):
            return ()
        rows = self.entropy.xs(condition, level="condition")
        return tuple(f"{method}'s chosen similarity rows have normalised entropy "
                     f"{rows[method].mean():.3f} (1 = uniform)"
                     for method in methods if method in rows and rows[method].mean() >= self.uniform_entropy)


SIM_ENTROPY = "sim_entropy"  # the summary's column (aggregate), NaN for methods without a sim target


def _by_seed(rows: pd.DataFrame, column: str, index: str | list[str]) -> pd.DataFrame:
    """`column` of the selected student rows, rows `index`, columns method (empty when the summary
    has no such column, e.g. one written before sim_entropy was recorded)."""
    if column not in rows:
        return pd.DataFrame()
    return rows.pivot_table(index=index, columns="method", values=column)


def describe(condition: Any) -> str:
    return f"γ = {condition:g}" if isinstance(condition, (int, float)) else str(condition)


def _pairwise_claim(claim_id: str, statement: str, rule: Rule, a: str, b: str
                    ) -> Callable[[Comparisons], Claim]:
    """A claim that `a rule b` under every condition of the results."""
    def claim(data: Comparisons) -> Claim:
        if not data.has(a, b):
            return Claim(claim_id, statement, NOT_RUN, [f"needs {a} and {b}"])
        parts = [data.part(rule, a, b, condition) for condition in data.conditions]
        return judge(claim_id, statement, parts, data.inference)
    return claim


claim_c1 = _pairwise_claim("C1", "kd > ls", GREATER, "kd", "ls")
claim_c2 = _pairwise_claim("C2", "kd_pt > ls", GREATER, "kd_pt", "ls")
claim_c3 = _pairwise_claim("C3", "kd_sim > ls", GREATER, "kd_sim", "ls")
claim_c4 = _pairwise_claim("C4", "kd_pt_sim ≈ kd (within the margin) or better", AT_LEAST,
                           "kd_pt_sim", "kd")
claim_c8 = _pairwise_claim("C8", "kd_topk at its validation-selected k ≥ kd", AT_LEAST,
                           "kd_topk", "kd")


def claim_c5(data: Comparisons) -> Claim:
    statement = "synthetic, uncorrelated classes (γ = 0): kd_pt ≥ kd_sim and kd_pt ≈ kd"
    if not data.has("kd_pt", "kd_sim", "kd") or 0.0 not in data.conditions:
        return Claim("C5", statement, NOT_RUN, ["needs kd_pt, kd_sim, kd and γ = 0"])
    parts = [data.part(AT_LEAST, "kd_pt", "kd_sim", 0.0), data.part(APPROXIMATELY, "kd_pt", "kd", 0.0)]
    return judge("C5", statement, parts, data.inference)


def claim_c6(data: Comparisons) -> Claim:
    statement = "synthetic: the gain of kd_sim over ls grows with class correlation γ"
    if not data.has("kd_sim", "ls") or len(data.conditions) < 2:
        return Claim("C6", statement, NOT_RUN, ["needs kd_sim, ls and at least two values of γ"])
    gain = (data.table["kd_sim"] - data.table["ls"]).unstack("condition").dropna()
    if gain.empty or gain.shape[1] < 2:
        return Claim("C6", statement, NOT_RUN, ["no seed has kd_sim and ls at two or more values of γ"])
    gammas = np.asarray(gain.columns, dtype=float)
    slopes = pd.Series(np.polyfit(gammas, gain.to_numpy().T, 1)[0], index=gain.index)
    means = ", ".join(f"γ = {g:g}: {gain[g].mean():+.2f}" for g in gain.columns)
    sample, spread = pooled(slopes, data.unit)
    part = Part("every γ", "per-seed slope of the gain kd_sim − ls against γ", sample, GREATER,
                "slope > 0", unit=" pts per unit γ", spread=spread)
    return judge("C6", statement, [part], data.inference,
                 [f"mean gain kd_sim − ls per γ (pts): {means}"])


def claim_c7(data: Comparisons) -> Claim:
    statement = "synthetic: kd_pt_sim ≥ max(kd_pt, kd_sim) at every γ"
    if not data.has("kd_pt_sim", "kd_pt", "kd_sim"):
        return Claim("C7", statement, NOT_RUN, ["needs kd_pt_sim, kd_pt and kd_sim"])
    parts = [data.part(AT_LEAST, "kd_pt_sim", other, gamma)
             for gamma in data.conditions for other in ("kd_pt", "kd_sim")]
    return judge("C7", statement, parts, data.inference)


GENERAL_CLAIMS = (claim_c1, claim_c2, claim_c3, claim_c4, claim_c8)  # every track
SYNTHETIC_CLAIMS = (claim_c5, claim_c6, claim_c7)  # need the class-correlation sweep


C10_REFERENCE = "ce"  # the fixed student whose q the teachers' w_t are computed at (NOTES §2)
C10_CONTEXT = {"init": "the q of the student at initialisation", "self": "the kd student's own q"}


def by_condition(documents: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Analyses or diagnoses grouped by the condition they describe (one per replicate), in order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        groups.setdefault(describe(document["meta"]["condition"]), []).append(document)
    return groups


def _unit(group: Sequence[dict[str, Any]]) -> str:
    return group[0]["meta"].get("unit", SEED)


def _per_seed(values: dict[tuple[int, int], float]) -> pd.Series:
    """{(replicate, seed): value} as a Series indexed like `pooled` takes it."""
    index = pd.MultiIndex.from_tuples(list(values), names=[REPLICATE, SEED])
    return pd.Series(list(values.values()), index=index, dtype=float)


def claim_c10(analyses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition, the seeds' Spearman correlations of w_t with the teacher's p_t, where w_t
    is the kd target's rescaling evaluated at a fixed student: the ce student of the same seed
    (the mechanism: one student, teachers of different confidence). Shown beside it, as
    context: w_t at the student at initialisation (whose q_t hardly varies across examples) and
    at the kd student's own q (which depends on how the student ended up matching the teacher)."""
    statement = ("w_t rises with the teacher's confidence p_t: Spearman(w_t, p_t) > 0, w_t of the "
                 "kd target at a fixed student (the ce student of the same seed)")
    parts, notes = [], []
    for where, group in by_condition(analyses).items():
        parts.append(_c10_part(where, _spearmans(group, C10_REFERENCE), _unit(group)))
        for q_from, student in C10_CONTEXT.items():  # shown beside, not judged
            if len(values := _spearmans(group, q_from)):
                notes.append(f"{where}: context, w_t at {student}: Spearman mean "
                             f"{values.mean():+.3f} over {len(values)} student{'s' if len(values) != 1 else ''}")
    return judge("C10", statement, parts, inference, notes)


def _spearmans(group: Sequence[dict[str, Any]], q_from: str) -> pd.Series:
    """The finite Spearman correlations of the kd rows whose w_t uses the q of `q_from`, by
    (replicate, seed) (an analysis without `q_from` has only the students' own rows)."""
    return _per_seed({(analysis["meta"].get(REPLICATE, 0), row["seed"]): row["spearman"]
                      for analysis in group for row in analysis["rescaling"]
                      if row["method"] == "kd" and row.get("q_from", "self") == q_from
                      and math.isfinite(row["spearman"])})


def _c10_part(where: str, values: pd.Series, unit: str) -> Part:
    if not len(values):
        return Part(where, f"no kd rows at the {C10_REFERENCE} student's q with a defined Spearman "
                           "correlation (re-run the analysis)", None, GREATER)
    sample, spread = pooled(values, unit)
    return Part(where, f"Spearman(w_t of kd at the {C10_REFERENCE} student's q, p_t)", sample,
                GREATER, "> 0", unit="", digits=3, spread=spread)


def claim_c11(analyses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition, paired per seed: kd's correlation with the teacher's class similarities
    minus ce's and minus ls's."""
    statement = ("kd students' class-similarity matrices correlate with the teacher's more than "
                 "ce and ls students' do")
    parts = []
    for where, group in by_condition(analyses).items():
        rows = pd.DataFrame([{**row, REPLICATE: analysis["meta"].get(REPLICATE, 0)}
                             for analysis in group for row in analysis["geometry"]])
        table = (rows.pivot_table(index=[REPLICATE, SEED], columns="method", values="correlation")
                 if len(rows) else pd.DataFrame())
        for other in ("ce", "ls"):
            if not {"kd", other} <= set(table.columns):
                parts.append(Part(where, f"needs kd and {other} students", None, GREATER))
                continue
            sample, spread = pooled(table["kd"] - table[other], _unit(group))
            parts.append(Part(where, f"correlation of kd − {other}", sample, GREATER, f"kd > {other}",
                              unit="", digits=3, spread=spread))
    return judge("C11", statement, parts, inference)


def claim_c9(diagnoses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition of the teachers' diagnoses (`partialkd.diagnose`), each label-smoothed
    teacher against each plain (ce) teacher of the same architecture: their kd students'
    per-seed test accuracy, plain − LS, in points; with several teacher seeds (replicates) the
    unit is the teacher seed, whose plain and LS teachers share their seed."""
    statement = ("a teacher trained with label smoothing distils worse than a plain one of the "
                 "same architecture: kd students' accuracy, plain − LS > 0")
    parts, skipped = [], []
    for where, group in by_condition(diagnoses).items():
        teachers = group[0]["teachers"]
        pairs = [(plain, smoothed) for smoothed in teachers if smoothed["method"] == "ls"
                 for plain in teachers
                 if plain["method"] == "ce" and plain["architecture"] == smoothed["architecture"]]
        if not pairs:
            skipped.append(f"{where}: no label-smoothed teacher with a plain one of its architecture")
        points = _kd_points(group)
        parts += [_c9_part(where, plain, smoothed, points, group) for plain, smoothed in pairs]
    if not parts:
        return Claim("C9", statement, NOT_RUN, skipped or ["no teacher diagnoses"])
    return judge("C9", statement, parts, inference, skipped)


def _kd_points(group: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The diagnoses' kd students' test accuracy in points, rows (replicate, seed), columns teacher."""
    rows = [{**row, REPLICATE: diagnosis["meta"].get(REPLICATE, 0)}
            for diagnosis in group for row in diagnosis["students"] if row["method"] == "kd"]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index=[REPLICATE, SEED], columns="teacher", values="test_acc") * 100


def _teacher_mean(group: Sequence[dict[str, Any]], name: str, key: str) -> float:
    """A teacher's statistic averaged over the replicates' diagnoses."""
    return float(np.mean([row[key] for diagnosis in group for row in diagnosis["teachers"]
                          if row["name"] == name]))


def _c9_part(where: str, plain: dict[str, Any], smoothed: dict[str, Any], points: pd.DataFrame,
             group: Sequence[dict[str, Any]]) -> Part:
    a, b = plain["name"], smoothed["name"]
    if not {a, b} <= set(points.columns):
        return Part(where, f"needs the kd students of both {a} and {b}", None, GREATER)
    differences = (points[a] - points[b]).dropna()
    if len(differences) == 0:
        return Part(where, f"no seed has kd students of both {a} and {b}", None, GREATER)
    sample, spread = pooled(differences, _unit(group))
    mean = {key: [_teacher_mean(group, name, key) for name in (a, b)] for key in ("p_t_mean", "entropy")}
    return Part(where, f"kd students of {a} − of {b} ({plain['architecture']})", sample, GREATER,
                f"{a} > {b}", spread=spread,
                detail=(f"teachers' mean p_t {mean['p_t_mean'][0]:.3f} vs {mean['p_t_mean'][1]:.3f}, "
                        f"mean entropy {mean['entropy'][0]:.2f} vs {mean['entropy'][1]:.2f} nats"))


def claim_c12(diagnoses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition, each consecutive pair of plain (ce) teachers by size: the mean p_t of the
    larger minus that of the smaller on the validation split, per teacher seed (replicate) when
    the track trains several; with one teacher of each size, the per-example difference (its
    mean and standard error over examples: a statement about those two networks)."""
    statement = ("a larger (plain) teacher's p_t distribution is more concentrated near 1: "
                 "mean p_t, larger − smaller teacher, > 0 for every size step")
    parts, skipped = [], []
    for where, group in by_condition(diagnoses).items():
        if not group[0]["size_pairs"]:
            skipped.append(f"{where}: fewer than two plain teachers of different sizes")
        for index, pair in enumerate(group[0]["size_pairs"]):
            parts.append(_c12_part(where, [diagnosis["size_pairs"][index] for diagnosis in group], group))
    if not parts:
        return Claim("C12", statement, NOT_RUN, skipped or ["no teacher diagnoses"])
    return judge("C12", statement, parts, inference, skipped)


def _c12_part(where: str, pairs: Sequence[dict[str, Any]], group: Sequence[dict[str, Any]]) -> Part:
    """One size step over the replicates' diagnoses (`pairs`: the step in each)."""
    teachers = {row["name"]: row for row in group[0]["teachers"]}
    larger, smaller = teachers[pairs[0]["larger"]], teachers[pairs[0]["smaller"]]
    epochs = _training_lengths(larger.get("epochs"), smaller.get("epochs"))
    if len(pairs) > 1:
        sample, spread, how = Sample.of([pair["mean"] for pair in pairs]), f"{_unit(group)} sd", \
            f"mean p_t difference per {_unit(group)}"
    else:
        sample, spread, how = Sample.of_mean(pairs[0]["mean"], pairs[0]["se"], pairs[0]["n"]), \
            "example sd", "per-example p_t difference (one network per size: about these two networks)"
    return Part(where, f"{_confidence(larger, group)} − {_confidence(smaller, group)}: {how}", sample,
                GREATER, "> 0", unit="", digits=4, spread=spread, detail=epochs)


def _training_lengths(larger: int | None, smaller: int | None) -> str:
    """The size step's training lengths in words ('' where a teacher's is unknown)."""
    if larger is None or smaller is None:
        return ""
    if larger == smaller:
        return f"both trained {larger} epochs"
    return f"trained {larger} vs {smaller} epochs: the step confounds size with training length"


def _confidence(teacher: dict[str, Any], group: Sequence[dict[str, Any]]) -> str:
    """A teacher with its size and confidence, averaged over the replicates' diagnoses."""
    name = teacher["name"]
    return (f"{name} ({teacher['parameters']:,} parameters; mean p_t "
            f"{_teacher_mean(group, name, 'p_t_mean'):.3f}, "
            f"{_teacher_mean(group, name, 'p_t_ge_0.9'):.0%} of p_t ≥ 0.9)")


def evaluate(data: Comparisons, synthetic: bool, analyses: Sequence[dict[str, Any]] = (),
             diagnoses: Sequence[dict[str, Any]] = ()) -> list[Claim]:
    """The claims that apply to the track, in the order of their ids; C10 and C11 when the
    analyses of the students (`partialkd.analyse`) are given, C9 and C12 when the teachers'
    diagnoses (`partialkd.diagnose`) are."""
    claims = [claim(data) for claim in GENERAL_CLAIMS + (SYNTHETIC_CLAIMS if synthetic else ())]
    if analyses:
        claims += [claim_c10(analyses, data.inference), claim_c11(analyses, data.inference)]
    if diagnoses:
        claims += [claim_c9(diagnoses, data.inference), claim_c12(diagnoses, data.inference)]
    return sorted(claims, key=lambda claim: int(claim.id[1:]))


def procedure_text(confidence: float, correction: str, margin: float, unit: str) -> str:
    """The statistical procedure in words, for the report (the module docstring, with numbers)."""
    alpha = 1 - confidence
    family = (f"two-sided at level 1 − α/m for a claim of m parts (Bonferroni), α = {alpha:g}"
              if correction == "bonferroni" else f"two-sided at level {confidence:g} (no correction)")
    rules = "; ".join(f"`{rule.symbol}` {rule.text}" for rule in RULES)
    return (f"Each part of a claim is a paired comparison per seed under one condition; where a "
            "track has replicates (synthetic worlds, each with its own data and teacher; teacher "
            "seeds), the seeds' values are averaged within each replicate and n counts replicates. Its "
            f"interval is Student t with n − 1 degrees of freedom, {family}. Rules, with the "
            f"equivalence margin δ = {margin:g}{unit}: {rules}; otherwise inconclusive. A claim "
            "holds when every part holds and fails when any part fails, so that (for normal "
            "differences) it is called holds while false, or fails while true, with probability "
            f"at most α/2 = {alpha / 2:.3g}.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.claims", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", required=True)
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--teacher", action="append",
                       help="synthetic track: the teacher whose students are compared; repeated, the "
                            "first teacher's claims lead and the others' are written beside them")
    parser.add_argument("--student", action="append",
                        help="synthetic track: the student architecture compared (default: every "
                             "student together); repeated, like --teacher, for every teacher")
    scope.add_argument("--pair", nargs=2, action="append", metavar=("TEACHER", "STUDENT"),
                       help="real-data tracks: a teacher and student architecture to compare on (repeatable)")
    parser.add_argument("--analyses", nargs="*", default=[],
                        help="analysis JSON files of partialkd.analyse (for C10 and C11)")
    parser.add_argument("--diagnoses", nargs="*", default=[],
                        help="diagnosis JSON files of partialkd.diagnose (for C9 and C12)")
    parser.add_argument("--confidence", type=float, required=True,
                        help="family confidence 1 − α of a claim's parts (e.g. 0.95)")
    parser.add_argument("--correction", choices=CORRECTIONS, required=True,
                        help="family-wise correction over a claim's parts")
    parser.add_argument("--margin", type=float, required=True,
                        help="equivalence margin, in points (or the unit of --metric)")
    parser.add_argument("--uniform-entropy", type=float, default=1.0,
                        help="flag a similarity target whose chosen rows have at least this mean "
                             "normalised entropy (1 = uniform)")
    parser.add_argument("--metric", choices=sorted(SCORES), default="acc",
                        help="the test score compared (acc: accuracy in points; ppl: perplexity, "
                             "lower is better)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        inference = Inference(args.confidence, args.correction, args.margin)
    except ValueError as error:
        parser.error(str(error))
    summary = pd.read_csv(args.summary)
    score = SCORES[args.metric]
    analyses = [json.loads(Path(path).read_text()) for path in args.analyses]
    diagnoses = [json.loads(Path(path).read_text()) for path in args.diagnoses]
    if args.teacher:
        (lead, *others) = [(teacher, student) for teacher in args.teacher for student in args.student or [None]]
        scope_text, claims = synthetic_claims(summary, *lead, inference, score, args.uniform_entropy,
                                              analyses, diagnoses)
        beside = [(teacher, student, *synthetic_claims(summary, teacher, student, inference, score,
                                                       args.uniform_entropy, analyses))
                  for teacher, student in others]
    else:
        data = Comparisons.pairs(summary, [tuple(pair) for pair in args.pair], inference, score,
                                 args.uniform_entropy)
        scope_text = "per teacher→student pair: " + ", ".join(f"{t}→{s}" for t, s in args.pair)
        claims, beside = evaluate(data, synthetic=False, analyses=analyses, diagnoses=diagnoses), []
    save_json({"scope": scope_text, "confidence": args.confidence, "correction": args.correction,
               "margin": args.margin, "uniform_entropy": args.uniform_entropy, "metric": args.metric,
               "procedure": procedure_text(args.confidence, args.correction, args.margin, score.unit),
               "claims": [asdict(claim) for claim in claims],
               "beside": [{"teacher": teacher, "student": student, "scope": text,
                           "claims": [asdict(claim) for claim in found]}
                          for teacher, student, text, found in beside]}, args.out)


def synthetic_claims(summary: pd.DataFrame, teacher: str, student: str | None, inference: Inference,
                     score: Score, uniform_entropy: float, analyses: Sequence[dict[str, Any]],
                     diagnoses: Sequence[dict[str, Any]] = ()) -> tuple[str, list[Claim]]:
    """The scope in words and the claims of one synthetic teacher's students (of one
    architecture, where given), with the analyses of those students (an analysis that names no
    teacher or student counts for every one)."""
    data = Comparisons.synthetic(summary, teacher, inference, score, uniform_entropy, student)
    own = [a for a in analyses if a["meta"].get("teacher_name") in (None, teacher)
           and (student is None or a["meta"].get("student") in (None, student))]
    students = f"`{student}` students" if student else "students"
    return (f"the {students} of the `{teacher}` teacher, per class correlation γ",
            evaluate(data, synthetic=True, analyses=own, diagnoses=diagnoses))


if __name__ == "__main__":
    main()
