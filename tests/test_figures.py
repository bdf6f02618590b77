"""Figures computed from hand-made summary tables."""
from __future__ import annotations

import pandas as pd
import pytest

from partialkd.aggregate import SCORES
from partialkd.figures import gain_over_baseline, main, topk_by_k, topk_figure
from partialkd.style import save_figure


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
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["2", "5"]
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
