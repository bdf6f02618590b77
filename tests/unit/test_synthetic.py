"""Tests for the synthetic generator of NOTES §3."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from partialkd.data.synthetic import SyntheticWorld, bayes_accuracy, make_world, sample

GAMMAS = (0.0, 0.3, 0.6, 0.9)
# Pilot sizes and link constants from NOTES §3.
PILOT: dict[str, Any] = dict(
    num_classes=20,
    num_groups=4,
    dim=30,
    beta=3.0,
    link_a=(0.5, 1.0, 1.5, 2.0, 2.5),
    link_b=(0.0, 1.0, 2.0, 3.0, 4.0),
)


def pilot_world(gamma: float, seed: int = 0) -> SyntheticWorld:
    return make_world(gamma=gamma, seed=seed, **PILOT)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def group_masks(world: SyntheticWorld) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [K, K] masks of within-group (off-diagonal) and across-group class pairs."""
    same = world.groups[:, None] == world.groups[None, :]
    off_diagonal = ~torch.eye(world.num_classes, dtype=torch.bool)
    return same & off_diagonal, ~same


@pytest.mark.parametrize("gamma", GAMMAS)
def test_template_cosines_are_exactly_gamma_within_and_zero_across(gamma: float) -> None:
    world = pilot_world(gamma)
    gram = world.templates @ world.templates.T
    within, across = group_masks(world)
    assert (gram.diagonal() - 1.0).abs().max() < 1e-10
    assert (gram[within] - gamma).abs().max() < 1e-10
    assert gram[across].abs().max() < 1e-10


def test_groups_are_contiguous_blocks() -> None:
    world = pilot_world(0.5)
    assert world.groups.tolist() == [k * 4 // 20 for k in range(20)]
    assert (world.num_classes, world.dim) == (20, 30)


def test_score_correlation_tracks_gamma() -> None:
    """Within-group correlation of s_k(x) on data rises with γ; across-group stays ≈ 0."""
    within_corr = []
    for gamma in GAMMAS:
        world = pilot_world(gamma)
        corr = torch.corrcoef(world.scores(sample(world, 20_000, gen(1)).x).T)
        within, across = group_masks(world)
        within_corr.append(corr[within].mean().item())
        assert abs(corr[across].mean().item()) < 0.01
    assert within_corr[0] == pytest.approx(0.0, abs=0.01)
    assert all(lo < hi for lo, hi in zip(within_corr, within_corr[1:]))


def test_link_standardisation_matches_monte_carlo() -> None:
    world = pilot_world(0.0)
    values = world.link(torch.randn(1_000_000, generator=gen(2), dtype=torch.float64))
    assert values.mean().item() == pytest.approx(0.0, abs=5e-3)
    assert values.std().item() == pytest.approx(1.0, abs=5e-3)


def test_link_moments_match_gauss_hermite_quadrature() -> None:
    world = pilot_world(0.0)
    nodes, weights = np.polynomial.hermite_e.hermegauss(100)
    weights = weights / weights.sum()
    values = world.link(torch.from_numpy(nodes)).numpy()
    assert weights @ values == pytest.approx(0.0, abs=1e-10)
    assert weights @ values**2 == pytest.approx(1.0, abs=1e-10)


def test_link_without_sines_is_identity() -> None:
    world = make_world(**{**PILOT, "link_a": (), "link_b": ()}, gamma=0.0, seed=0)
    assert (world.link_mean, world.link_std) == (0.0, 1.0)


def test_sample_shapes_dtypes_and_posterior_rows() -> None:
    world = pilot_world(0.3)
    drawn = sample(world, 500, gen(3))
    assert drawn.x.shape == (500, 30) and drawn.x.dtype == torch.float32
    assert drawn.posterior.shape == (500, 20) and drawn.posterior.dtype == torch.float32
    assert drawn.labels.shape == (500,) and drawn.labels.dtype == torch.int64
    torch.testing.assert_close(drawn.posterior.sum(1), torch.ones(500), atol=1e-6, rtol=0)
    torch.testing.assert_close(drawn.posterior, world.posterior(drawn.x).float())


def test_label_frequencies_match_mean_posterior() -> None:
    drawn = sample(pilot_world(0.6), 50_000, gen(4))
    observed = torch.bincount(drawn.labels, minlength=20).double()
    expected = drawn.posterior.double().sum(0)
    chi_square = ((observed - expected) ** 2 / expected).sum().item()
    assert chi_square < 50.0  # 19 degrees of freedom: P(χ² > 50) ≈ 1e-4


def test_same_seed_is_deterministic_and_different_seed_differs() -> None:
    first, again, other = pilot_world(0.3), pilot_world(0.3), pilot_world(0.3, seed=1)
    assert torch.equal(first.templates, again.templates)
    assert not torch.allclose(first.templates, other.templates)
    a, b = sample(first, 100, gen(5)), sample(first, 100, gen(5))
    for field in ("x", "labels", "posterior"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.x, sample(first, 100, gen(6)).x)


def test_gamma_changes_only_the_templates() -> None:
    """Same seed → same basis: w_k(γ) = √γ·w_k(1) + √(1−γ)·w_k(0)."""
    pure_class, pure_group = pilot_world(0.0), pilot_world(1.0)
    for gamma in GAMMAS:
        world = pilot_world(gamma)
        mixed = gamma**0.5 * pure_group.templates + (1 - gamma) ** 0.5 * pure_class.templates
        torch.testing.assert_close(world.templates, mixed, atol=1e-12, rtol=0)
        assert torch.equal(world.groups, pure_class.groups)
        assert (world.link_mean, world.link_std) == (pure_class.link_mean, pure_class.link_std)


def test_bayes_accuracy_falls_as_gamma_grows() -> None:
    accuracies = [bayes_accuracy(pilot_world(gamma), 50_000, gen(7)) for gamma in GAMMAS]
    print("\nBayes accuracy by gamma:", {g: round(a, 4) for g, a in zip(GAMMAS, accuracies)})
    assert all(hi > lo for hi, lo in zip(accuracies, accuracies[1:]))
    assert accuracies[-1] > 1 / 20


def test_bayes_accuracy_matches_sampled_label_accuracy() -> None:
    world = pilot_world(0.3)
    drawn = sample(world, 50_000, gen(8))
    hits = (drawn.posterior.argmax(1) == drawn.labels).double().mean().item()
    assert hits == pytest.approx(bayes_accuracy(world, 50_000, gen(9)), abs=0.01)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"gamma": -0.1}, "gamma"),
        ({"gamma": 1.1}, "gamma"),
        ({"dim": 23}, "dim"),
        ({"num_groups": 0}, "num_groups"),
        ({"num_groups": 21}, "num_groups"),
        ({"num_classes": 1, "num_groups": 1}, "num_classes"),
        ({"beta": 0.0}, "beta"),
        ({"link_b": (0.0,)}, "link_b"),
    ],
)
def test_make_world_rejects_invalid_arguments(override: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must"):
        make_world(**{**PILOT, "gamma": 0.5, "seed": 0, **override})


@pytest.mark.parametrize("draw", [sample, bayes_accuracy])
def test_rejects_non_positive_n(draw: Any) -> None:
    with pytest.raises(ValueError, match="^n must"):
        draw(pilot_world(0.5), 0, gen(0))
