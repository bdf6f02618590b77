"""The one distillation loss every method shares, and its closed-form gradient (NOTES §2).

    L = (1 − λ)·CE(y, q) + λ·c(τ)·KL(ρ ‖ q^τ),   q = softmax(z),  q^τ = softmax(z/τ),

with c(τ) = τ² (Hinton) or 1, and ρ a target from `partialkd.core.targets`. Student logits are
[N, K] for one model or [S, N, K] for a stack of S models trained together; then λ and τ are
floats or one value per model ([S]), and ρ is shared ([N, K]) or per model ([S, N, K]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from partialkd.core.targets import check_labels, check_positive


@dataclass(frozen=True, eq=False)
class _Batch:
    """Validated inputs; λ, τ, c(τ) shaped [1, 1] or [S, 1, 1] to broadcast over [..., N, K]."""

    logits: Tensor  # z, [N, K] or [S, N, K]
    labels: Tensor  # t, [N] int64
    target: Tensor  # ρ, [N, K] or [S, N, K]
    lam: Tensor
    tau: Tensor
    scale: Tensor  # c(τ)

    @property
    def onehot(self) -> Tensor:
        """y, [N, K]."""
        return F.one_hot(self.labels, self.logits.shape[-1]).to(self.logits.dtype)

    def at_labels(self, values: Tensor) -> Tensor:
        """values[..., n, t_n] of [N, K] or [S, N, K] values: [N] or [S, N]."""
        index = self.labels.expand(*values.shape[:-1])[..., None]
        return values.gather(-1, index).squeeze(-1)


def distillation_loss(
    student_logits: Tensor,
    labels: Tensor,
    target: Tensor,
    *,
    lam: float | Tensor,
    tau: float | Tensor,
    tau_squared: bool = True,
) -> Tensor:
    """L averaged over the batch: a scalar for [N, K] logits, one loss per model [S] if stacked."""
    batch = _prepare(student_logits, labels, target, lam=lam, tau=tau, tau_squared=tau_squared)
    cross_entropy = -batch.at_labels(batch.logits.log_softmax(-1))
    # KL(ρ ‖ q^τ) per example, with 0·log 0 = 0 and a stable log q^τ.
    log_q_tau = (batch.logits / batch.tau).log_softmax(-1)
    kl = (batch.target.xlogy(batch.target) - batch.target * log_q_tau).sum(-1)
    lam, scale = batch.lam[..., 0], batch.scale[..., 0]  # [1] or [S, 1], per example
    return ((1 - lam) * cross_entropy + lam * scale * kl).mean(-1)


def loss_gradient(
    student_logits: Tensor,
    labels: Tensor,
    target: Tensor,
    *,
    lam: float | Tensor,
    tau: float | Tensor,
    tau_squared: bool = True,
) -> Tensor:
    """Closed-form ∂L_n/∂z of each example's loss (not divided by N): [N, K] or [S, N, K]."""
    return _gradient(
        _prepare(student_logits, labels, target, lam=lam, tau=tau, tau_squared=tau_squared)
    )


def rescaling_factor(
    student_logits: Tensor,
    labels: Tensor,
    target: Tensor,
    *,
    lam: float | Tensor,
    tau: float | Tensor,
    tau_squared: bool = True,
) -> Tensor:
    """w_t = (∂L/∂z_t) / (∂CE/∂z_t) per example, [N] or [S, N]; infinite or NaN where q_t = 1.

    For ρ_t = p^τ_t this is (1 − λ) + λ(c(τ)/τ)(p^τ_t − q^τ_t)/(1 − q_t) (NOTES §2).
    """
    batch = _prepare(student_logits, labels, target, lam=lam, tau=tau, tau_squared=tau_squared)
    true_gradient = batch.at_labels(_gradient(batch))
    q_true = batch.at_labels(batch.logits.softmax(-1))
    return true_gradient / (q_true - 1)


def _gradient(batch: _Batch) -> Tensor:
    """∂L_n/∂z_i = (1 − λ)(q_i − y_i) + λ(c(τ)/τ)(q^τ_i − ρ_i), for targets summing to 1."""
    q = batch.logits.softmax(-1)
    q_tau = (batch.logits / batch.tau).softmax(-1)
    kd_scale = batch.lam * batch.scale / batch.tau
    return (1 - batch.lam) * (q - batch.onehot) + kd_scale * (q_tau - batch.target)


def _prepare(
    student_logits: Tensor,
    labels: Tensor,
    target: Tensor,
    *,
    lam: float | Tensor,
    tau: float | Tensor,
    tau_squared: bool,
) -> _Batch:
    if student_logits.ndim not in (2, 3) or not student_logits.is_floating_point():
        raise ValueError(
            "student_logits: expected a float tensor [N, K] or [S, N, K], "
            f"got {student_logits.dtype} of shape {tuple(student_logits.shape)}"
        )
    *stack, num_examples, num_classes = student_logits.shape
    labels = check_labels(labels, num_classes)
    if labels.shape[0] != num_examples:
        raise ValueError(f"labels: {labels.shape[0]} labels for {num_examples} examples")
    if target.shape not in (student_logits.shape, (num_examples, num_classes)):
        raise ValueError(
            f"target: shape {tuple(target.shape)} does not match student_logits "
            f"{tuple(student_logits.shape)}"
        )
    # λ and τ are checked on the host, before they move to the logits' device (no device sync)
    if not bool(((torch.as_tensor(lam) >= 0) & (torch.as_tensor(lam) <= 1)).all()):
        raise ValueError(f"lam: must lie in [0, 1], got {lam}")
    check_positive("tau", tau)
    lam_values = _per_model("lam", lam, stack, student_logits)
    tau_values = _per_model("tau", tau, stack, student_logits)
    scale = tau_values**2 if tau_squared else torch.ones_like(tau_values)
    return _Batch(student_logits, labels, target, lam_values, tau_values, scale)


def _per_model(name: str, value: float | Tensor, stack: list[int], like: Tensor) -> Tensor:
    """A float, or one value per stacked model, shaped [1, 1] or [S, 1, 1]."""
    values = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if values.ndim != 0 and list(values.shape) != stack:
        raise ValueError(
            f"{name}: expected a float or one value per model (shape {tuple(stack)}), "
            f"got shape {tuple(values.shape)}"
        )
    return values.expand(stack).reshape(*stack, 1, 1)
