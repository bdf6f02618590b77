"""Tests for the gradient-rescaling analysis (NOTES §2 w_t formula, §5, claim C10)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from torch import Tensor

from partialkd.analysis.rescaling import (X_LABEL, Y_LABEL, binned_rescaling, check_agreement,
                                          per_example_rescaling, rescaling_figure, robust_limits, spearman)
from partialkd.core.grid import Variant
from partialkd.reporting.style import save_figure
from helpers.rescaling_views import planted_views

N, K = 200, 7
METHODS = ("kd", "kd_pt", "ls")


def random_logits(seed: int, n: int = N, scale: float = 2.0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, K, generator=generator, dtype=torch.float64)


def random_labels(seed: int, n: int = N) -> Tensor:
    return torch.randint(0, K, (n,), generator=torch.Generator().manual_seed(seed))


def rising_teacher(n: int = N) -> tuple[Tensor, Tensor, Tensor]:
    """Student logits identical for every example (q_t fixed), label 0, and teacher logits whose
    true-class entry rises across examples, so p_t rises strictly."""
    student = torch.tensor([[0.5, 0.2, -0.3, 0.0, 0.1, -0.1, 0.3]], dtype=torch.float64)
    teacher = torch.zeros(n, K, dtype=torch.float64)
    teacher[:, 0] = torch.linspace(-2.0, 6.0, n, dtype=torch.float64)
    return student.expand(n, K).clone(), teacher, torch.zeros(n, dtype=torch.long)


def frame_for(method: str, lam: float = 0.9, tau: float = 4.0, **kwargs: bool) -> pd.DataFrame:
    return per_example_rescaling(
        random_logits(1), random_logits(2, scale=3.0), random_labels(3),
        Variant(method, lam, tau), **kwargs,
    )


@pytest.mark.parametrize("tau_squared", [True, False])
@pytest.mark.parametrize("lam", [0.5, 0.9])
@pytest.mark.parametrize("tau", [1.0, 4.0])
@pytest.mark.parametrize("method", METHODS)
def test_formula_matches_autograd(method: str, tau: float, lam: float, tau_squared: bool) -> None:
    frame = frame_for(method, lam, tau, tau_squared=tau_squared)
    assert len(frame) == N and frame.attrs["dropped"] == 0
    assert check_agreement(frame, atol=1e-8) <= 1e-8
    assert frame["w_formula"].std() > 0  # random logits: not a trivially constant factor


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_kd_and_kd_pt_rescale_identically(tau: float) -> None:
    kd, kd_pt = frame_for("kd", tau=tau), frame_for("kd_pt", tau=tau)
    np.testing.assert_array_equal(kd["w_formula"], kd_pt["w_formula"])
    np.testing.assert_allclose(kd["w_autograd"], kd_pt["w_autograd"], rtol=0, atol=1e-12)


def test_ls_target_is_uniform_on_the_true_class() -> None:
    np.testing.assert_allclose(frame_for("ls")["rho_t"], 1 / K, rtol=0, atol=1e-15)


@pytest.mark.parametrize("lam", [0.5, 0.9])
def test_tau_one_reduces_to_simple_form(lam: float) -> None:
    frame = frame_for("kd", lam=lam, tau=1.0)
    simple = 1 - lam * (1 - frame["p_t"]) / (1 - frame["q_t"])
    np.testing.assert_allclose(frame["w_formula"], simple, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(frame["p_t"], frame["p_tau_t"])


def test_p_tau_t_is_tempered_and_p_t_is_not() -> None:
    teacher = random_logits(2, scale=3.0)
    frame = frame_for("kd", tau=4.0)
    labels = random_labels(3)
    np.testing.assert_allclose(frame["p_tau_t"], (teacher / 4).softmax(1)[torch.arange(N), labels])
    np.testing.assert_allclose(frame["p_t"], teacher.softmax(1)[torch.arange(N), labels])


def test_confident_student_examples_are_dropped_and_counted() -> None:
    student, teacher, labels = random_logits(1), random_logits(2), random_labels(3)
    student[[4, 9], labels[[4, 9]]] = 40.0  # 1 − q_t ≈ K·e⁻⁴⁰, far below 1e-6
    frame = per_example_rescaling(student, teacher, labels, Variant("kd", 0.9, 1.0))
    assert frame.attrs["dropped"] == 2 and len(frame) == N - 2
    assert {4, 9}.isdisjoint(frame.index) and np.isfinite(frame["w_formula"]).all()


def test_examples_computed_in_chunks_give_the_same_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    student, teacher, labels = random_logits(1), random_logits(2), random_labels(3)
    student[[4, 150], labels[[4, 150]]] = 40.0  # dropped examples in two different chunks
    whole = per_example_rescaling(student, teacher, labels, Variant("kd", 0.9, 4.0))
    monkeypatch.setattr("partialkd.analysis.rescaling.CHUNK_EXAMPLES", 64)
    chunked = per_example_rescaling(student, teacher, labels, Variant("kd", 0.9, 4.0))
    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked.attrs == whole.attrs and whole.attrs["dropped"] == 2


def test_constant_confidence_teacher_gives_flat_w() -> None:
    """Every row is one base vector permuted so its first entry sits on the label: p_t and q_t
    are the same for every example, and so is w_t."""
    labels = random_labels(3)
    base_student = torch.tensor([1.0, 0.5, -0.2, 0.3, 0.0, -1.0, 0.4], dtype=torch.float64)
    base_teacher = torch.tensor([3.0, 1.0, 0.0, -1.0, 0.5, 0.2, -0.5], dtype=torch.float64)
    rows = torch.stack([torch.roll(torch.arange(K), int(t)) for t in labels])
    frame = per_example_rescaling(base_student[rows], base_teacher[rows], labels,
                                  Variant("kd", 0.9, 4.0))
    binned = binned_rescaling(frame, bins=10)
    np.testing.assert_allclose(binned["w_mean"], binned["w_mean"].iloc[0], rtol=1e-12)
    np.testing.assert_allclose(binned["w_sd"], 0.0, atol=1e-12)


def test_spearman_is_nan_without_variation_in_p_t() -> None:
    student, teacher, labels = rising_teacher()
    teacher = teacher[:1].expand(N, K)  # every example has the same teacher row
    frame = per_example_rescaling(student, teacher, labels, Variant("kd", 0.9, 4.0))
    assert frame["p_t"].nunique() == 1
    assert math.isnan(spearman(frame))


def test_rising_teacher_confidence_gives_spearman_one_for_kd() -> None:
    frame = per_example_rescaling(*rising_teacher(), Variant("kd", 0.9, 4.0))
    assert frame["q_t"].nunique() == 1 and frame["p_t"].is_monotonic_increasing
    assert spearman(frame) == pytest.approx(1.0, abs=1e-12)
    assert frame["w_formula"].is_monotonic_increasing


def test_fixed_reference_student_and_own_student_give_opposite_correlations() -> None:
    """C10 as the paper means it: at a q independent of the teacher, kd's w_t rises with p_t;
    at a student whose q outruns the teacher's (1.3·v) it falls (NOTES §2: the term
    (ρ_t − q^τ_t)/(1 − q_t))."""
    teacher, labels, reference, own = planted_views()
    kd = Variant("kd", 0.9, 4.0)
    fixed = per_example_rescaling(reference, teacher, labels, kd)
    trained = per_example_rescaling(own, teacher, labels, kd)
    assert spearman(fixed) > 0.6
    assert spearman(trained) < -0.4
    assert max(check_agreement(fixed, atol=1e-8), check_agreement(trained, atol=1e-8)) <= 1e-8


def test_ls_rescaling_ignores_the_teacher() -> None:
    student, teacher, labels = rising_teacher()
    frame = per_example_rescaling(student, teacher, labels, Variant("ls", 0.9, 4.0))
    other = per_example_rescaling(student, -teacher, labels, Variant("ls", 0.9, 4.0))
    assert frame["w_formula"].nunique() == 1 and math.isnan(spearman(frame))
    np.testing.assert_array_equal(frame["w_formula"], other["w_formula"])


def test_spearman_averages_ties() -> None:
    frame = pd.DataFrame({"p_t": [0.1, 0.2, 0.2, 0.3], "w_formula": [1.0, 3.0, 2.0, 4.0]})
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): Pearson = 4.5 / sqrt(4.5 · 5)
    assert spearman(frame) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    assert spearman(frame.assign(w_formula=-frame["w_formula"])) == pytest.approx(
        -4.5 / math.sqrt(4.5 * 5.0))


@pytest.mark.parametrize("bins", [1, 7, 10])
def test_binned_rescaling_has_equal_count_increasing_bins(bins: int) -> None:
    frame = frame_for("kd")
    binned = binned_rescaling(frame, bins=bins)
    assert len(binned) == bins and binned["count"].sum() == N
    assert binned["count"].max() - binned["count"].min() <= 1
    assert binned["p_t_mean"].is_monotonic_increasing
    assert (binned["w_p10"] <= binned["w_p90"]).all()  # the mean may lie outside: heavy tails
    first = frame.nsmallest(binned["count"].iloc[0], "p_t")["w_formula"]
    assert binned["w_mean"].iloc[0] == pytest.approx(first.mean())


def test_binned_rescaling_rejects_more_bins_than_examples() -> None:
    with pytest.raises(ValueError, match="bins"):
        binned_rescaling(frame_for("kd").head(5), bins=10)


def test_check_agreement_raises_on_planted_mismatch() -> None:
    frame = frame_for("kd").copy()
    worst = frame.index[17]
    frame.loc[worst, "w_autograd"] += 1e-3
    frame.loc[frame.index[3], "w_autograd"] += 1e-5
    with pytest.raises(ValueError, match=f"example {worst}\\b"):
        check_agreement(frame)
    assert check_agreement(frame, atol=1e-2) == pytest.approx(1e-3, rel=1e-6)


def test_check_agreement_raises_on_nan() -> None:
    frame = frame_for("kd").copy()
    frame.loc[frame.index[0], "w_autograd"] = np.nan
    with pytest.raises(ValueError, match=f"example {frame.index[0]}\\b"):
        check_agreement(frame)


def test_rescaling_figure_draws_one_titled_panel_per_view(tmp_path: Path) -> None:
    teacher, labels, reference, own = planted_views()
    panels = {title: {m: per_example_rescaling(student, teacher, labels, Variant(m, 0.9, 4.0))
                      for m in METHODS}
              for title, student in (("fixed reference", reference), ("own student", own))}
    figure = rescaling_figure(panels, bins=8)
    assert [axes.get_title() for axes in figure.axes] == ["fixed reference", "own student"]
    assert [axes.get_xlabel() for axes in figure.axes] == [X_LABEL] * 2
    assert X_LABEL == "teacher confidence on the true class p_t"
    assert figure.axes[0].get_ylabel() == Y_LABEL == "gradient rescaling w_t (KD ÷ CE gradient)"
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["CE (w_t = 1)", "ls", "kd", "kd_pt"]
    assert all(len(axes.collections) == 3 for axes in figure.axes)  # a 10–90% band per method
    # the over-confident own student's w_t spans more than SYMLOG_SPAN: symlog, the reference linear
    assert [axes.get_yscale() for axes in figure.axes] == ["linear", "symlog"]
    for axes, frames in zip(figure.axes, panels.values()):
        medians = np.concatenate([binned_rescaling(f, 8)["w_median"] for f in frames.values()])
        low, high = axes.get_ylim()
        assert low < medians.min() and medians.max() < high
    save_figure(figure, tmp_path / "rescaling")
    assert (tmp_path / "rescaling.pdf").stat().st_size > 0
    assert imread(tmp_path / "rescaling.png").shape[2] in (3, 4)


def test_robust_limits_cover_the_medians_and_clip_exploding_bands() -> None:
    """A 1/(1 − q_t) tail (band down to −25,000) must not set the axis; medians and w_t = 1 do."""
    binned = pd.DataFrame({"w_median": [0.5, 2.0, 3.0], "w_p10": [-25_000.0, 1.5, 2.5],
                           "w_p90": [0.8, 2.5, 3.2]})
    # medians and 1 span [0.5, 3]: the bands may reach 1.25 beyond; [−0.75, 3.2] padded by 5%
    assert robust_limits([binned]) == pytest.approx((-0.75 - 0.05 * 3.95, 3.2 + 0.05 * 3.95))
    above = binned.assign(w_median=[4.0, 5.0, 6.0], w_p10=[3.9, 4.9, 5.9], w_p90=[4.1, 5.1, 6.1])
    assert robust_limits([above])[0] < 1.0  # the CE line stays in view
    with pytest.raises(ValueError, match="no panel"):
        rescaling_figure({})
