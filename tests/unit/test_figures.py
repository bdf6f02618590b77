"""Figures computed from hand-made summary tables."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex

from partialkd.claims import FAILS, HOLDS, INCONCLUSIVE
from partialkd.figures import claims_figure, gain_over_baseline, main, topk_by_k, topk_figure
from partialkd.reporting.style import VERDICT_MARKS, save_figure
from partialkd.reporting.summary import SCORES


def topk_summary() -> pd.DataFrame:
    """Two seeds; at each k two τ values, the better on validation being the worse on test."""
    rows = []
    for seed in (0, 1):
        for k, base in ((2, 0.50), (5, 0.60)):
            for tau, valid, test in ((1.0, 0.40, base + 0.05), (4.0, 0.45, base + seed / 100)):
                rows.append({"role": "student", "teacher": "mlp", "gamma": 0.0, "seed": seed,
                             "method": "kd_topk", "k": k, "tau": tau, "best_valid_acc": valid,
                             "best_test_acc": test, "selected": k == 5 and tau == 4.0})
        rows.append({"role": "student", "teacher": "mlp", "gamma": 0.0, "seed": seed, "method": "kd",
                     "k": None, "tau": 4.0, "best_valid_acc": 0.5, "best_test_acc": 0.55,
                     "selected": True})
    return pd.DataFrame(rows)


def test_topk_by_k_chooses_each_ks_variant_on_validation() -> None:
    chosen = topk_by_k(topk_summary()).sort_values(["seed", "k"])
    assert chosen[["seed", "k"]].values.tolist() == [[0, 2], [0, 5], [1, 2], [1, 5]]
    assert chosen["score"].round(6).tolist() == [50.0, 60.0, 51.0, 61.0]  # τ = 4, not τ = 1


def test_topk_figure_draws_a_panel_per_gamma_with_the_kd_reference(tmp_path) -> None:
    figure = topk_figure(topk_summary(), "sd")
    (ax,) = figure.axes
    assert ax.get_title() == "teacher mlp, γ = 0"
    assert ax.get_xscale() == "log" and [tick.get_text() for tick in ax.get_xticklabels()] == ["2", "5"]
    assert ax.xaxis.get_minor_ticks() == []  # ticks at the k values only
    reference = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert reference and reference[0].get_ydata()[0] == pytest.approx(55.0)
    save_figure(figure, tmp_path / "topk")
    assert (tmp_path / "topk.png").stat().st_size > 1000 and (tmp_path / "topk.pdf").is_file()


def test_topk_figure_of_an_image_track_draws_a_panel_per_pair() -> None:
    summary = topk_summary().assign(gamma=float("nan"), student="resnet20")
    other = summary.assign(teacher="resnet110", student="resnet32")
    figure = topk_figure(pd.concat([summary, other], ignore_index=True), "se")
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == ["mlp → resnet20", "resnet110 → resnet32"]


def test_topk_figure_without_kd_topk_students_names_the_fix() -> None:
    summary = topk_summary()
    with pytest.raises(ValueError, match="add kd_topk"):
        topk_figure(summary[summary["method"] == "kd"], "sd")


def ppl_summary() -> pd.DataFrame:
    """topk_summary on perplexity (accuracies dropped): at each k, τ = 4 has the lower validation
    perplexity (55 against 60) and the higher test perplexity."""
    summary = topk_summary()
    return summary.assign(best_valid_ppl=100 - 100 * summary["best_valid_acc"],
                          best_test_ppl=200 - 100 * summary["best_test_acc"]
                          ).drop(columns=["best_valid_acc", "best_test_acc"])


def test_topk_by_k_by_perplexity_chooses_the_lowest_validation_perplexity() -> None:
    chosen = topk_by_k(ppl_summary(), SCORES["ppl"]).sort_values(["seed", "k"])
    assert chosen["score"].round(6).tolist() == [150.0, 140.0, 149.0, 139.0]  # τ = 4: lowest on valid


def test_topk_figure_by_perplexity_labels_its_axis_lower_is_better() -> None:
    figure = topk_figure(ppl_summary(), "sd", SCORES["ppl"])
    (ax,) = figure.axes
    assert ax.get_ylabel() == "test perplexity (lower is better)"
    reference = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert reference[0].get_ydata()[0] == pytest.approx(145.0)  # kd's test perplexity, unscaled
    assert topk_figure(topk_summary(), "sd").axes[0].get_ylabel() == "test accuracy (%)"


def test_only_the_topk_figure_takes_a_metric(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["gain", "--summary", "s.csv", "--metric", "ppl", "--out-stem", "f"])
    assert "the gain figure shows accuracy only" in capsys.readouterr().err


def test_students_of_different_worlds_with_one_seed_number_stay_apart() -> None:
    """Seed 0 of world 0 and seed 0 of world 1 are two students: each k keeps both, and the gain
    over ce pairs each student with its own world's ce student."""
    worlds = pd.concat([topk_summary().assign(world=world) for world in (0, 1)], ignore_index=True)
    worlds.loc[worlds["world"] == 1, "best_test_acc"] += 0.10
    chosen = topk_by_k(worlds)
    assert len(chosen) == 2 * len(topk_by_k(topk_summary()))
    assert sorted(chosen.loc[chosen["k"] == 5, "score"].round(6)) == [60.0, 61.0, 70.0, 71.0]
    ce = worlds[worlds["method"] == "kd"].assign(method="ce", best_test_acc=0.5)
    gains = gain_over_baseline(pd.concat([worlds, ce], ignore_index=True))
    kd = gains[gains["method"] == "kd"].sort_values(["world", "seed"])
    assert kd["gain"].round(6).tolist() == [5.0, 5.0, 15.0, 15.0]


def estimate(where: str, label: str, rule: str, verdict: str, mean: float, low: float, high: float,
             unit: str = "pts", margin: float = 0.0) -> dict:
    return {"where": where, "label": label, "rule": rule, "verdict": verdict, "mean": mean, "low": low,
            "high": high, "n": 3, "unit": unit, "margin": margin}


def claim(claim_id: str, verdict: str, level: float | None, *estimates: dict, evidence: str = "…") -> dict:
    return {"id": claim_id, "statement": "…", "verdict": verdict, "evidence": [evidence], "level": level,
            "caveats": [], "estimates": list(estimates)}


def planted_claims() -> dict:
    """C1 (two parts, >) holds and C4 (≥, margin 0.5) fails, in points; C8 not run; C10 and C12
    unitless, C12's interval unbounded (one replicate); a claim set beside that fails."""
    return {"scope": "the `mlp8` students of the `mlp` teacher", "confidence": 0.95, "correction": "bonferroni",
            "margin": 0.5, "metric": "acc",
            "claims": [claim("C1", "holds", 0.975, estimate("γ = 0", "kd − ls", ">", "holds", 2.0, 1.0, 3.0),
                             estimate("γ = 0.9", "kd − ls", ">", "holds", 1.5, 0.5, 2.5)),
                       claim("C4", "fails", 0.975,
                             estimate("γ = 0", "kd_pt_sim − kd", "≥", "inconclusive", -0.2, -1.0, 0.6, margin=0.5),
                             estimate("γ = 0.9", "kd_pt_sim − kd", "≥", "fails", -2.0, -3.0, -1.0, margin=0.5)),
                       claim("C8", "not run", None, evidence="needs kd_topk and kd"),
                       claim("C10", "holds", 0.95, estimate("γ = 0", "Spearman(w_t of kd at the ce student's q, p_t)",
                                                            ">", "holds", 0.6, 0.4, 0.8, unit="")),
                       claim("C12", "inconclusive", 0.95, estimate(
                           "γ = 0", "big (1,000 parameters; mean p_t 0.900) − small (10 parameters; mean p_t "
                           "0.800): per-example p_t difference", ">", "inconclusive", 0.1, -math.inf, math.inf,
                           unit=""))],
            "beside": [{"teacher": "oracle", "student": "linear", "scope": "…", "claims": [
                claim("C1", "fails", 0.95, estimate("γ = 0", "kd − ls", ">", "fails", -1, -2, -0.5))]}]}


def test_verdicts_are_drawn_as_the_claims_name_them() -> None:
    assert list(VERDICT_MARKS) == [HOLDS, FAILS, INCONCLUSIVE]


def marks(ax) -> dict[str, list[float]]:
    """The rows (y) of each verdict's estimate marks."""
    return {collection.get_label(): sorted(collection.get_offsets()[:, 1]) for collection in ax.collections
            if collection.get_label() in VERDICT_MARKS and len(collection.get_offsets())}


def test_the_claims_figure_draws_each_lead_part_by_verdict_one_panel_per_unit() -> None:
    figure = claims_figure(planted_claims())
    points, unitless = figure.axes
    assert [tick.get_text() for tick in points.get_yticklabels()] == [
        "C1 γ = 0: kd − ls [>]", "C1 γ = 0.9: kd − ls [>]", "C4 γ = 0: kd_pt_sim − kd [≥]",
        "C4 γ = 0.9: kd_pt_sim − kd [≥]"]
    assert [tick.get_text() for tick in unitless.get_yticklabels()] == [
        "C10 γ = 0: Spearman(w_t of kd at the ce student's q, p_t) [>]", "C12 γ = 0: big − small [>]"]
    assert "points of test accuracy" in points.get_xlabel() and "unitless" in unitless.get_xlabel()
    # the beside set's failing C1 is not drawn: one fails mark, C4's
    assert marks(points) == {"holds": [0, 1], "inconclusive": [2], "fails": [3]}
    assert marks(unitless) == {"holds": [0], "inconclusive": [1]}
    for ax in (points, unitless):
        for verdict, mark in VERDICT_MARKS.items():
            for collection in ax.collections:
                if collection.get_label() == verdict and len(collection.get_offsets()):
                    assert to_hex(collection.get_facecolor()[0]) == mark.color
    # the ±margin band behind C4's parts (≥) only, none in the panel without a margin rule
    assert [(bar.get_x(), bar.get_width(), bar.get_y() + bar.get_height() / 2) for bar in points.patches] == [
        (-0.5, 1.0, 2.0), (-0.5, 1.0, 3.0)]
    assert len(unitless.patches) == 0
    assert [text.get_text() for text in points.texts] == ["C1 holds (97.5%)", "C4 fails (97.5%)"]
    # an unbounded interval is drawn to the axis edges
    segments = [segment for collection in unitless.collections if isinstance(collection, LineCollection)
                for segment in collection.get_segments()]
    assert all(np.isfinite(segment).all() for segment in segments)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "holds", "fails", "inconclusive", "margin ±δ (≥, ≈ rules)"]
    assert figure.get_supxlabel() == "Not run: C8 (needs kd_topk and kd)"


def test_the_claims_figure_grows_with_its_parts() -> None:
    few = planted_claims()
    many = {**few, "claims": [{**few["claims"][0], "estimates": few["claims"][0]["estimates"] * 20}]}
    assert claims_figure(many).get_size_inches()[1] > claims_figure(few).get_size_inches()[1] + 5


def test_the_claims_figure_of_claims_none_run_says_so() -> None:
    figure = claims_figure({**planted_claims(), "claims": [claim("C8", "not run", None, evidence="needs kd")]})
    assert figure.axes[0].texts[0].get_text() == "no claim has an estimate yet"
    assert figure.get_supxlabel() == "Not run: C8 (needs kd)"


def test_the_claims_figure_is_drawn_from_a_claims_file(tmp_path) -> None:
    (tmp_path / "claims.json").write_text(json.dumps(planted_claims()))  # ∞ written as Infinity
    main(["claims", "--claims", str(tmp_path / "claims.json"), "--out-stem", str(tmp_path / "claims")])
    assert (tmp_path / "claims.png").stat().st_size > 1000 and (tmp_path / "claims.pdf").is_file()


def test_each_figure_needs_its_source(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["claims", "--summary", "s.csv", "--out-stem", "f"])
    assert "the claims figure needs --claims" in capsys.readouterr().err
