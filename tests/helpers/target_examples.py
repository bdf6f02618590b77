"""Random teacher batches and valid parameters for every registered target method."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any
import torch
from torch import Tensor
from partialkd.core.targets import build_target, method_params


F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_batch(num_examples: int, num_classes: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Teacher logits [N, K] (float64, spread enough for confident rows) and labels [N]."""
    g = gen(seed)
    logits = 3 * torch.randn(num_examples, num_classes, generator=g, dtype=F64)
    return logits, torch.randint(num_classes, (num_examples,), generator=g)


def example_params(method: str, num_classes: int, seed: int = 0) -> dict[str, Any]:
    """Valid parameters for `method`; a KeyError here means a new parameter needs a value."""
    makers: dict[str, Callable[[], Any]] = {
        "class_weights": lambda: torch.randn(num_classes, 4, generator=gen(seed), dtype=F64),
        "alpha": lambda: 0.3,
        "k": lambda: max(1, num_classes // 2),
        "renormalize": lambda: False,
    }
    return {name: makers[name]() for name in method_params(method)}


def example_target(method: str, teacher: Tensor, labels: Tensor, tau: float) -> Tensor:
    return build_target(
        method, teacher, labels, tau=tau, **example_params(method, teacher.shape[1])
    )
