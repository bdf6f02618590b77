"""Tests for the claim verdicts (partialkd.claims) and the run summary (partialkd.aggregate)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.runs import TINY_GAMMA, read_json, tiny_config

from partialkd.claims import (APPROXIMATELY, AT_LEAST, FAILS, GREATER, HOLDS, INCONCLUSIVE, NOT_RUN, RULES,
                              Comparisons, Inference, Interval, Sample, claim_c12, claim_c9, combine,
                              evaluate, main)
from partialkd.reporting.summary import summarise
from partialkd.train import run

CONFIDENCE, MARGIN = 0.95, 0.5
INFERENCE = Inference(CONFIDENCE, "bonferroni", MARGIN)
CLI = ["--confidence", str(CONFIDENCE), "--correction", "bonferroni", "--margin", str(MARGIN)]
GAMMAS = (0.0, 0.5, 1.0)
SEEDS = tuple(range(6))
METHODS = ("ce", "ls", "kd", "kd_pt", "kd_sim", "kd_pt_sim")

# ---------------------------------------------------------------------------- Interval


def test_interval_of_a_known_vector_is_student_t():
    interval = Sample.of([1.0, 2.0, 3.0, 4.0]).interval(0.95)
    std = math.sqrt(5 / 3)  # sample standard deviation (ddof = 1) of 1..4
    half = 3.182446305284263 * std / math.sqrt(4)  # t quantile 0.975 at 3 degrees of freedom
    assert interval.n == 4 and interval.confidence == 0.95
    assert interval.mean == pytest.approx(2.5)
    assert interval.std == pytest.approx(std)
    assert interval.low == pytest.approx(2.5 - half)
    assert interval.high == pytest.approx(2.5 + half)
    assert interval.text() == f"+2.50 pts [{2.5 - half:+.2f}, {2.5 + half:+.2f}] (seed sd {std:.2f}, n = 4)"


def test_three_seeds_use_the_t_quantile_4_30_not_2():
    interval = Sample(0.0, 1.0, 3).interval(0.95)
    assert interval.high == pytest.approx(4.302652729749464 / math.sqrt(3))


def test_interval_widens_with_the_level_and_is_centred_on_the_mean():
    sample = Sample.of([0.5, -0.5, 1.5])
    narrow, wide = sample.interval(0.8), sample.interval(0.99)
    assert narrow.mean == wide.mean == pytest.approx(0.5)
    assert wide.high - wide.mean > narrow.high - narrow.mean > 0
    assert (narrow.mean - narrow.low) == pytest.approx(narrow.high - narrow.mean)


def test_interval_of_one_value_is_unbounded_and_decides_nothing():
    interval = Sample.of([1.2]).interval(0.95)
    assert interval.n == 1 and interval.mean == pytest.approx(1.2)
    assert interval.low == -math.inf and interval.high == math.inf
    for rule in RULES:
        assert rule(interval, MARGIN) == INCONCLUSIVE


def test_interval_of_identical_values_is_a_point():
    interval = Sample.of([0.7, 0.7, 0.7]).interval(0.95)
    assert interval.std == pytest.approx(0, abs=1e-12)
    assert interval.low == pytest.approx(0.7) and interval.high == pytest.approx(0.7)


def test_interval_of_a_mean_with_its_standard_error():
    sample = Sample.of_mean(0.5, 0.1, 16)
    assert (sample.mean, sample.n) == (0.5, 16)
    assert sample.std == pytest.approx(0.4)
    interval = sample.interval(0.95)
    half = 2.131449545559323 * 0.1  # t quantile 0.975 at 15 degrees of freedom
    assert (interval.low, interval.high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))


@pytest.mark.parametrize(("correction", "parts", "level"), [
    ("bonferroni", 1, 0.95), ("bonferroni", 5, 0.99), ("none", 5, 0.95)])
def test_the_part_level_is_corrected_for_the_claims_parts(correction, parts, level):
    assert Inference(0.95, correction, MARGIN).level(parts) == pytest.approx(level)


@pytest.mark.parametrize(("confidence", "correction", "margin", "named"), [
    (1.0, "bonferroni", 0.5, "confidence"), (0.0, "none", 0.5, "confidence"),
    (math.nan, "none", 0.5, "confidence"), (0.95, "holm", 0.5, "correction"),
    (0.95, "none", math.nan, "margin"), (0.95, "none", -1.0, "margin")])
def test_inference_refuses_values_that_decide_nothing(confidence, correction, margin, named):
    with pytest.raises(ValueError, match=named):
        Inference(confidence, correction, margin)


# --------------------------------------------------------------------------- verdicts


def interval(low: float, high: float) -> Interval:
    return Interval((low + high) / 2, 1.0, 5, low, high, 0.95)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.1, 2.0, HOLDS),
    (1e-9, 0.5, HOLDS),
    (0.0, 1.0, INCONCLUSIVE),      # touching 0 is not above it
    (-0.1, 1.0, INCONCLUSIVE),
    (-1.0, 0.0, INCONCLUSIVE),     # touching 0 is not below it
    (-1.0, -1e-9, FAILS),
    (-3.0, -1.0, FAILS),
])
def test_greater(low, high, expected):
    assert GREATER(interval(low, high), MARGIN) == expected
    assert GREATER(interval(low, high), 5.0) == expected  # the margin plays no part


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.5, 2.0, HOLDS),
    (-0.49, 1.0, HOLDS),           # above −margin
    (-0.4, -0.1, HOLDS),           # below 0 but within the margin: non-inferior
    (-0.32, -0.28, HOLDS),
    (-0.5, 1.0, INCONCLUSIVE),     # touching −margin is not above it
    (-2.0, 1.0, INCONCLUSIVE),
    (-2.0, -0.01, INCONCLUSIVE),   # below 0 is not below −margin
    (-0.5, -0.1, INCONCLUSIVE),
    (-2.0, -0.51, FAILS),
    (-3.0, -1.0, FAILS),
])
def test_at_least(low, high, expected):
    assert AT_LEAST(interval(low, high), MARGIN) == expected


@pytest.mark.parametrize(("low", "high", "expected"), [
    (-0.3, 0.3, HOLDS),
    (0.1, 0.4, HOLDS),             # inside ±margin even though it excludes 0
    (-0.49, 0.49, HOLDS),
    (-0.5, 0.3, INCONCLUSIVE),     # touching the margin is not inside
    (-0.3, 0.5, INCONCLUSIVE),
    (-1.0, 1.0, INCONCLUSIVE),
    (0.13, 0.60, INCONCLUSIVE),    # excludes 0 but may lie inside the margin
    (-0.6, -0.1, INCONCLUSIVE),
    (0.51, 0.9, FAILS),            # entirely beyond the margin
    (-0.9, -0.51, FAILS),
    (2.0, 3.0, FAILS),
])
def test_approximately(low, high, expected):
    assert APPROXIMATELY(interval(low, high), MARGIN) == expected


def test_the_margin_moves_the_boundaries():
    assert APPROXIMATELY(interval(0.1, 0.4), 0.5) == HOLDS
    assert APPROXIMATELY(interval(0.35, 0.4), 0.3) == FAILS
    assert AT_LEAST(interval(-0.4, -0.35), 0.3) == FAILS


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.symbol)
def test_a_narrower_interval_never_reverses_a_verdict(rule):
    """Monotone rules: shrinking an interval around its mean moves a verdict only from
    inconclusive to holds or fails, never between holds and fails or back to inconclusive."""
    centres = np.linspace(-1.5, 1.5, 121)[:, None]
    halves = np.linspace(2.0, 0.0, 81)[None, :]  # shrinking, as more seeds come in
    verdicts = rule.decide(centres - halves, centres + halves, MARGIN)
    for row in verdicts:
        decided = row[row != INCONCLUSIVE]
        assert len(set(decided)) <= 1, row
        if len(decided):
            first = int(np.argmax(row != INCONCLUSIVE))
            assert (row[first:] != INCONCLUSIVE).all(), row


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([], NOT_RUN),
    ([HOLDS], HOLDS),
    ([HOLDS, HOLDS, HOLDS], HOLDS),
    ([HOLDS, INCONCLUSIVE], INCONCLUSIVE),
    ([HOLDS, FAILS], FAILS),
    ([INCONCLUSIVE, FAILS, HOLDS], FAILS),
    ([HOLDS, NOT_RUN], NOT_RUN),
    ([FAILS, NOT_RUN], NOT_RUN),
])
def test_combine(verdicts, expected):
    assert combine(verdicts) == expected


# ------------------------------------------------------------- planted summary tables

Effect = Callable[[float], float]  # γ -> accuracy effect in points


def holding_effects() -> dict[str, Effect]:
    """kd_pt ≈ kd and ≥ kd_sim at γ = 0 (C5), kd_sim − ls rising with γ (C6), kd_pt_sim on top (C7)."""
    return {
        "ce": lambda g: -1.0,
        "ls": lambda g: 0.0,
        "kd_pt": lambda g: 2.0,
        "kd": lambda g: 2.0,
        "kd_sim": lambda g: 0.5 + 3.0 * g,
        "kd_pt_sim": lambda g: max(2.0, 0.5 + 3.0 * g) + 0.8,
    }


def make_summary(effects: dict[str, Effect], gammas=GAMMAS, seeds=SEEDS, teacher="mlp",
                 jitter: float = 0.05, base: float = 0.60) -> pd.DataFrame:
    """Student rows of one teacher: accuracy = base + effect + a per-(γ, seed) offset shared by
    all methods (paired seeds cancel it) + small per-method noise, as fractions."""
    rng = np.random.default_rng(0)
    rows = []
    for gamma in gammas:
        for seed in seeds:
            shared = rng.normal(0, 2.0)  # points; large, but it cancels in paired differences
            for method, effect in effects.items():
                points = effect(gamma) + shared + rng.normal(0, jitter)
                rows.append({"role": "student", "teacher": teacher, "gamma": gamma, "seed": seed,
                             "method": method, "best_test_acc": base + points / 100,
                             "selected": True})
    return pd.DataFrame(rows)


def with_distractors(summary: pd.DataFrame) -> pd.DataFrame:
    """Add the opposite effects for another teacher, and teacher rows: both must be ignored."""
    opposite = {method: (lambda g, f=f: -3 * f(g)) for method, f in holding_effects().items()}
    other = make_summary(opposite, teacher="oracle")
    teachers = pd.DataFrame([{"role": "teacher", "teacher": "mlp", "gamma": g, "seed": 0,
                              "method": "kd_pt", "best_test_acc": 0.1, "selected": True} for g in GAMMAS])
    return pd.concat([summary, other, teachers], ignore_index=True)


SYNTHETIC_ONLY = ("C5", "C6", "C7")


def verdicts(summary: pd.DataFrame, teacher: str = "mlp", margin: float = MARGIN) -> dict[str, str]:
    """The verdicts of the synthetic-only claims C5–C7 (the general ones are tested on pairs)."""
    claims = evaluate(Comparisons.synthetic(summary, teacher, Inference(CONFIDENCE, "bonferroni", margin)), synthetic=True)
    assert [claim.id for claim in claims] == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    return {claim.id: claim.verdict for claim in claims if claim.id in SYNTHETIC_ONLY}


def test_planted_structure_where_c5_c6_c7_hold():
    summary = with_distractors(make_summary(holding_effects()))
    assert verdicts(summary) == {"C5": HOLDS, "C6": HOLDS, "C7": HOLDS}
    # The other teacher's students carry the opposite effects.
    assert verdicts(summary, teacher="oracle") == {"C5": FAILS, "C6": FAILS, "C7": FAILS}


def test_evidence_reports_the_paired_differences():
    exact = make_summary(holding_effects(), jitter=0.0)  # differences exact up to rounding
    claims = {c.id: c for c in evaluate(Comparisons.synthetic(exact, "mlp", INFERENCE), synthetic=True)}
    c5 = claims["C5"].evidence
    assert len(c5) == 2
    assert c5[0].startswith("γ = 0: kd_pt − kd_sim = +1.50 pts [+1.50, +1.50] (seed sd 0.00")
    assert c5[0].endswith("→ kd_pt ≥ kd_sim holds") and "n = 6" in c5[0]
    assert "kd_pt − kd = +0.0" in c5[1] or "kd_pt − kd = -0.0" in c5[1]
    assert claims["C6"].evidence[0].startswith(
        "every γ: per-seed slope of the gain kd_sim − ls against γ = +3.00 pts per unit γ")
    assert claims["C6"].evidence[0].endswith(") → slope > 0 holds")
    assert "γ = 0: +0.50, γ = 0.5: +2.00, γ = 1: +3.50" in claims["C6"].evidence[1]
    assert claims["C5"].parts == [HOLDS, HOLDS] and claims["C5"].level == pytest.approx(0.975)
    assert len(claims["C7"].evidence) == 2 * len(GAMMAS)


@pytest.mark.parametrize(("change", "claim"), [
    # C5: kd_sim beats kd_pt at γ = 0 (kd_pt ≥ kd_sim fails)
    ({"kd_sim": lambda g: 4.0 + 3.0 * g, "kd_pt_sim": lambda g: 8.0}, "C5"),
    # C5: kd clearly above kd_pt at γ = 0 (kd_pt ≈ kd fails)
    ({"kd": lambda g: 3.5}, "C5"),
    # C6: the gain of kd_sim over ls shrinks as γ grows
    ({"kd_sim": lambda g: 1.5 - 1.0 * g, "kd_pt_sim": lambda g: 2.8}, "C6"),
    # C7: kd_pt_sim below kd_pt at γ = 0.5 only
    ({"kd_pt_sim": lambda g: 0.5 if g == 0.5 else max(2.0, 0.5 + 3.0 * g) + 0.8}, "C7"),
])
def test_planted_structure_where_one_claim_fails(change, claim):
    effects = {**holding_effects(), **change}
    result = verdicts(with_distractors(make_summary(effects)))
    assert result[claim] == FAILS, result
    assert all(v == HOLDS for c, v in result.items() if c != claim), result


def test_c5_approximate_equality_depends_on_the_margin():
    effects = {**holding_effects(), "kd": lambda g: 2.0 - 0.3}  # kd_pt − kd = +0.3 pts
    assert verdicts(make_summary(effects), margin=0.5)["C5"] == HOLDS
    assert verdicts(make_summary(effects), margin=0.2)["C5"] == FAILS


def test_noisy_differences_are_inconclusive():
    # With per-method noise of 3 points and 6 seeds, a true +0.5 effect cannot be decided.
    effects = {**holding_effects(), "kd_pt_sim": lambda g: max(2.0, 0.5 + 3.0 * g) + 0.5}
    result = verdicts(make_summary(effects, jitter=3.0))
    assert result["C7"] == INCONCLUSIVE
    single_seed = verdicts(make_summary(holding_effects(), seeds=(0,)))
    assert single_seed == {"C5": INCONCLUSIVE, "C6": INCONCLUSIVE, "C7": INCONCLUSIVE}


@pytest.mark.parametrize(("drop", "not_run"), [
    ("kd", {"C5"}),
    ("kd_pt", {"C5", "C7"}),
    ("kd_sim", {"C5", "C6", "C7"}),
    ("ls", {"C6"}),
    ("kd_pt_sim", {"C7"}),
])
def test_missing_method_is_not_run(drop, not_run):
    effects = {m: f for m, f in holding_effects().items() if m != drop}
    result = verdicts(with_distractors(make_summary(effects)).query("method != @drop"))
    assert {c for c, v in result.items() if v == NOT_RUN} == not_run, result
    assert all(v == HOLDS for c, v in result.items() if c not in not_run), result


def test_missing_gamma_zero_or_a_single_gamma_is_not_run():
    result = verdicts(make_summary(holding_effects(), gammas=(0.5, 1.0)))
    assert result == {"C5": NOT_RUN, "C6": HOLDS, "C7": HOLDS}
    result = verdicts(make_summary(holding_effects(), gammas=(0.0,)))
    assert result["C6"] == NOT_RUN and result["C5"] == HOLDS


def test_a_teacher_without_students_is_not_run():
    assert set(verdicts(make_summary(holding_effects()), teacher="oracle").values()) == {NOT_RUN}


def test_method_missing_only_at_gamma_zero_is_not_run():
    summary = make_summary(holding_effects())
    summary = summary[~((summary["method"] == "kd") & (summary["gamma"] == 0.0))]
    assert verdicts(summary)["C5"] == NOT_RUN


def test_c6_with_ls_missing_at_one_gamma_is_not_run():
    summary = make_summary(holding_effects())
    summary = summary[~((summary["method"] == "ls") & (summary["gamma"] == 1.0))]
    assert verdicts(summary)["C6"] in (NOT_RUN, HOLDS)


def test_claims_command_writes_the_verdicts(tmp_path):
    csv = tmp_path / "summary.csv"
    make_summary(holding_effects()).to_csv(csv, index=False)
    out = tmp_path / "claims.json"
    main(["--summary", str(csv), "--teacher", "mlp", *CLI,
          "--out", str(out)])
    written = json.loads(out.read_text())
    assert "`mlp` teacher" in written["scope"] and written["confidence"] == CONFIDENCE and written["margin"] == MARGIN
    assert [(c["id"], c["verdict"]) for c in written["claims"]] == [
        ("C1", HOLDS), ("C2", HOLDS), ("C3", HOLDS), ("C4", HOLDS), ("C5", HOLDS), ("C6", HOLDS),
        ("C7", HOLDS), ("C8", NOT_RUN)]
    assert all(c["statement"] and c["evidence"] for c in written["claims"])


def test_a_second_teacher_s_claims_are_written_beside_the_first(tmp_path):
    """--teacher mlp --teacher oracle: mlp's claims lead, the oracle's stand beside them, each
    from its own students and its own analyses."""
    csv = tmp_path / "summary.csv"
    with_distractors(make_summary(holding_effects())).to_csv(csv, index=False)
    analyses = []
    for teacher, spearman in (("mlp", 0.6), ("oracle", -0.6)):
        path = tmp_path / f"{teacher}.json"
        path.write_text(json.dumps({"meta": {"condition": 0.0, "teacher_name": teacher}, "geometry": [],
                                    "rescaling": [{"seed": seed, "method": "kd", "q_from": "ce",
                                                   "spearman": spearman + seed / 100} for seed in SEEDS]}))
        analyses.append(str(path))
    out = tmp_path / "claims.json"
    main(["--summary", str(csv), "--teacher", "mlp", "--teacher", "oracle", "--analyses", *analyses,
          *CLI, "--out", str(out)])
    written = json.loads(out.read_text())
    lead = {c["id"]: c["verdict"] for c in written["claims"]}
    [beside] = written["beside"]
    oracle = {c["id"]: c["verdict"] for c in beside["claims"]}
    assert lead["C5"] == HOLDS and oracle["C5"] == FAILS  # the oracle's students carry the opposite effects
    assert lead["C10"] == HOLDS and oracle["C10"] == FAILS  # each teacher's own analysis
    assert beside["teacher"] == "oracle" and "`oracle` teacher" in beside["scope"]


def test_a_verdict_resting_on_a_uniform_similarity_target_says_so(tmp_path):
    """kd_pt_sim whose chosen similarity rows are uniform at γ = 0 is kd_pt there: C7's and C4's
    parts at γ = 0 carry the caveat, the other γ do not, and the verdicts are unchanged."""
    summary = make_summary(holding_effects())
    flat = (summary["method"] == "kd_pt_sim") & (summary["gamma"] == 0.0)
    summary["sim_entropy"] = np.where(flat, 0.999, np.where(summary["method"].str.contains("sim"), 0.7, np.nan))
    inference = Inference(CONFIDENCE, "bonferroni", MARGIN)
    claims = {c.id: c for c in evaluate(Comparisons.synthetic(summary, "mlp", inference, uniform_entropy=0.99),
                                        synthetic=True)}
    assert claims["C7"].verdict == HOLDS
    assert claims["C7"].caveats == ["γ = 0: kd_pt_sim's chosen similarity rows have normalised entropy "
                                    "0.999 (1 = uniform)"]
    assert [("caveat" in line) for line in claims["C7"].evidence] == [True, True] + [False] * 4
    assert claims["C4"].caveats and not claims["C1"].caveats and not claims["C3"].caveats
    # two flat targets under one condition: one caveat each, however many parts they appear in
    summary.loc[(summary["method"] == "kd_sim") & (summary["gamma"] == 0.0), "sim_entropy"] = 0.995
    both = {c.id: c for c in evaluate(Comparisons.synthetic(summary, "mlp", inference, uniform_entropy=0.99),
                                      synthetic=True)}
    assert both["C7"].caveats == [claims["C7"].caveats[0], "γ = 0: kd_sim's chosen similarity rows have "
                                  "normalised entropy 0.995 (1 = uniform)"]
    summary.loc[(summary["method"] == "kd_sim") & (summary["gamma"] == 0.0), "sim_entropy"] = 0.7
    # the threshold is a parameter: at 0.9999 nothing is flagged
    strict = evaluate(Comparisons.synthetic(summary, "mlp", inference, uniform_entropy=0.9999), synthetic=True)
    assert not any(claim.caveats for claim in strict)
    # through the command line, into claims.json
    csv, out = tmp_path / "summary.csv", tmp_path / "claims.json"
    summary.to_csv(csv, index=False)
    main(["--summary", str(csv), "--teacher", "mlp", *CLI, "--uniform-entropy", "0.99", "--out", str(out)])
    written = {c["id"]: c for c in json.loads(out.read_text())["claims"]}
    assert written["C7"]["caveats"] == claims["C7"].caveats and written["C7"]["verdict"] == HOLDS


# ------------------------------------------------------------ image tracks: pairs


PAIR_EFFECTS = {"ce": 0.0, "ls": 0.5, "kd": 2.0, "kd_pt": 1.5, "kd_sim": 1.0, "kd_pt_sim": 2.2,
                "kd_topk": 2.4}


def pair_summary(effects: dict[str, float], student: str = "resnet20", teacher: str = "resnet56",
                 seeds=SEEDS) -> pd.DataFrame:
    """Selected student rows of one pair; ce and ls take nothing from the teacher (teacher 'none')."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in seeds:
        shared = rng.normal(0, 2.0)
        for method, effect in effects.items():
            rows.append({"role": "student", "student": student, "seed": seed, "method": method,
                         "teacher": "none" if method in ("ce", "ls") else teacher, "selected": True,
                         "best_test_acc": 0.7 + (effect + shared + rng.normal(0, 0.05)) / 100})
    return pd.DataFrame(rows)


def pair_verdicts(summary: pd.DataFrame, pairs=(("resnet56", "resnet20"),)) -> dict[str, str]:
    claims = evaluate(Comparisons.pairs(summary, pairs, INFERENCE), synthetic=False)
    return {claim.id: claim.verdict for claim in claims}


def test_general_claims_on_a_pair_with_planted_effects():
    assert pair_verdicts(pair_summary(PAIR_EFFECTS)) == {
        "C1": HOLDS, "C2": HOLDS, "C3": HOLDS, "C4": HOLDS, "C8": HOLDS}
    worse_topk = pair_verdicts(pair_summary({**PAIR_EFFECTS, "kd_topk": 0.5}))
    assert worse_topk["C8"] == FAILS and worse_topk["C1"] == HOLDS
    below_ls = pair_verdicts(pair_summary({**PAIR_EFFECTS, "kd_sim": -1.0}))
    assert below_ls["C3"] == FAILS


def test_pairs_join_teacher_free_students_of_the_same_architecture_only():
    """ce/ls of another architecture, unselected rows and another teacher's students are ignored."""
    summary = pair_summary(PAIR_EFFECTS)
    other_arch = pair_summary({"ls": 50.0}, student="resnet32")
    other_teacher = pair_summary({"kd": -30.0}, teacher="resnet56_ls")
    unselected = pair_summary({"kd": -30.0}).assign(selected=False)
    mixed = pd.concat([summary, other_arch, other_teacher[other_teacher["method"] == "kd"], unselected])
    assert pair_verdicts(mixed) == pair_verdicts(summary)
    claims = evaluate(Comparisons.pairs(mixed, [("resnet56", "resnet20")], INFERENCE), synthetic=False)
    prefix = "resnet56→resnet20: kd − ls = "
    assert claims[0].evidence[0].startswith(prefix)
    assert float(claims[0].evidence[0][len(prefix):].split(" pts")[0]) == pytest.approx(1.5, abs=0.1)


def test_a_claim_must_hold_on_every_pair_and_a_missing_method_is_not_run():
    second = pair_summary({**PAIR_EFFECTS, "kd": 0.0}, student="resnet32", teacher="resnet110")
    both = pd.concat([pair_summary(PAIR_EFFECTS), second])
    result = pair_verdicts(both, pairs=(("resnet56", "resnet20"), ("resnet110", "resnet32")))
    assert result["C1"] == FAILS and result["C2"] == HOLDS
    no_topk = pair_summary({m: e for m, e in PAIR_EFFECTS.items() if m != "kd_topk"})
    assert pair_verdicts(no_topk)["C8"] == NOT_RUN


# --------------------------------------------------------------------------- aggregate


@pytest.fixture(scope="module")
def two_runs(data_path: Path, teacher_path: Path,
             tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny student runs (seeds 0 and 1) of ce, ls and kd with two variants each."""
    grid = {"ce": {}, "ls": {"lam": [0.1, 0.9], "tau": [1]}, "kd": {"lam": [0.5], "tau": [1, 4]}}
    paths = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"seed{seed}")
        run(data_path, grid, tiny_config(seed=seed, train_size=300), out, teacher=teacher_path,
            tags={"role": "student", "teacher": "mlp"})
        paths.append(out / "metrics.json")
    return paths


def test_summarise_gives_one_row_per_variant_and_marks_the_selected_one(two_runs):
    table = summarise(two_runs)
    assert len(table) == 2 * 5  # two runs of five variants
    for path in two_runs:
        metrics = read_json(path)
        rows = table[table["run"] == str(path.parent)]
        assert list(rows["variant"]) == [variant["label"] for variant in metrics["variants"]]
        selected = rows[rows["selected"]]
        assert sorted(selected["method"]) == ["ce", "kd", "ls"]
        for method, index in metrics["selected"].items():
            variant = metrics["variants"][index]
            row = selected[selected["method"] == method].iloc[0]
            assert row["variant"] == variant["label"]
            assert row["lam"] == variant["lam"] and row["tau"] == variant["tau"]
            assert row["best_epoch"] == variant["best"]["epoch"]
            for when in ("best", "last"):
                for split in ("valid", "test"):
                    for name in ("acc", "nll", "ece"):
                        assert row[f"{when}_{split}_{name}"] == variant[when][split][name]
            # The selected variant has the method's best validation accuracy.
            assert row["best_valid_acc"] == max(v["best"]["valid"]["acc"]
                                                for v in metrics["variants"] if v["method"] == method)
            assert row["seed"] == metrics["config"]["config"]["seed"]
            assert row["role"] == "student" and row["teacher"] == "mlp"
            assert row["gamma"] == TINY_GAMMA and row["track"] == "synthetic"
            assert row["bayes_test_acc"] == metrics["dataset"]["bayes_test_accuracy"]
            assert row["epochs"] == metrics["config"]["config"]["epochs"]
            assert pd.isna(row["alpha"]) and pd.isna(row["k"])
    assert sorted(table["seed"].unique()) == [0, 1]


def test_selection_spans_runs_of_single_variants(two_runs, tmp_path):
    """Image tracks train one variant per run: the best on validation among the runs of one
    (teacher, student, seed, method) is selected, as the synthetic stack selects within a run."""
    paths = []
    for index, lam in enumerate((0.2, 0.4, 0.6)):
        metrics = read_json(two_runs[0])
        variant = {**metrics["variants"][1], "lam": lam, "label": f"ls(lam={lam})"}
        variant["best"] = {**variant["best"], "valid": {**variant["best"]["valid"], "acc": [0.3, 0.5, 0.4][index]}}
        metrics.update(variants=[variant], selected={"ls": 0}, tags={"role": "student", "teacher": "none",
                                                                     "student": "resnet20"})
        path = tmp_path / f"run{index}" / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps(metrics))
        paths.append(path)
    table = summarise(paths)
    assert table["selected"].tolist() == [False, True, False]


def test_summary_of_real_runs_feeds_the_claims(two_runs):
    summary = summarise(two_runs)
    # kd_pt / kd_sim / kd_pt_sim were not trained: every synthetic claim is "not run".
    assert set(verdicts(summary).values()) == {NOT_RUN}


def test_summarise_refuses_an_unreadable_metrics_file(tmp_path, two_runs):
    broken = tmp_path / "metrics.json"
    broken.write_text(two_runs[0].read_text()[:100])
    with pytest.raises(ValueError, match="re-run that training job"):
        summarise([two_runs[0], broken])
    with pytest.raises(ValueError, match="cannot read run metrics"):
        summarise([tmp_path / "absent" / "metrics.json"])


# ----------------------------------------------------- C9 and C12: teachers' diagnoses


def teacher(name: str, method: str = "ce", architecture: str | None = "resnet56",
            parameters: int | None = 860_000, p_t_mean: float = 0.9) -> dict:
    return {"name": name, "method": method, "architecture": architecture, "parameters": parameters,
            "p_t_mean": p_t_mean, "p_t_ge_0.9": p_t_mean - 0.1, "entropy": 1 - p_t_mean}


def diagnosis(teachers: list[dict], kd_points: dict[str, list[float]] | None = None,
              size_pairs: list[dict] | None = None, condition="teachers→resnet20") -> dict:
    """A planted diagnosis JSON (partialkd.diagnose's layout): kd students' accuracy per seed, in
    points, of each named teacher."""
    students = [{"teacher": name, "method": "kd", "seed": seed, "test_acc": points / 100}
                for name, values in (kd_points or {}).items() for seed, points in enumerate(values)]
    students += [{"teacher": "none", "method": "ce", "seed": seed, "test_acc": 0.5} for seed in range(3)]
    return {"meta": {"condition": condition}, "teachers": teachers, "students": students,
            "size_pairs": size_pairs or []}


PLAIN_AND_SMOOTHED = [teacher("resnet56"), teacher("resnet56_ls", "ls", p_t_mean=0.6),
                      teacher("resnet110", architecture="resnet110", parameters=1_700_000)]


@pytest.mark.parametrize(("smoothed_points", "expected"), [
    ([70.0, 71.5, 69.4], HOLDS),      # 2 points below the plain teacher's students, every seed
    ([73.0, 74.6, 72.5], FAILS),      # 1 point above
    ([72.5, 72.5, 70.5], INCONCLUSIVE),
])
def test_c9_compares_kd_students_of_plain_and_smoothed_teachers(smoothed_points, expected):
    planted = diagnosis(PLAIN_AND_SMOOTHED, {"resnet56": [72.0, 73.5, 71.4], "resnet56_ls": smoothed_points,
                                             "resnet110": [10.0, 10.0, 10.0]})
    claim = claim_c9([planted], INFERENCE)
    assert claim.id == "C9" and claim.verdict == expected
    [evidence] = claim.evidence  # resnet110 has no smoothed twin: no comparison
    assert evidence.startswith("teachers→resnet20: kd students of resnet56 − of resnet56_ls "
                               "(resnet56) = ")
    assert "mean p_t 0.900 vs 0.600" in evidence and evidence.count(expected) == 1


def test_c9_pairs_seeds_and_skips_conditions_without_a_smoothed_teacher():
    planted = diagnosis(PLAIN_AND_SMOOTHED, {"resnet56": [72.0, 60.0, 71.0, 80.0],
                                             "resnet56_ls": [70.0, 58.0, 69.0]})  # seed 3: plain only
    synthetic = diagnosis([teacher("mlp", architecture="mlp-32"), teacher("oracle", "oracle", None, None)],
                          {"mlp": [1.0, 2.0]}, condition=0.5)
    claim = claim_c9([planted, synthetic], INFERENCE)
    assert claim.verdict == HOLDS
    assert "+2.00 pts [+2.00, +2.00] (seed sd 0.00, n = 3)" in claim.evidence[0]
    assert claim.evidence[1] == "γ = 0.5: no label-smoothed teacher with a plain one of its architecture"


@pytest.mark.parametrize(("teachers", "kd_points", "reason"), [
    (PLAIN_AND_SMOOTHED[::2], {"resnet56": [1.0]}, "no label-smoothed teacher"),
    (PLAIN_AND_SMOOTHED[1:], {"resnet110": [1.0], "resnet56_ls": [1.0]},
     "no label-smoothed teacher"),  # a smoothed teacher of another architecture
    (PLAIN_AND_SMOOTHED, None, "needs the kd students of both resnet56 and resnet56_ls"),
    (PLAIN_AND_SMOOTHED, {"resnet56": [72.0], "resnet56_ls": []}, "needs the kd students of both"),
])
def test_c9_is_not_run_without_a_teacher_pair_or_students(teachers, kd_points, reason):
    claim = claim_c9([diagnosis(teachers, kd_points)], INFERENCE)
    assert claim.verdict == NOT_RUN and reason in " ".join(claim.evidence)


def size_pair(smaller: str, larger: str, mean: float, se: float = 0.002, n: int = 5000) -> dict:
    return {"smaller": smaller, "larger": larger, "smaller_parameters": 1, "larger_parameters": 2,
            "mean": mean, "se": se, "n": n}


SIZED = [teacher("resnet56", p_t_mean=0.8),
         teacher("resnet110", architecture="resnet110", parameters=1_700_000, p_t_mean=0.85),
         teacher("resnet32x4", architecture="resnet32x4", parameters=7_400_000, p_t_mean=0.9)]


@pytest.mark.parametrize(("means", "expected"), [
    ((0.05, 0.05), HOLDS),
    ((0.05, -0.01), FAILS),     # the largest step lowers p_t
    ((0.05, 0.003), INCONCLUSIVE),  # 0.003 ± 2.24 × 0.002 straddles 0
])
def test_c12_needs_every_size_step_to_raise_p_t(means, expected):
    pairs = [size_pair("resnet56", "resnet110", means[0]), size_pair("resnet110", "resnet32x4", means[1])]
    claim = claim_c12([diagnosis(SIZED, size_pairs=pairs)], INFERENCE)
    assert claim.id == "C12" and claim.verdict == expected
    assert claim.evidence[0] == (
        "teachers→resnet20: resnet110 (1,700,000 parameters; mean p_t 0.850, 75% of p_t ≥ 0.9) − "
        "resnet56 (860,000 parameters; mean p_t 0.800, 70% of p_t ≥ 0.9): per-example p_t difference "
        "(one network per size: about these two networks) = +0.0500 [+0.0455, +0.0545] "
        "(example sd 0.1414, n = 5000) → > 0 holds")  # t at 97.5%: 2 parts


def test_c12_is_not_run_with_fewer_than_two_plain_sizes():
    claim = claim_c12([diagnosis(SIZED[:1] + [teacher("oracle", "oracle", None, None)], condition=0.0)], INFERENCE)
    assert claim.verdict == NOT_RUN
    assert claim.evidence == ["γ = 0: fewer than two plain teachers of different sizes"]
    assert claim_c12([], INFERENCE).verdict == NOT_RUN


def test_claims_command_reads_diagnoses(tmp_path):
    csv = tmp_path / "summary.csv"
    pair_summary(PAIR_EFFECTS).to_csv(csv, index=False)
    points = {"resnet56": [72.0, 73.5, 71.4], "resnet56_ls": [70.0, 71.5, 69.4]}
    planted = diagnosis(PLAIN_AND_SMOOTHED, points, [size_pair("resnet56", "resnet110", 0.05)])
    (tmp_path / "diagnosis.json").write_text(json.dumps(planted))
    out = tmp_path / "claims.json"
    main(["--summary", str(csv), "--pair", "resnet56", "resnet20", "--diagnoses",
          str(tmp_path / "diagnosis.json"), *CLI, "--out", str(out)])
    claims = json.loads(out.read_text())["claims"]
    assert [(c["id"], c["verdict"]) for c in claims] == [
        ("C1", HOLDS), ("C2", HOLDS), ("C3", HOLDS), ("C4", HOLDS), ("C8", HOLDS), ("C9", HOLDS),
        ("C12", HOLDS)]


# -------------------------------------------- replicates: worlds and teacher seeds as the unit


def test_worlds_are_the_unit_seeds_within_a_world_are_averaged():
    """Three worlds of two seeds: the interval is Student t over the three world means, not over
    the six seeds (a world's students share its data and teacher)."""
    world_effect = {0: 1.0, 1: 3.0, 2: 2.0}  # kd − ls per world, in points; the seeds add ±0.5
    rows = []
    for world, effect in world_effect.items():
        for seed, noise in ((0, 0.5), (1, -0.5)):
            for method, points in (("ls", 0.0), ("kd", effect + noise)):
                rows.append({"role": "student", "teacher": "mlp", "gamma": 0.0, "world": world, "seed": seed,
                             "method": method, "best_test_acc": 0.5 + points / 100, "selected": True})
    data = Comparisons.synthetic(pd.DataFrame(rows), "mlp", INFERENCE)
    part = data.part(GREATER, "kd", "ls", 0.0)
    assert part.spread == "world sd" and part.sample.n == 3
    assert part.sample.mean == pytest.approx(2.0) and part.sample.std == pytest.approx(1.0)
    high = 2.0 + 4.302652729749464 / math.sqrt(3)  # t quantile 0.975 at 2 degrees of freedom
    assert part.sample.interval(0.95).high == pytest.approx(high)
    # without the world column the six seeds are the unit (one world: conditional on it)
    seeds = Comparisons.synthetic(pd.DataFrame(rows).drop(columns="world").assign(
        seed=[s for s in range(6) for _ in range(2)]), "mlp", INFERENCE)
    assert seeds.part(GREATER, "kd", "ls", 0.0).sample.n == 6


def replicated(kd_points: dict[str, list[float]], replicate: int, size_pairs=None) -> dict:
    planted = diagnosis(PLAIN_AND_SMOOTHED, kd_points, size_pairs)
    planted["meta"].update({"replicate": replicate, "unit": "teacher seed"})
    for row in planted["teachers"]:
        row["epochs"] = 5
    return planted


def test_c9_over_teacher_seeds_averages_each_teachers_students():
    gaps = (2.0, 1.8, 2.2)  # plain − LS per teacher seed; each seed's two students ±1 around it
    group = [replicated({"resnet56": [72.0 + gap + 1, 72.0 + gap - 1], "resnet56_ls": [72.0, 72.0]}, index)
             for index, gap in enumerate(gaps)]
    claim = claim_c9(group, INFERENCE)
    assert claim.verdict == HOLDS
    assert "+2.00 pts [" in claim.evidence[0] and "(teacher seed sd 0.20, n = 3)" in claim.evidence[0]


def test_c12_over_teacher_seeds_uses_each_seeds_mean_p_t_difference():
    group = [replicated({}, index, [size_pair("resnet56", "resnet110", mean, se=1e-6)])
             for index, mean in enumerate((0.02, -0.01, 0.05))]
    claim = claim_c12(group, INFERENCE)
    # tiny per-example SEs would make each difference certain; across teachers it is not
    assert claim.verdict == INCONCLUSIVE
    assert "mean p_t difference per teacher seed = +0.0200" in claim.evidence[0]
    assert "(teacher seed sd 0.0300, n = 3)" in claim.evidence[0]
    assert "both trained 5 epochs" in claim.evidence[0]
    group[0]["teachers"][2]["epochs"] = 15  # the larger teacher of the first seed's diagnosis
    assert "trained 15 vs 5 epochs: the step confounds size with training length" in \
        claim_c12(group, INFERENCE).evidence[0]


def test_each_part_s_interval_is_recorded_for_the_figures():
    claims = {c.id: c for c in evaluate(Comparisons.synthetic(make_summary(holding_effects(), jitter=0.0), "mlp",
                                                               INFERENCE), synthetic=True)}
    [c1_first, *_] = claims["C1"].estimates
    assert c1_first == {"where": "γ = 0", "label": "kd − ls", "rule": ">", "verdict": HOLDS,
                        "mean": pytest.approx(2.0, abs=1e-6), "low": pytest.approx(2.0, abs=1e-4),
                        "high": pytest.approx(2.0, abs=1e-4), "n": len(SEEDS), "unit": "pts", "margin": 0.0}
    assert {e["margin"] for e in claims["C4"].estimates} == {MARGIN}  # ≥: the margin moves its regions
    assert len(claims["C7"].estimates) == len(claims["C7"].parts) == 2 * len(GAMMAS)
    assert claims["C8"].estimates == []  # not run: no interval
