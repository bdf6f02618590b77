"""Tests for the shared distillation loss of NOTES §2, its closed-form gradient and w_t."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers.target_examples import example_target, gen, random_batch  
from torch import Tensor
from torch.testing import assert_close

from partialkd.core.losses import distillation_loss, loss_gradient, rescaling_factor
from partialkd.core.targets import TARGETS

N, K = 6, 5
LAM = 0.7
TAUS = [1.0, 4.0]


def batch(method: str, tau: float) -> tuple[Tensor, Tensor, Tensor]:
    """Student logits (float64, requiring grad), labels and `method`'s target from a teacher."""
    teacher, labels = random_batch(N, K, seed=0)
    student = 2 * torch.randn(N, K, generator=gen(1), dtype=torch.float64)
    return student.requires_grad_(), labels, example_target(method, teacher, labels, tau)


def autograd(loss_fn: Callable[[Tensor], Tensor], logits: Tensor) -> Tensor:
    (grad,) = torch.autograd.grad(loss_fn(logits).sum(), logits)
    return grad


def reference_loss(
    logits: Tensor, labels: Tensor, target: Tensor, *, lam: float, tau: float, c: float
) -> Tensor:
    """(1 − λ)·CE + λ·c·KL(ρ ‖ q^τ) written with torch's own CE and KL."""
    kl = F.kl_div(F.log_softmax(logits / tau, dim=1), target, reduction="batchmean")
    return (1 - lam) * F.cross_entropy(logits, labels) + lam * c * kl


@pytest.mark.parametrize("tau_squared", [True, False])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("method", sorted(TARGETS))
def test_loss_matches_torch_reference(method: str, tau: float, tau_squared: bool) -> None:
    logits, labels, target = batch(method, tau)
    loss = distillation_loss(logits, labels, target, lam=LAM, tau=tau, tau_squared=tau_squared)
    expected = reference_loss(
        logits, labels, target, lam=LAM, tau=tau, c=tau**2 if tau_squared else 1.0
    )
    assert loss.shape == ()
    assert_close(loss, expected)


@pytest.mark.parametrize("tau_squared", [True, False])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("method", sorted(TARGETS))
def test_closed_form_gradient_matches_autograd(method: str, tau: float, tau_squared: bool) -> None:
    logits, labels, target = batch(method, tau)
    kwargs: dict[str, Any] = dict(
        labels=labels, target=target, lam=LAM, tau=tau, tau_squared=tau_squared
    )
    expected = N * autograd(partial(distillation_loss, **kwargs), logits)
    assert_close(loss_gradient(logits, **kwargs), expected)


@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("method", ["kd_pt", "kd_pt_sim"])
def test_true_class_gradient_equals_kd(method: str, tau: float) -> None:
    logits, labels, target = batch(method, tau)
    kd_target = batch("kd", tau)[2]
    grad, kd_grad = (
        autograd(partial(distillation_loss, labels=labels, target=rho, lam=LAM, tau=tau), logits)
        for rho in (target, kd_target)
    )
    is_true = F.one_hot(labels, K).bool()
    assert_close(grad[is_true], kd_grad[is_true], rtol=0, atol=1e-14)  # equal up to rounding
    assert not torch.allclose(grad[~is_true], kd_grad[~is_true])


@pytest.mark.parametrize("tau_squared", [True, False])
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("method", sorted(TARGETS))
def test_rescaling_factor_matches_autograd(method: str, tau: float, tau_squared: bool) -> None:
    logits, labels, target = batch(method, tau)
    kwargs: dict[str, Any] = dict(
        labels=labels, target=target, lam=LAM, tau=tau, tau_squared=tau_squared
    )
    grad = autograd(partial(distillation_loss, **kwargs), logits)
    ce_grad = autograd(partial(F.cross_entropy, target=labels), logits)
    expected = (grad / ce_grad).gather(1, labels[:, None]).squeeze(1)
    assert_close(rescaling_factor(logits, **kwargs), expected)


@pytest.mark.parametrize("tau_squared", [True, False])
@pytest.mark.parametrize("tau", TAUS)
def test_kd_rescaling_factor_closed_form(tau: float, tau_squared: bool) -> None:
    logits, labels, target = batch("kd", tau)
    true_class = labels[:, None]
    q, q_tau = (torch.softmax(logits / s, 1).gather(1, true_class).squeeze(1) for s in (1.0, tau))
    p_tau = target.gather(1, true_class).squeeze(1)
    c = tau**2 if tau_squared else 1.0
    expected = (1 - LAM) + LAM * (c / tau) * (p_tau - q_tau) / (1 - q)
    w = rescaling_factor(logits, labels, target, lam=LAM, tau=tau, tau_squared=tau_squared)
    assert_close(w, expected)
    if tau == 1.0:  # NOTES §2: w_t = 1 − λ(1 − p_t)/(1 − q_t)
        assert_close(w, 1 - LAM * (1 - p_tau) / (1 - q))


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_ce_target_is_plain_cross_entropy_at_tau_1(lam: float) -> None:
    logits, labels, target = batch("ce", 1.0)
    assert_close(
        distillation_loss(logits, labels, target, lam=lam, tau=1.0), F.cross_entropy(logits, labels)
    )
    assert_close(
        rescaling_factor(logits, labels, target, lam=lam, tau=1.0),
        torch.ones(N, dtype=logits.dtype),
    )


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_ls_target_is_label_smoothing_at_tau_1(eps: float) -> None:
    """Equal up to the constant ε·H(uniform) = ε·log K, which KL leaves out and CE keeps."""
    logits, labels, target = batch("ls", 1.0)
    smoothed = partial(F.cross_entropy, target=labels, label_smoothing=eps)
    ours = partial(distillation_loss, labels=labels, target=target, lam=eps, tau=1.0)
    assert_close(ours(logits) + eps * math.log(K), smoothed(logits))
    assert_close(autograd(ours, logits), autograd(smoothed, logits))


def test_zero_target_entries_and_extreme_logits_stay_finite() -> None:
    logits = torch.tensor([[1e3, 0, -1e3], [0, -800, 800]], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1])
    target = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], dtype=torch.float64)
    loss = partial(distillation_loss, labels=labels, target=target, lam=0.5, tau=2.0)
    assert_close(loss(logits), reference_loss(logits, labels, target, lam=0.5, tau=2.0, c=4.0))
    assert bool(torch.isfinite(autograd(loss, logits)).all())


@pytest.mark.parametrize("shared_target", [True, False])
def test_stacked_models_match_one_model_at_a_time(shared_target: bool) -> None:
    lams, taus = torch.tensor([0.0, 0.5, 0.9]), torch.tensor([1.0, 2.0, 4.0])
    teacher, labels = random_batch(N, K)
    stacked = torch.randn(3, N, K, generator=gen(2), dtype=torch.float64, requires_grad=True)
    targets = [example_target("kd_pt", teacher, labels, float(tau)) for tau in taus]
    if shared_target:
        target, targets = targets[0], [targets[0]] * 3
    else:
        target = torch.stack(targets)
    kwargs: dict[str, Any] = dict(labels=labels, target=target, lam=lams, tau=taus)
    for fn in (distillation_loss, loss_gradient, rescaling_factor):
        one_at_a_time = [
            fn(stacked[s], labels, targets[s], lam=float(lams[s]), tau=float(taus[s]))
            for s in range(3)
        ]
        assert_close(fn(stacked, **kwargs), torch.stack(one_at_a_time))
    assert_close(
        N * autograd(partial(distillation_loss, **kwargs), stacked),
        loss_gradient(stacked, **kwargs),
    )


# (overrides of the valid inputs below, parameter the error must name)
BAD_INPUTS: list[tuple[dict[str, Any], str]] = [
    ({"lam": -0.1}, "lam"),
    ({"lam": 1.1}, "lam"),
    ({"lam": math.nan}, "lam"),
    ({"lam": torch.tensor([0.5, 1.5])}, "lam"),
    ({"lam": torch.tensor([0.5, 0.5, 0.5])}, "lam"),
    ({"tau": 0.0}, "tau"),
    ({"tau": -2.0}, "tau"),
    ({"tau": torch.tensor([1.0, 0.0])}, "tau"),
    ({"tau": torch.tensor([1.0])}, "tau"),
    ({"labels": torch.tensor([0, 1, 2])}, "labels"),
    ({"labels": torch.tensor([0, 1, 2, K])}, "labels"),
    ({"labels": torch.tensor([0.0, 1, 2, 3])}, "labels"),
    ({"target": torch.full((4, K + 1), 1 / (K + 1))}, "target"),
    ({"target": torch.full((3, 4, K), 1 / K)}, "target"),
    ({"student_logits": torch.zeros(K)}, "student_logits"),
    ({"student_logits": torch.zeros(1, 2, 4, K)}, "student_logits"),
    ({"student_logits": torch.zeros(4, K, dtype=torch.long)}, "student_logits"),
]


@pytest.mark.parametrize("fn", [distillation_loss, loss_gradient, rescaling_factor])
@pytest.mark.parametrize(("overrides", "name"), BAD_INPUTS)
def test_bad_input_raises_naming_the_parameter(
    fn: Callable[..., Tensor], overrides: dict[str, Any], name: str
) -> None:
    """Valid inputs are a stack of 2 models; each case breaks one of them."""
    kwargs: dict[str, Any] = {
        "student_logits": torch.zeros(2, 4, K),
        "labels": torch.tensor([0, 1, 2, 3]),
        "target": torch.full((4, K), 1 / K),
        "lam": torch.tensor([0.2, 0.8]),
        "tau": 2.0,
    }
    with pytest.raises(ValueError, match=rf"^{name}:"):
        fn(**(kwargs | overrides))


def test_per_model_values_need_stacked_logits() -> None:
    logits, labels, target = batch("ls", 1.0)
    with pytest.raises(ValueError, match=r"^lam:"):
        distillation_loss(logits, labels, target, lam=torch.tensor([0.5]), tau=1.0)
