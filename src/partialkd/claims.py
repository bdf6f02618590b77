"""The paper's claims checked on results (NOTES §6), each with its effect size and seed spread.

One statistical procedure for every claim, stated once in the report (`procedure_text`):
- **Parts.** A claim is a family of parts: one paired comparison per condition (each γ of the
  synthetic track, each teacher→student pair of an image track) and per comparison the claim
  makes. A part's evidence is the per-seed differences (a − b of test accuracy in points, of the
  best-on-validation checkpoint; with `--metric ppl` of test perplexity, signed so that a
  positive difference favours a), or per-seed statistics (C6's slope, C10's and C11's
  correlations).
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

from partialkd.aggregate import ACCURACY, NO_TEACHER, SCORES, Score, selected_students
from partialkd.io import save_json

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


def judge(claim_id: str, statement: str, parts: Sequence[Part], inference: Inference,
          notes: Sequence[str] = ()) -> Claim:
    """The claim's verdict from its parts' intervals at the corrected level; `notes` are context
    lines (e.g. conditions without the needed teachers) listed after the parts."""
    if not parts or any(part.sample is None for part in parts):
        lines = [f"{p.where}: {p.label}" for p in parts if p.sample is None]
        return Claim(claim_id, statement, NOT_RUN, lines + list(notes) or ["no results to compare"])
    level = inference.level(len(parts))
    lines, verdicts = [], []
    for part in parts:
        interval = part.sample.interval(level)
        verdict = part.rule(interval, inference.margin)
        detail = "".join(f"; {text}" for text in (part.detail, *(f"caveat: {c}" for c in part.caveats))
                         if text)
        lines.append(f"{part.where}: {part.label} = {interval.text(part.unit, part.digits, part.spread)} "
                     f"→ {part.phrase or part.rule.symbol} {verdict}{detail}")
        verdicts.append(verdict)
    caveats = list(dict.fromkeys(f"{part.where}: {caveat}" for part in parts for caveat in part.caveats))
    return Claim(claim_id, statement, combine(verdicts), lines + list(notes), verdicts, level, caveats)


@dataclass(frozen=True)
class Comparisons:
    """Per-seed test scores of the selected students as shown (accuracy in points, or the
    track's `score`): rows (condition, seed), columns methods. A condition is a class
    correlation γ (synthetic) or a teacher→student pair."""
    table: pd.DataFrame
    inference: Inference
    score: Score = ACCURACY
    entropy: pd.DataFrame = field(default_factory=pd.DataFrame)  # sim_entropy, like `table`
    uniform_entropy: float = 1.0  # a sim target this close to uniform is flagged

    @classmethod
    def synthetic(cls, summary: pd.DataFrame, teacher: str, inference: Inference,
                  score: Score = ACCURACY, uniform_entropy: float = 1.0) -> Comparisons:
        """One teacher's students, one condition per γ."""
        students = selected_students(summary)
        students = students[students["teacher"] == teacher]
        tables = [_by_seed(students, column, ["gamma", "seed"]) for column in (score.column(), SIM_ENTROPY)]
        tables = [t.rename_axis(index=["condition", "seed"]) if len(t) else t for t in tables]
        return cls(score.points(tables[0]), inference, score, tables[1], uniform_entropy)

    @classmethod
    def pairs(cls, summary: pd.DataFrame, pairs: Sequence[tuple[str, str]], inference: Inference,
              score: Score = ACCURACY, uniform_entropy: float = 1.0) -> Comparisons:
        """One condition per (teacher, student architecture): the teacher's students with the
        teacher-free students (ce, ls) of the same architecture and seed."""
        students = selected_students(summary)
        frames: dict[str, dict[str, pd.DataFrame]] = {score.column(): {}, SIM_ENTROPY: {}}
        for teacher, student in pairs:
            rows = students[(students["student"] == student)
                            & students["teacher"].isin([teacher, NO_TEACHER])]
            for column, by_pair in frames.items():
                by_pair[f"{teacher}→{student}"] = _by_seed(rows, column, "seed")
        table, entropy = (pd.concat(by_pair, names=["condition", "seed"]) if by_pair else pd.DataFrame()
                          for by_pair in frames.values())
        return cls(score.points(table), inference, score, entropy, uniform_entropy)

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

    def part(self, rule: Rule, a: str, b: str, condition: Any) -> Part:
        """The part `a rule b` under `condition`."""
        where = describe(condition)
        differences = self.difference(a, b, condition)
        if len(differences) == 0:
            return Part(where, f"no seed has both {a} and {b}", None, rule)
        first, second = (b, a) if self.score.lower_is_better else (a, b)
        return Part(where, f"{first} − {second}", Sample.of(differences), rule,
                    f"{a} {rule.symbol} {b}", self.score.unit,
                    caveats=self.uniform_sim_targets([a, b], condition))

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
    slopes = [float(np.polyfit(gammas, row.to_numpy(), 1)[0]) for _, row in gain.iterrows()]
    means = ", ".join(f"γ = {g:g}: {gain[g].mean():+.2f}" for g in gain.columns)
    part = Part("every γ", "per-seed slope of the gain kd_sim − ls against γ (points per unit γ)",
                Sample.of(slopes), GREATER, "slope > 0")
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


def claim_c10(analyses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition, the seeds' Spearman correlations of w_t with the teacher's p_t, where w_t
    is the kd target's rescaling evaluated at a fixed student: the ce student of the same seed
    (the mechanism: one student, teachers of different confidence). Shown beside it, as
    context: w_t at the student at initialisation (whose q_t hardly varies across examples) and
    at the kd student's own q (which depends on how the student ended up matching the teacher)."""
    statement = ("w_t rises with the teacher's confidence p_t: Spearman(w_t, p_t) > 0, w_t of the "
                 "kd target at a fixed student (the ce student of the same seed)")
    parts, notes = [], []
    for analysis in analyses:
        where = describe(analysis["meta"]["condition"])
        parts.append(_c10_part(where, _spearmans(analysis, C10_REFERENCE)))
        for q_from, student in C10_CONTEXT.items():  # shown beside, not judged
            if values := _spearmans(analysis, q_from):
                notes.append(f"{where}: context, w_t at {student}: Spearman mean "
                             f"{np.mean(values):+.3f} over {len(values)} seeds")
    return judge("C10", statement, parts, inference, notes)


def _spearmans(analysis: dict[str, Any], q_from: str) -> list[float]:
    """The finite Spearman correlations of the kd rows whose w_t uses the q of `q_from`
    (an analysis without `q_from` has only the students' own rows)."""
    return [row["spearman"] for row in analysis["rescaling"]
            if row["method"] == "kd" and row.get("q_from", "self") == q_from
            and math.isfinite(row["spearman"])]


def _c10_part(where: str, values: list[float]) -> Part:
    if not values:
        return Part(where, f"no kd rows at the {C10_REFERENCE} student's q with a defined Spearman "
                           "correlation (re-run the analysis)", None, GREATER)
    return Part(where, f"Spearman(w_t of kd at the {C10_REFERENCE} student's q, p_t)", Sample.of(values),
                GREATER, "> 0", unit="", digits=3)


def claim_c11(analyses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
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
                parts.append(Part(where, f"needs kd and {other} students", None, GREATER))
                continue
            differences = (table["kd"] - table[other]).dropna().to_numpy()
            parts.append(Part(where, f"correlation of kd − {other}", Sample.of(differences), GREATER,
                              f"kd > {other}", unit="", digits=3))
    return judge("C11", statement, parts, inference)


def claim_c9(diagnoses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
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
        parts += [_c9_part(where, plain, smoothed, _kd_points(diagnosis)) for plain, smoothed in pairs]
    if not parts:
        return Claim("C9", statement, NOT_RUN, skipped or ["no teacher diagnoses"])
    return judge("C9", statement, parts, inference, skipped)


def _kd_points(diagnosis: dict[str, Any]) -> pd.DataFrame:
    """The diagnosis's kd students' test accuracy in points, rows seed, columns teacher."""
    rows = [row for row in diagnosis["students"] if row["method"] == "kd"]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index="seed", columns="teacher", values="test_acc") * 100


def _c9_part(where: str, plain: dict[str, Any], smoothed: dict[str, Any], points: pd.DataFrame) -> Part:
    a, b = plain["name"], smoothed["name"]
    if not {a, b} <= set(points.columns):
        return Part(where, f"needs the kd students of both {a} and {b}", None, GREATER)
    differences = (points[a] - points[b]).dropna().to_numpy()
    if len(differences) == 0:
        return Part(where, f"no seed has kd students of both {a} and {b}", None, GREATER)
    return Part(where, f"kd students of {a} − of {b} ({plain['architecture']})", Sample.of(differences),
                GREATER, f"{a} > {b}",
                detail=(f"teachers' mean p_t {plain['p_t_mean']:.3f} vs {smoothed['p_t_mean']:.3f}, "
                        f"mean entropy {plain['entropy']:.2f} vs {smoothed['entropy']:.2f} nats"))


def claim_c12(diagnoses: Sequence[dict[str, Any]], inference: Inference) -> Claim:
    """Per condition, each consecutive pair of plain (ce) teachers by size: the per-example
    p_t(larger) − p_t(smaller) on the validation split (its mean and standard error over
    examples)."""
    statement = ("a larger (plain) teacher's p_t distribution is more concentrated near 1: "
                 "per-example p_t, larger − smaller teacher, > 0 for every size step")
    parts, skipped = [], []
    for diagnosis in diagnoses:
        where = describe(diagnosis["meta"]["condition"])
        teachers = {row["name"]: row for row in diagnosis["teachers"]}
        if not diagnosis["size_pairs"]:
            skipped.append(f"{where}: fewer than two plain teachers of different sizes")
        for pair in diagnosis["size_pairs"]:
            parts.append(Part(where, f"{_confidence(teachers[pair['larger']])} − "
                                     f"{_confidence(teachers[pair['smaller']])}: p_t difference",
                              Sample.of_mean(pair["mean"], pair["se"], pair["n"]), GREATER, "> 0",
                              unit="", digits=4, spread="example sd"))
    if not parts:
        return Claim("C12", statement, NOT_RUN, skipped or ["no teacher diagnoses"])
    return judge("C12", statement, parts, inference, skipped)


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
    return (f"Each part of a claim is a paired comparison per seed under one condition. Its "
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
    scope.add_argument("--teacher", help="synthetic track: the teacher whose students are compared")
    scope.add_argument("--pair", nargs=2, action="append", metavar=("TEACHER", "STUDENT"),
                       help="image tracks: a teacher and student architecture to compare on (repeatable)")
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
    if args.teacher:
        data = Comparisons.synthetic(summary, args.teacher, inference, score, args.uniform_entropy)
        scope_text = f"the students of the `{args.teacher}` teacher, per class correlation γ"
    else:
        data = Comparisons.pairs(summary, [tuple(pair) for pair in args.pair], inference, score,
                                 args.uniform_entropy)
        scope_text = "per teacher→student pair: " + ", ".join(f"{t}→{s}" for t, s in args.pair)
    analyses = [json.loads(Path(path).read_text()) for path in args.analyses]
    diagnoses = [json.loads(Path(path).read_text()) for path in args.diagnoses]
    claims = evaluate(data, synthetic=bool(args.teacher), analyses=analyses, diagnoses=diagnoses)
    save_json({"scope": scope_text, "confidence": args.confidence, "correction": args.correction,
               "margin": args.margin, "uniform_entropy": args.uniform_entropy, "metric": args.metric,
               "procedure": procedure_text(args.confidence, args.correction, args.margin, score.unit),
               "claims": [asdict(claim) for claim in claims]}, args.out)


if __name__ == "__main__":
    main()
