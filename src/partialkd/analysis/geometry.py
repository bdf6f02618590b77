"""Logit geometry (NOTES §5, claim C11): how a model's last-layer class vectors relate.

Pure functions on tensors and frames: similarity matrices of class vectors, their ordering by
group (superclass), scalar summaries (block contrast, correlation with the teacher's matrix),
the teacher's class-probability correlations at a temperature τ, and the two figures.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from partialkd.reporting.style import COLUMN_WIDTH_IN, METHOD_COLORS, apply_style, ordered_methods

CORRELATION_LABEL = "correlation with the teacher's class similarities"
HEATMAP_CMAP = "RdBu_r"  # diverging, red/blue: distinguishable under the common colour blindnesses
MAX_LABELLED_CLASSES = 20  # above this, heatmaps show group boundaries only


def cosine_matrix(class_weights: Tensor) -> Tensor:
    """cos(w_i, w_j) of the class vectors (rows of `class_weights` [K, h]), [K, K] float64."""
    weights = _matrix("class_weights", class_weights).double()
    norms = weights.norm(dim=1)
    if (norms == 0).any():
        raise ValueError(f"class_weights: class {int(torch.nonzero(norms == 0)[0])} has a zero "
                         "vector; its cosine similarity is undefined")
    unit = weights / norms[:, None]
    return (unit @ unit.T).clamp(-1.0, 1.0)


def group_order(class_groups: Tensor) -> Tensor:
    """Permutation [K] putting classes of the same group next to each other (stable in a group)."""
    if class_groups.ndim != 1 or class_groups.dtype.is_floating_point:
        raise ValueError(f"class_groups: expected a 1-D integer tensor, got {class_groups.dtype} "
                         f"of shape {tuple(class_groups.shape)}")
    return torch.argsort(class_groups, stable=True)


def reorder(matrix: Tensor, order: Tensor) -> Tensor:
    """`matrix` [K, K] with rows and columns both permuted by `order` [K]."""
    _square("matrix", matrix)
    if order.shape != (matrix.shape[0],):
        raise ValueError(f"order: expected shape ({matrix.shape[0]},), got {tuple(order.shape)}")
    return matrix[order][:, order]


def matrix_correlation(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of the off-diagonal entries of two K×K similarity matrices."""
    _square("a", a)
    if a.shape != b.shape:
        raise ValueError(f"a and b: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    mask = ~torch.eye(a.shape[0], dtype=torch.bool)
    x, y = (m.double()[mask] for m in (a, b))
    x, y = x - x.mean(), y - y.mean()
    scale = x.norm() * y.norm()
    if scale == 0:
        raise ValueError("a and b: an off-diagonal part is constant; correlation undefined")
    return float(x @ y / scale)


def block_contrast(matrix: Tensor, class_groups: Tensor) -> float:
    """Mean off-diagonal similarity within groups minus mean similarity across groups."""
    _square("matrix", matrix)
    if class_groups.shape != (matrix.shape[0],):
        raise ValueError(f"class_groups: expected shape ({matrix.shape[0]},), "
                         f"got {tuple(class_groups.shape)}")
    same = class_groups[:, None] == class_groups[None, :]
    within = same & ~torch.eye(len(class_groups), dtype=torch.bool)
    if not within.any() or same.all():
        raise ValueError("class_groups: need a group with two classes and at least two groups")
    values = matrix.double()
    return float(values[within].mean() - values[~same].mean())


def teacher_probability_correlation(teacher_logits: Tensor, tau: float) -> Tensor:
    """Correlation across examples of the teacher's probabilities softmax(v/τ), [K, K] float64."""
    logits = _matrix("teacher_logits", teacher_logits).double()
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau: must be finite and > 0, got {tau}")
    probs = torch.softmax(logits / tau, dim=1)
    centred = probs - probs.mean(dim=0)
    spread = centred.norm(dim=0)
    if (spread == 0).any():
        raise ValueError(f"teacher_logits: class {int(torch.nonzero(spread == 0)[0])} has the same "
                         f"probability in every example at tau={tau}; correlation undefined")
    unit = centred / spread
    return (unit.T @ unit).clamp(-1.0, 1.0)


def similarity_heatmaps(matrices: Mapping[str, Tensor], class_groups: Tensor,
                        titles: Mapping[str, str] | None = None, columns: int = 3,
                        label: str = "similarity") -> plt.Figure:
    """One heatmap per model, classes ordered by group, on one colour scale centred on 0,
    `columns` panels to a row; `label` names the colour bar.

    The scale spans the largest off-diagonal |value| so that small similarities stay visible
    (the unit diagonal saturates). `titles` maps a key of `matrices` to its panel title.
    """
    apply_style()
    if not matrices:
        raise ValueError("matrices: need at least one matrix")
    order = group_order(class_groups)
    ordered = {name: reorder(m, order).detach().cpu().double().numpy() for name, m in matrices.items()}
    limit = _off_diagonal_limit(ordered.values())
    ncols = min(columns, len(ordered))
    nrows = math.ceil(len(ordered) / ncols)
    panel_in = 2 * COLUMN_WIDTH_IN / (ncols + 0.5)  # leave room for the colour bar
    figure, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                                figsize=(2 * COLUMN_WIDTH_IN, panel_in * nrows + 0.3))
    for ax, (name, values) in zip(axes.flat, ordered.items()):
        image = ax.imshow(values, cmap=HEATMAP_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        _decorate_heatmap(ax, class_groups[order], order)
        ax.set_title((titles or {}).get(name, name))
    for ax in axes.flat[len(ordered):]:
        ax.set_visible(False)
    figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, extend="max", label=label)
    return figure


def correlation_bars(frame: pd.DataFrame) -> plt.Figure:
    """Per method: mean correlation with the teacher's matrix, ± sd over seeds, seeds as dots."""
    missing = {"method", "seed", "correlation"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame: missing columns {sorted(missing)}")
    apply_style()
    methods = ordered_methods(frame["method"].unique())
    stats = frame.groupby("method")["correlation"].agg(["mean", "std"]).reindex(methods)
    stats["std"] = stats["std"].fillna(0.0)  # one seed: no spread to draw
    colors = [METHOD_COLORS.get(m, "grey") for m in methods]
    figure, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.4), layout="constrained")
    x = np.arange(len(methods))
    ax.bar(x, stats["mean"], yerr=stats["std"], color=colors, capsize=3, width=0.7, zorder=2)
    for i, method in enumerate(methods):
        seeds = frame.loc[frame["method"] == method, "correlation"].to_numpy()
        jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
        ax.scatter(x[i] + jitter, seeds, s=10, color="black", zorder=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.grid(axis="x", visible=False)
    ax.set_xticks(x, methods, rotation=30 if len(methods) > 4 else 0,
                  ha="right" if len(methods) > 4 else "center")
    ax.set(xlabel="student", ylabel=CORRELATION_LABEL.replace("teacher's ", "teacher's\n"))
    return figure


def _decorate_heatmap(ax: plt.Axes, sorted_groups: Tensor, order: Tensor) -> None:
    """Thin lines at group boundaries; class labels only when there are few classes."""
    for boundary in torch.nonzero(sorted_groups[1:] != sorted_groups[:-1]).flatten().tolist():
        ax.axhline(boundary + 0.5, color="0.25", linewidth=0.3)
        ax.axvline(boundary + 0.5, color="0.25", linewidth=0.3)
    ax.grid(False)
    if len(order) > MAX_LABELLED_CLASSES:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ticks = list(range(len(order)))
        ax.set_xticks(ticks, [str(c) for c in order.tolist()], fontsize=5, rotation=90)
        ax.set_yticks(ticks, [str(c) for c in order.tolist()], fontsize=5)


def _off_diagonal_limit(matrices) -> float:
    """Largest |off-diagonal entry| over all matrices (1 if all are zero)."""
    limit = max(float(np.abs(m - np.diag(np.diag(m))).max()) for m in matrices)
    return limit if limit > 0 else 1.0


def _matrix(name: str, value: Tensor) -> Tensor:
    if value.ndim != 2 or not value.dtype.is_floating_point:
        raise ValueError(f"{name}: expected a 2-D floating tensor, got {value.dtype} "
                         f"of shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name}: contains non-finite values")
    return value


def _square(name: str, value: Tensor) -> None:
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        raise ValueError(f"{name}: expected a square [K, K] matrix, got shape {tuple(value.shape)}")
