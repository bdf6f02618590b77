"""Calibration of the claims' decision procedure (partialkd.claims) by Monte Carlo on planted
paired differences: normal with sd 1 (a seed sd of one point), margin 0.5, n seeds.

Each check asks how often a verdict is wrong when the truth is known: a true zero difference
called "holds" for `>`, a true difference inside the margin called "fails" for `≥` and `≈`, a
claim of 8 parts with no true difference called "fails". The procedure as it stood before the
t intervals and the family-wise correction (mean ± 2·SE, `≥` failing when high < 0, `≈` failing
when the interval excludes 0, no correction) is checked too: the calibration must catch it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from partialkd.claims import (APPROXIMATELY, AT_LEAST, FAILS, GREATER, HOLDS, INCONCLUSIVE, Inference, Rule,
                              combine, t_bounds)

REPS = 10_000
MARGIN = 0.5
SEEDS = (3, 5, 10, 40)
CONFIDENCE = 0.95
NOMINAL = (1 - CONFIDENCE) / 2  # each wrong verdict's bound under the procedure
TOLERANCE = 4 * np.sqrt(NOMINAL * (1 - NOMINAL) / REPS)  # Monte Carlo error, 4 standard errors

Bounds = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Procedure:
    """Intervals of part means (given the sd, n and the claim's number of parts) and the rules."""
    bounds: Bounds
    greater: Rule
    at_least: Rule
    approximately: Rule


def corrected_t(mean: np.ndarray, std: np.ndarray, n: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    return t_bounds(mean, std, n, Inference(CONFIDENCE, "bonferroni", MARGIN).level(parts))


CURRENT = Procedure(corrected_t, GREATER, AT_LEAST, APPROXIMATELY)

LEGACY = Procedure(
    lambda mean, std, n, parts: (mean - 2 * std / np.sqrt(n), mean + 2 * std / np.sqrt(n)),
    GREATER,
    Rule("≥", "legacy", lambda low, high, m: low > -m, lambda low, high, m: high < 0),
    Rule("≈", "legacy", lambda low, high, m: (low > -m) & (high < m),
         lambda low, high, m: ((low > 0) | (high < 0)) & ~((low > -m) & (high < m))))


def claim_verdicts(procedure: Procedure, rule: str, truth: float, n: int, parts: int = 1,
                   seed: int = 0) -> np.ndarray:
    """REPS claim verdicts, each over `parts` parts whose per-seed differences are N(truth, 1)."""
    differences = np.random.default_rng(seed).normal(truth, 1.0, size=(REPS, parts, n))
    low, high = procedure.bounds(differences.mean(-1), differences.std(-1, ddof=1), n, parts)
    decided = getattr(procedure, rule).decide(low, high, MARGIN)
    return np.array([combine(list(row)) for row in decided])


def rate(verdicts: np.ndarray, verdict: str) -> float:
    return float((verdicts == verdict).mean())


# (rule, true difference, parts, the wrong verdict): every case is one where that verdict is wrong.
WRONG = [
    ("greater", 0.0, 1, HOLDS),           # no difference called "a > b"
    ("at_least", -0.35, 1, FAILS),        # inside the margin called "not at least"
    ("at_least", -0.49, 1, FAILS),        # just inside the margin
    ("approximately", 0.36, 1, FAILS),    # inside the margin called "not equal"
    ("approximately", -0.45, 1, FAILS),
    ("approximately", 0.6, 1, HOLDS),     # beyond the margin called "equal"
    ("at_least", 0.0, 8, FAILS),          # an 8-part claim (C7's shape) with no difference
    ("greater", 0.0, 8, FAILS),
]


def violations(procedure: Procedure) -> list[str]:
    """The (case, n) whose wrong-verdict rate exceeds the nominal α/2 beyond Monte Carlo error."""
    found = []
    for rule, truth, parts, wrong in WRONG:
        for n in SEEDS:
            observed = rate(claim_verdicts(procedure, rule, truth, n, parts), wrong)
            if observed > NOMINAL + TOLERANCE:
                found.append(f"{rule} at {truth:+} with {parts} part(s), n = {n}: "
                             f"'{wrong}' {observed:.1%} > {NOMINAL:.1%}")
    return found


def test_wrong_verdicts_stay_within_the_nominal_rate():
    assert violations(CURRENT) == []


def test_the_calibration_catches_the_procedure_it_replaced():
    found = violations(LEGACY)
    # Normal intervals at 3 seeds, ≥ failing below 0, ≈ failing off 0, 8 uncorrected parts:
    for case in ("greater at +0.0 with 1 part(s), n = 3", "at_least at -0.35 with 1 part(s), n = 40",
                 "approximately at +0.36 with 1 part(s), n = 40", "at_least at +0.0 with 8 part(s), n = 10"):
        assert any(line.startswith(case) for line in found), found


def test_more_seeds_decide_a_true_difference_inside_the_margin():
    """−0.35 with a margin of 0.5: at least holds more often, and fails no more, as n grows."""
    holds = [rate(claim_verdicts(CURRENT, "at_least", -0.35, n), HOLDS) for n in (10, 40, 200)]
    assert holds == sorted(holds) and holds[-1] > 0.5
    assert rate(claim_verdicts(CURRENT, "at_least", -0.35, 200), FAILS) <= NOMINAL


@pytest.mark.parametrize("n", SEEDS)
def test_a_large_true_effect_is_decided(n):
    """The correction costs power, not correctness: a 4-part claim of 3-sd effects is never
    called fails, and holds nearly always from 10 seeds on."""
    verdicts = claim_verdicts(CURRENT, "greater", 3.0, n, parts=4)
    assert rate(verdicts, FAILS) == 0.0
    if n >= 10:
        assert rate(verdicts, HOLDS) > 0.95
    assert set(np.unique(verdicts)) <= {HOLDS, INCONCLUSIVE}
