"""The synthetic track's trainer (`fit`): a stack of MLPs, every variant of the stack with its own
precomputed target ρ (exact there: no augmentation, so the teacher's output per example never
changes), λ and τ, trained at once by Adam under a cosine schedule through the shared epoch loop
(training.engine.run_epochs).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from partialkd.core.losses import distillation_loss
from partialkd.core.metrics import accuracy, classification_metrics
from partialkd.data.prepared import Split
from partialkd.models.mlp import StackedMLP
from partialkd.training.engine import EVAL_SPLITS, FitResult, Loop, run_epochs


@dataclass(frozen=True)
class TrainConfig:
    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float  # Adam, cosine-decayed to 0 over the run (NOTES §3: a converged schedule)
    weight_decay: float
    seed: int
    train_size: int | None = None  # a seed-chosen subset of the train split; None = all of it
    tau_squared: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"train_size must be at least 1, got {self.train_size}")


@dataclass(frozen=True)
class Objective:
    """Per-variant loss inputs: ρ [S, N, K] over the training set, λ [S], τ [S], names [S]."""
    targets: Tensor
    lam: Tensor
    tau: Tensor
    labels: list[str]


def fit(model: StackedMLP, splits: dict[str, Split], num_classes: int, objective: Objective,
        config: TrainConfig, run_dir: str | Path, fingerprint: dict[str, Any],
        order_generator: torch.Generator,
        on_epoch_end: Callable[[int], None] | None = None) -> FitResult:
    """Train a stack of MLPs (all variants at once) on precomputed targets: Adam, cosine decay."""
    train = splits["train"]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    valid_truth = splits["valid"].truth(num_classes)
    loop = Loop(
        model, optimizer, schedule, order_generator, objective.labels, len(train), "examples",
        train_epoch=lambda: _train_epoch(model, train, objective, config, optimizer, schedule,
                                         order_generator),
        valid_accuracy=lambda: _valid_accuracy(model, splits["valid"].x, valid_truth),
        evaluate=lambda: _evaluate_splits(model, splits, num_classes))
    return run_epochs(loop, config.epochs, run_dir, fingerprint, on_epoch_end)


def _train_epoch(model: StackedMLP, train: Split, objective: Objective, config: TrainConfig,
                 optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
                 order_generator: torch.Generator) -> Tensor:
    model.train()
    order = torch.randperm(len(train), generator=order_generator)
    total = torch.zeros(len(objective.labels))
    for batch in order.split(config.batch_size):
        logits = model(train.x[batch])
        losses = distillation_loss(logits, train.labels[batch], objective.targets[:, batch],
                                   lam=objective.lam, tau=objective.tau,
                                   tau_squared=config.tau_squared)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the variants' parameters are disjoint: each gets its own gradient
        optimizer.step()
        schedule.step()
        total += losses.detach() * len(batch)
    return total / len(train)


def _evaluate_splits(model: StackedMLP, splits: dict[str, Split], num_classes: int
                     ) -> dict[str, dict[str, Tensor]]:
    return {split: _evaluate(model, splits[split], splits[split].truth(num_classes))
            for split in EVAL_SPLITS}


@torch.no_grad()
def _valid_accuracy(model: StackedMLP, x: Tensor, truth: Tensor) -> Tensor:
    model.eval()
    return accuracy(model(x), truth)


@torch.no_grad()
def _evaluate(model: StackedMLP, split: Split, truth: Tensor) -> dict[str, Tensor]:
    model.eval()
    return classification_metrics(model(split.x), truth)
