"""Accuracy, NLL and calibration error of a stack of models against a truth distribution.

The truth is the one-hot label on real data and the Bayes posterior on the synthetic track,
where accuracy is then the expected accuracy E[p(ŷ|x)] (no label noise in the metric).
"""
from __future__ import annotations

import torch
from torch import Tensor

ECE_BINS = 15


def classification_metrics(logits: Tensor, truth: Tensor) -> dict[str, Tensor]:
    """logits [S, N, K] (or [N, K]), truth [N, K] -> {'acc', 'nll', 'ece'}, each [S] (or scalar)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    confidence = log_probs.exp().max(dim=-1).values
    correct = correctness(log_probs, truth)
    nll = -(truth.to(log_probs) * log_probs).sum(-1)
    return {"acc": correct.mean(-1), "nll": nll.mean(-1),
            "ece": expected_calibration_error(confidence, correct)}


def accuracy(logits: Tensor, truth: Tensor) -> Tensor:
    """Expected accuracy alone: the cheap per-epoch selection metric."""
    return correctness(logits, truth).mean(-1)


def correctness(logits: Tensor, truth: Tensor) -> Tensor:
    """Per example, the truth's mass on the predicted class, truth(argmax logits): [S, N] or [N]."""
    prediction = logits.argmax(dim=-1, keepdim=True)
    return torch.gather(truth.to(logits.dtype).expand(*logits.shape), -1, prediction).squeeze(-1)


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = ECE_BINS) -> Tensor:
    """ECE = Σ_b (n_b / N)·|mean confidence_b − mean correctness_b| over equal-width bins."""
    index = torch.clamp((confidence * bins).long(), max=bins - 1)
    gap = torch.zeros(*confidence.shape[:-1], bins, dtype=confidence.dtype, device=confidence.device)
    gap.scatter_add_(-1, index, confidence - correct)  # per-bin Σ (confidence − correctness)
    return gap.abs().sum(-1) / confidence.shape[-1]
