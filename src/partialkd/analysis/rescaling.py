"""Per-example gradient rescaling w_t against the teacher's confidence p_t (NOTES §2, §5; C10).

On the true class t the loss gradient is the CE gradient q_t − 1 times

    w_t = (1 − λ) + λ(c(τ)/τ)(ρ_t − q^τ_t)/(1 − q_t),

with ρ the variant's target: ρ_t = p^τ_t for kd and kd_pt (so both rescale alike), 1/K for ls.
At τ = 1 and ρ_t = p_t this is w_t = 1 − λ(1 − p_t)/(1 − q_t). Everything here is a pure
function of logits; w_t is computed twice, from this formula and with autograd. The student's
logits may be any student's: evaluated at a fixed reference student's q (the analyses use the ce
student of the same seed, and the seed's student at initialisation), w_t varies with the
teacher's confidence alone, the paper's sense of C10; at the student trained on ρ it also reflects how that student's q follows the teacher.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from partialkd.core.grid import Variant
from partialkd.core.losses import distillation_loss, rescaling_factor
from partialkd.reporting.style import (COLUMN_WIDTH_IN, METHOD_COLORS, METHOD_MARKERS, apply_style,
                                       ordered_methods)

Q_TOLERANCE = 1e-6  # examples with 1 − q_t ≤ this are dropped: w_t = 0/0 is undefined
CHUNK_EXAMPLES = 1024  # examples computed at once: float64 [n, K] copies stay small at K = 10k
X_LABEL = "teacher confidence on the true class p_t"
Y_LABEL = "gradient rescaling w_t (KD ÷ CE gradient)"
SYMLOG_SPAN = 10.0  # a panel whose y limits span more is drawn symlog, linear where |w_t| ≤ 1
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


def rescaling_figure(panels: dict[str, dict[str, pd.DataFrame]], bins: int = 10) -> Figure:
    """Side by side, one panel per title of `panels` (title -> method -> frame): binned median
    w_t against teacher p_t per method, with a shaded 10–90% band; at most `bins` bins, fewer
    when a method has fewer examples; one legend above all panels.

    The median, not the mean, and a robust y range: the 1/(1 − q_t) factor (NOTES §2) gives w_t
    tails of ±10⁴ where q_t → 1. Each panel's own y axis covers w_t = 1 and every binned
    median, and the bands only as far as half the medians' span (at least 0.5) beyond
    (`robust_limits`); it is linear, or symlog (linear for |w_t| ≤ 1) when these limits span more
    than SYMLOG_SPAN, so that the medians near 1 stay readable beside ones of −10³.
    """
    if not panels:
        raise ValueError("panels: no panel to draw")
    apply_style()
    figure = Figure(figsize=(COLUMN_WIDTH_IN * len(panels), 0.8 * COLUMN_WIDTH_IN),
                    layout="constrained")
    row = figure.subplots(1, len(panels), squeeze=False)[0]
    methods = ordered_methods(set().union(*panels.values()))
    for axes, (title, frames) in zip(row, panels.items()):
        binned = {method: binned_rescaling(frame, min(bins, len(frame)))
                  for method, frame in frames.items()}
        _draw_panel(axes, binned, methods)
        axes.set_title(title)
        axes.set_xlabel(X_LABEL)
    row[0].set_ylabel(Y_LABEL)
    legend = {label: handle for axes in row for handle, label in zip(*axes.get_legend_handles_labels())}
    figure.legend(legend.values(), legend.keys(), loc="outside upper center", ncol=len(legend),
                  frameon=False, handlelength=2.5, columnspacing=1.0)
    return figure


def _draw_panel(axes: Axes, binned: dict[str, pd.DataFrame], methods: list[str]) -> None:
    """The CE line w_t = 1, each method's median curve and band (line style by its position in
    `methods`, the methods of every panel), and the y scale and limits."""
    axes.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":", label="CE (w_t = 1)")
    for method in ordered_methods(binned):
        color = METHOD_COLORS.get(method, "0.3")
        axes.fill_between(binned[method]["p_t_mean"], binned[method]["w_p10"],
                          binned[method]["w_p90"], color=color, alpha=0.2, linewidth=0)
        axes.plot(binned[method]["p_t_mean"], binned[method]["w_median"], color=color,
                  label=method, marker=METHOD_MARKERS.get(method, "o"), markersize=3.5,
                  linestyle=_LINESTYLES[methods.index(method) % len(_LINESTYLES)])
    if binned:
        low, high = robust_limits(list(binned.values()))
        if high - low > SYMLOG_SPAN:
            axes.set_yscale("symlog", linthresh=1.0)
        axes.set_ylim(low, high)


def robust_limits(binned: list[pd.DataFrame]) -> tuple[float, float]:
    """y limits over `binned_rescaling` frames: w_t = 1 and every median, widened towards the
    10–90% bands by at most half the medians' span (at least 0.5), then padded by 5%."""
    medians = np.concatenate([[1.0], *(frame["w_median"].to_numpy() for frame in binned)])
    reach = max(0.5 * np.ptp(medians), 0.5)
    band_low = min(frame["w_p10"].min() for frame in binned)
    band_high = max(frame["w_p90"].max() for frame in binned)
    low = min(medians.min(), max(band_low, medians.min() - reach))
    high = max(medians.max(), min(band_high, medians.max() + reach))
    pad = max(0.05 * (high - low), 0.05)
    return float(low - pad), float(high + pad)


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
