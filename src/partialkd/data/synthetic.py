"""Synthetic classification world with a class-correlation knob γ (NOTES §3).

Classes come in groups; class templates share a group direction with weight √γ, so their
cosines are exactly γ within a group and 0 across groups. Labels are drawn from a known
posterior softmax(β·f̃(W x)), which gives an oracle teacher and the Bayes accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from partialkd.common.seeds import derived_seed
from partialkd.data.prepared import SPLITS, Dataset, Split

_F64 = torch.float64


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """One generator: templates w_k, their groups and the standardised link f̃ (NOTES §3)."""

    templates: Tensor  # [K, d] float64, unit-norm w_k
    groups: Tensor  # [K] int64, g(k) = k·G // K
    gamma: float
    beta: float
    link_a: tuple[float, ...]
    link_b: tuple[float, ...]
    link_mean: float  # μ_f = E f(z), z ~ N(0, 1)
    link_std: float  # σ_f = std f(z), z ~ N(0, 1)

    @property
    def num_classes(self) -> int:
        return self.templates.shape[0]

    @property
    def dim(self) -> int:
        return self.templates.shape[1]

    def link(self, z: Tensor) -> Tensor:
        """f̃(z) = (f(z) − μ_f)/σ_f with f(z) = z + Σ_m sin(a_m z + b_m), in float64."""
        z = z.to(_F64)
        a = torch.tensor(self.link_a, dtype=_F64, device=z.device)
        b = torch.tensor(self.link_b, dtype=_F64, device=z.device)
        f = z + torch.sin(z.unsqueeze(-1) * a + b).sum(-1)
        return (f - self.link_mean) / self.link_std

    def scores(self, x: Tensor) -> Tensor:
        """s(x) = β·f̃(W x), [N, K] float64: the oracle teacher's logits."""
        projections = x.to(_F64) @ self.templates.to(x.device).T
        return self.beta * self.link(projections)

    def posterior(self, x: Tensor) -> Tensor:
        """Bayes posterior p(y|x) = softmax(s(x)), [N, K] float64."""
        return torch.softmax(self.scores(x), dim=-1)


@dataclass(frozen=True, eq=False)
class SyntheticSample:
    """n draws: x [n, d] float32, labels [n] int64, posterior p(y|x) [n, K] float32."""

    x: Tensor
    labels: Tensor
    posterior: Tensor


def make_world(
    *,
    num_classes: int,
    num_groups: int,
    dim: int,
    gamma: float,
    beta: float,
    link_a: Sequence[float],
    link_b: Sequence[float],
    seed: int,
) -> SyntheticWorld:
    """Build the world; the random basis depends on `seed` only, never on γ (NOTES §3)."""
    _check_world_args(num_classes, num_groups, dim, gamma, beta, link_a, link_b)
    basis = _orthonormal_basis(dim, num_groups + num_classes, seed)
    group_dirs, class_dirs = basis[:num_groups], basis[num_groups:]
    groups = torch.arange(num_classes) * num_groups // num_classes
    # w_k = √γ·u_g(k) + √(1−γ)·e_k: unit norm, cosine γ within a group, 0 across.
    templates = math.sqrt(gamma) * group_dirs[groups] + math.sqrt(1.0 - gamma) * class_dirs
    mean, std = _link_moments(tuple(link_a), tuple(link_b))
    return SyntheticWorld(
        templates=templates,
        groups=groups,
        gamma=float(gamma),
        beta=float(beta),
        link_a=tuple(float(v) for v in link_a),
        link_b=tuple(float(v) for v in link_b),
        link_mean=mean,
        link_std=std,
    )


def sample(world: SyntheticWorld, n: int, generator: torch.Generator) -> SyntheticSample:
    """Draw x ~ N(0, I_d) and labels ~ Categorical(p(·|x)) (NOTES §3)."""
    x = _draw_x(world, n, generator)
    posterior = world.posterior(x)
    labels = torch.multinomial(posterior, 1, generator=generator).squeeze(1)
    return SyntheticSample(x=x, labels=labels, posterior=posterior.float())


def bayes_accuracy(world: SyntheticWorld, n: int, generator: torch.Generator) -> float:
    """Monte Carlo estimate of E_x[max_k p(k|x)], the accuracy of the Bayes classifier."""
    posterior = world.posterior(_draw_x(world, n, generator))
    return posterior.max(dim=-1).values.mean().item()


def _draw_x(world: SyntheticWorld, n: int, generator: torch.Generator) -> Tensor:
    """x ~ N(0, I_d) in float32; posteriors are computed from this rounded x."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return torch.randn(n, world.dim, generator=generator, dtype=torch.float32)


def _orthonormal_basis(dim: int, count: int, seed: int) -> Tensor:
    """`count` orthonormal rows in R^dim: Q of the QR of a dim×count Gaussian matrix."""
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, count, generator=generator, dtype=_F64)
    q, _ = torch.linalg.qr(gaussian)
    return q.T


def _link_moments(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float]:
    """Exact mean and std of f(z) = z + Σ_m sin(a_m z + b_m) under z ~ N(0, 1).

    Uses E sin(az+b) = sin(b)e^{−a²/2}, E z·sin(az+b) = a·cos(b)e^{−a²/2} and
    E sin(a₁z+b₁)sin(a₂z+b₂) = ½[cos(b₁−b₂)e^{−(a₁−a₂)²/2} − cos(b₁+b₂)e^{−(a₁+a₂)²/2}].
    """
    a_t, b_t = torch.tensor(a, dtype=_F64), torch.tensor(b, dtype=_F64)
    damp = torch.exp(-0.5 * a_t**2)
    mean = (torch.sin(b_t) * damp).sum()
    a_diff, a_sum = a_t[:, None] - a_t[None, :], a_t[:, None] + a_t[None, :]
    b_diff, b_sum = b_t[:, None] - b_t[None, :], b_t[:, None] + b_t[None, :]
    sin_products = 0.5 * (
        torch.cos(b_diff) * torch.exp(-0.5 * a_diff**2)
        - torch.cos(b_sum) * torch.exp(-0.5 * a_sum**2)
    )
    second_moment = 1.0 + 2.0 * (a_t * torch.cos(b_t) * damp).sum() + sin_products.sum()
    return mean.item(), math.sqrt((second_moment - mean**2).item())


def _check_world_args(
    num_classes: int,
    num_groups: int,
    dim: int,
    gamma: float,
    beta: float,
    link_a: Sequence[float],
    link_b: Sequence[float],
) -> None:
    """Raise ValueError naming the first invalid parameter."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 1 <= num_groups <= num_classes:
        raise ValueError(f"num_groups must be in [1, num_classes], got {num_groups}")
    if dim < num_groups + num_classes:
        raise ValueError(f"dim must be >= num_groups + num_classes, got {dim}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not beta > 0.0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if len(link_a) != len(link_b):
        raise ValueError(f"link_b must match link_a in length, got {len(link_b)} != {len(link_a)}")


def synthetic_dataset(*, gamma: float, num_classes: int, num_groups: int, dim: int, beta: float,
                      link_a: Sequence[float], link_b: Sequence[float], world_seed: int,
                      sizes: dict[str, int]) -> Dataset:
    """Sample the splits of one world; the same `world_seed` gives the same x for every γ."""
    world = make_world(num_classes=num_classes, num_groups=num_groups, dim=dim,
                                 gamma=gamma, beta=beta, link_a=link_a, link_b=link_b,
                                 seed=world_seed)
    splits = {}
    for index, name in enumerate(SPLITS):
        generator = torch.Generator().manual_seed(derived_seed(world_seed, index))
        drawn = sample(world, sizes[name], generator)
        splits[name] = Split(drawn.x, drawn.labels, drawn.posterior)
    bayes = float(splits["test"].posterior.max(dim=1).values.mean())
    meta = {"track": "synthetic", "gamma": gamma, "bayes_test_accuracy": bayes, "beta": beta, "dim": dim,
            "num_groups": num_groups, "link_a": list(link_a), "link_b": list(link_b),
            "world_seed": world_seed, "sizes": dict(sizes)}
    return Dataset(splits, num_classes, world.groups, world.templates.float(), meta)
