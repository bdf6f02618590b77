"""Per-example gradient rescaling w_t against the teacher's confidence p_t (NOTES §2, §5; C10).

On the true class t the loss gradient is the CE gradient q_t − 1 times

    w_t = (1 − λ) + λ(c(τ)/τ)(ρ_t − q^τ_t)/(1 − q_t),

with ρ the variant's target: ρ_t = p^τ_t for kd and kd_pt (so both rescale alike), 1/K for ls.
At τ = 1 and ρ_t = p_t this is w_t = 1 − λ(1 − p_t)/(1 − q_t). Everything here is a pure
function of logits; w_t is computed twice, from this formula and with autograd.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import Tensor

from partialkd.grid import Variant
from partialkd.losses import distillation_loss, rescaling_factor
from partialkd.style import (
    COLUMN_WIDTH_IN,
    METHOD_COLORS,
    METHOD_MARKERS,
    apply_style,
    ordered_methods,
)

Q_TOLERANCE = 1e-6  # examples with 1 − q_t ≤ this are dropped: w_t = 0/0 is undefined
CHUNK_EXAMPLES = 1024  # examples computed at once: float64 [n, K] copies stay small at K = 10k
X_LABEL = "teacher confidence on the true class p_t"
Y_LABEL = "gradient rescaling w_t (KD ÷ CE gradient)"
_LINESTYLES = ("-", "--", "-.", ":")  # tell apart methods whose curves coincide (kd, kd_pt)


def per_example_rescaling(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    variant: Variant,
    tau_squared: bool = True,
    class_weights: Tensor | None = None,
) -> pd.DataFrame:
    """One row per example (index `example`, its position in the batch), computed in float64.

    Columns: p_t = softmax(v)_t, the teacher's confidence (at τ = 1, so that methods trained at
    different τ share one axis), and p_tau_t = softmax(v/τ)_t of the teacher, q_t = softmax(z)_t of
    the student, rho_t = ρ_t, w_formula (the closed form above, `losses.rescaling_factor`) and
    w_autograd (∂L_n/∂z_t by autograd on `distillation_loss`, divided by q_t − 1). Examples with
    1 − q_t ≤ 1e-6 are dropped; `frame.attrs["dropped"]` counts them and `frame.attrs["variant"]`
    names the variant.
    """
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits {tuple(student_logits.shape)} and teacher_logits "
            f"{tuple(teacher_logits.shape)}: expected the same shape [N, K]"
        )
    labels = labels.detach().cpu()
    weights = None if class_weights is None else class_weights.detach().to("cpu", torch.float64)
    chunks = [_columns(student_logits[rows], teacher_logits[rows], labels[rows], variant, tau_squared, weights)
              for rows in torch.arange(len(labels)).split(CHUNK_EXAMPLES)]
    columns = {name: torch.cat([chunk[name] for chunk in chunks]) for name in chunks[0]}
    keep = 1 - columns["q_t"] > Q_TOLERANCE
    index = pd.Index(np.flatnonzero(keep.numpy()), name="example")
    data = {name: values[keep].numpy() for name, values in columns.items()}
    frame = pd.DataFrame(data, index=index)
    frame.attrs.update(dropped=int((~keep).sum()), variant=variant.label)
    return frame


def _columns(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, variant: Variant,
             tau_squared: bool, weights: Tensor | None) -> dict[str, Tensor]:
    """The frame's columns [n] for a chunk of examples, in float64 on the CPU."""
    student = student_logits.detach().to("cpu", torch.float64)
    teacher = teacher_logits.detach().to("cpu", torch.float64)
    target = variant.target(teacher, labels, student.shape[1], weights)
    return {
        "p_t": _true(teacher.softmax(1), labels),
        "p_tau_t": _true((teacher / variant.tau).softmax(1), labels),
        "q_t": _true(student.softmax(1), labels),
        "rho_t": _true(target, labels),
        "w_formula": rescaling_factor(student, labels, target, lam=variant.lam, tau=variant.tau,
                                      tau_squared=tau_squared),
        "w_autograd": _autograd(student, labels, target, variant, tau_squared),
    }


def check_agreement(frame: pd.DataFrame, atol: float = 1e-6) -> float:
    """max |w_formula − w_autograd|; ValueError naming the worst example if above `atol`
    (a NaN counts as above)."""
    if frame.empty:
        raise ValueError("frame: no examples to compare")
    gap = (frame["w_formula"] - frame["w_autograd"]).abs().fillna(np.inf)
    worst = gap.idxmax()
    if gap[worst] > atol:
        raise ValueError(
            f"w_t: formula and autograd differ by {gap[worst]:.3g} > {atol:g} at example {worst} "
            f"(formula {frame.at[worst, 'w_formula']!r}, "
            f"autograd {frame.at[worst, 'w_autograd']!r})"
        )
    return float(gap.max())


def binned_rescaling(frame: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """w_formula summarised in `bins` equal-count bins of p_t (sizes differ by at most one;
    tied p_t may fall in neighbouring bins): p_t_mean, w_mean, w_median, w_sd, w_p10, w_p90, count."""
    if not 1 <= bins <= len(frame):
        raise ValueError(f"bins: need 1 ≤ bins ≤ {len(frame)} examples, got {bins}")
    order = np.argsort(frame["p_t"].to_numpy(), kind="stable")
    bin_of = np.empty(len(frame), dtype=int)
    for number, members in enumerate(np.array_split(order, bins)):
        bin_of[members] = number
    grouped = frame.groupby(pd.Index(bin_of, name="bin"))
    return pd.DataFrame({
        "p_t_mean": grouped["p_t"].mean(),
        "w_mean": grouped["w_formula"].mean(),
        "w_median": grouped["w_formula"].median(),
        "w_sd": grouped["w_formula"].std(),
        "w_p10": grouped["w_formula"].quantile(0.1),
        "w_p90": grouped["w_formula"].quantile(0.9),
        "count": grouped.size(),
    })


def spearman(frame: pd.DataFrame) -> float:
    """Spearman correlation of w_formula with p_t (Pearson on tie-averaged ranks), C10's
    statistic; NaN when either column is constant, where the correlation is undefined."""
    p_rank = frame["p_t"].rank().to_numpy()
    w_rank = frame["w_formula"].rank().to_numpy()
    if len(frame) < 2 or p_rank.std() == 0 or w_rank.std() == 0:
        return float("nan")
    return float(np.corrcoef(p_rank, w_rank)[0, 1])


def rescaling_figure(frames: dict[str, pd.DataFrame], bins: int = 10) -> Figure:
    """Binned median w_t against teacher p_t per method, with a shaded 10–90% band; one column;
    at most `bins` bins, fewer when a method has fewer examples.
    (The median, not the mean: the 1/(1 − q_t) factor gives w_t heavy tails.)"""
    apply_style()
    figure = Figure(figsize=(COLUMN_WIDTH_IN, 0.8 * COLUMN_WIDTH_IN))
    axes = figure.subplots()
    axes.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":", label="CE (w_t = 1)")
    for position, method in enumerate(ordered_methods(frames)):
        binned = binned_rescaling(frames[method], min(bins, len(frames[method])))
        color = METHOD_COLORS.get(method, "0.3")
        axes.fill_between(binned["p_t_mean"], binned["w_p10"], binned["w_p90"], color=color,
                          alpha=0.2, linewidth=0)
        axes.plot(binned["p_t_mean"], binned["w_median"], color=color, label=method,
                  marker=METHOD_MARKERS.get(method, "o"), markersize=3.5,
                  linestyle=_LINESTYLES[position % len(_LINESTYLES)])
    axes.set_xlabel(X_LABEL)
    axes.set_ylabel(Y_LABEL)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(frames) + 1,
                frameon=False, handlelength=2.5, columnspacing=1.0)
    return figure


def _true(values: Tensor, labels: Tensor) -> Tensor:
    """The true-class entry of each row, [N]."""
    return values.gather(1, labels[:, None].long()).squeeze(1)


def _autograd(
    student: Tensor, labels: Tensor, target: Tensor, variant: Variant, tau_squared: bool
) -> Tensor:
    """(∂L_n/∂z_t by autograd) / (q_t − 1); N × the batch-mean loss sums the per-example
    losses, so its gradient is each example's own."""
    logits = student.clone().requires_grad_()
    loss = distillation_loss(logits, labels, target, lam=variant.lam, tau=variant.tau,
                             tau_squared=tau_squared)
    (gradient,) = torch.autograd.grad(loss * logits.shape[0], logits)
    return _true(gradient, labels) / (_true(student.softmax(1), labels) - 1)
