"""Logit geometry (NOTES §5): similarity matrices, their summaries and figures."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from torch import Tensor

from partialkd.analysis.geometry import (CORRELATION_LABEL, block_contrast, correlation_bars, cosine_matrix,
                                         group_order, matrix_correlation, reorder, similarity_heatmaps,
                                         teacher_probability_correlation)
from partialkd.reporting.style import save_figure

K, GROUPS = 12, 3


def planted_teacher(seed: int = 0, noise: float = 0.2) -> tuple[Tensor, Tensor]:
    """Class vectors = group template + small noise; classes shuffled so groups are scattered."""
    g = torch.Generator().manual_seed(seed)
    groups = torch.arange(K) % GROUPS
    groups = groups[torch.randperm(K, generator=g)]
    templates = torch.randn(GROUPS, 16, generator=g)
    weights = templates[groups] + noise * torch.randn(K, 16, generator=g)
    return weights, groups



def test_cosine_matrix_known_values() -> None:
    weights = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    cos = cosine_matrix(weights)
    assert cos.dtype == torch.float64
    expected = torch.tensor([[1, 0, 1 / math.sqrt(2), -1], [0, 1, 1 / math.sqrt(2), 0],
                             [1 / math.sqrt(2), 1 / math.sqrt(2), 1, -1 / math.sqrt(2)],
                             [-1, 0, -1 / math.sqrt(2), 1]], dtype=torch.float64)
    torch.testing.assert_close(cos, expected)


def test_cosine_matrix_unit_diagonal_and_symmetric() -> None:
    cos = cosine_matrix(torch.randn(7, 5, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(cos.diagonal(), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(cos, cos.T)


def test_cosine_matrix_refuses_zero_row() -> None:
    weights = torch.ones(4, 3)
    weights[2] = 0
    with pytest.raises(ValueError, match="class 2"):
        cosine_matrix(weights)


def test_group_order_is_stable_and_contiguous() -> None:
    order = group_order(torch.tensor([2, 0, 1, 0, 2, 1]))
    assert order.tolist() == [1, 3, 2, 5, 0, 4]
    matrix = torch.arange(36.0).reshape(6, 6)
    assert reorder(matrix, order)[0, 1] == matrix[1, 3]


def test_planted_teacher_shows_blocks_after_ordering() -> None:
    weights, groups = planted_teacher()
    assert (groups[1:] != groups[:-1]).sum() > GROUPS - 1  # not contiguous before ordering
    order = group_order(groups)
    cos = reorder(cosine_matrix(weights), order)
    size = K // GROUPS
    for a in range(GROUPS):
        for b in range(GROUPS):
            block = cos[a * size:(a + 1) * size, b * size:(b + 1) * size]
            if a == b:
                assert block.min() > 0.8
            else:
                assert block.abs().max() < 0.7
    assert block_contrast(cosine_matrix(weights), groups) > 0.5


def test_block_contrast_near_zero_without_structure() -> None:
    weights = torch.randn(K, 64, generator=torch.Generator().manual_seed(2))
    assert abs(block_contrast(cosine_matrix(weights), torch.arange(K) % GROUPS)) < 0.1


def test_matrix_correlation_extremes_and_invariance() -> None:
    g = torch.Generator().manual_seed(3)
    a = cosine_matrix(torch.randn(30, 8, generator=g))
    b = cosine_matrix(torch.randn(30, 8, generator=g))
    assert matrix_correlation(a, a) == pytest.approx(1.0)
    negated = -a + 2 * torch.eye(30, dtype=a.dtype)  # negated off-diagonal, unit diagonal kept
    assert matrix_correlation(a, negated) == pytest.approx(-1.0)
    assert abs(matrix_correlation(a, b)) < 0.1
    perm = torch.randperm(30, generator=g)
    c = 0.5 * a + b
    permuted = matrix_correlation(reorder(a, perm), reorder(c, perm))
    assert permuted == pytest.approx(matrix_correlation(a, c))


def planted_logits(n: int = 2000) -> tuple[Tensor, Tensor]:
    """A confident true-class spike plus a per-example factor shared by the classes of a group."""
    g = torch.Generator().manual_seed(4)
    groups = torch.arange(K) % GROUPS
    labels = torch.randint(K, (n,), generator=g)
    shared = torch.randn(n, GROUPS, generator=g)[:, groups]
    logits = 6.0 * torch.nn.functional.one_hot(labels, K) + shared + 0.3 * torch.randn(n, K, generator=g)
    return logits, groups


def test_teacher_probability_correlation_shape_and_symmetry() -> None:
    logits, _ = planted_logits(300)
    corr = teacher_probability_correlation(logits, tau=2.0)
    assert corr.shape == (K, K) and corr.dtype == torch.float64
    torch.testing.assert_close(corr, corr.T)
    torch.testing.assert_close(corr.diagonal(), torch.ones(K, dtype=torch.float64))


def test_teacher_probability_correlation_blocks_appear_at_high_tau() -> None:
    logits, groups = planted_logits()
    low = block_contrast(teacher_probability_correlation(logits, tau=0.25), groups)
    high = block_contrast(teacher_probability_correlation(logits, tau=10.0), groups)
    assert abs(low) < 0.02
    assert high > 0.15
    within = (groups[:, None] == groups[None, :]) & ~torch.eye(K, dtype=torch.bool)
    assert teacher_probability_correlation(logits, tau=10.0)[within].mean() > 0


def test_teacher_probability_correlation_refuses_constant_class() -> None:
    logits = torch.randn(50, 4)
    logits[:, 1] = -1e4  # probability underflows to exactly 0 everywhere
    with pytest.raises(ValueError, match="class 1"):
        teacher_probability_correlation(logits, tau=1.0)


def test_similarity_heatmaps_build_and_save(tmp_path) -> None:
    weights, groups = planted_teacher()
    g = torch.Generator().manual_seed(5)
    names = ("teacher", "ce", "ls", "kd_sim", "kd", "kd_pt_sim")
    matrices = {name: cosine_matrix(weights + scale * torch.randn(weights.shape, generator=g))
                for name, scale in zip(names, (0.0, 0.5, 3.0, 0.3, 0.4, 0.2))}
    figure = similarity_heatmaps(matrices, groups, {n: f"student: {n}" for n in names[1:]})
    shown = [ax for ax in figure.axes if ax.get_visible() and ax.images]
    assert len(shown) == 6 and [ax.get_title() for ax in shown][:2] == ["teacher", "student: ce"]
    assert len({ax.images[0].get_clim() for ax in shown}) == 1  # one shared, centred scale
    low, high = shown[0].images[0].get_clim()
    assert low == -high
    save_figure(figure, tmp_path / "heatmaps")
    assert (tmp_path / "heatmaps.png").stat().st_size > 0 and (tmp_path / "heatmaps.pdf").exists()


def test_similarity_heatmaps_hide_class_ticks_when_many_classes() -> None:
    groups = torch.arange(40) % 5
    figure = similarity_heatmaps({"teacher": cosine_matrix(torch.randn(40, 6))}, groups)
    assert len(figure.axes[0].get_xticks()) == 0
    plt.close(figure)


def test_correlation_bars_build_and_save(tmp_path) -> None:
    frame = pd.DataFrame([{"method": m, "seed": s, "correlation": base + 0.05 * s}
                          for m, base in (("kd", 0.8), ("ls", 0.1), ("ce", 0.4), ("kd_sim", 0.85))
                          for s in range(3)])
    figure = correlation_bars(frame)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ce", "ls", "kd", "kd_sim"]
    assert ax.get_ylabel().replace("\n", " ") == CORRELATION_LABEL
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.45, 0.15, 0.85, 0.9])
    save_figure(figure, tmp_path / "bars")
    assert (tmp_path / "bars.png").exists() and (tmp_path / "bars.pdf").exists()


def test_correlation_bars_refuse_missing_columns() -> None:
    with pytest.raises(ValueError, match="seed"):
        correlation_bars(pd.DataFrame({"method": ["kd"], "correlation": [0.5]}))
