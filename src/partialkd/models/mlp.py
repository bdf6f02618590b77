"""Models for the synthetic track: a stack of independent MLPs evaluated in one batched matmul.

Training every method of one (correlation, seed) cell as one stacked model gives the same
result as training them one by one (the parameters and Adam states are disjoint), 2-3x faster
on a CPU (NOTES §3). A single model is simply a stack of one.

`seeded_stack` draws a run's initial stack (partialkd.models.seeding).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from partialkd.common.seeds import derived_seed
from partialkd.models.seeding import INIT_SEED



class StackedMLP(nn.Module):
    """`num_models` MLPs with identical architecture: x [N, d] -> logits [S, N, K].

    Every model of the stack starts from the *same* weights, drawn from `generator`, so methods
    trained side by side with one seed are compared from one initialisation (paired seeds).
    An empty `hidden` gives a linear model.
    """

    def __init__(self, num_models: int, in_dim: int, hidden: Sequence[int], num_classes: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        if num_models < 1:
            raise ValueError(f"num_models must be at least 1, got {num_models}")
        widths = [in_dim, *hidden, num_classes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(widths):
            weight, bias = _linear_init(fan_in, fan_out, generator)
            self.weights.append(nn.Parameter(weight.expand(num_models, -1, -1).clone()))
            self.biases.append(nn.Parameter(bias.expand(num_models, -1, -1).clone()))

    @property
    def num_models(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: Tensor) -> Tensor:
        hidden = x
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.matmul(hidden, weight) + bias  # [N, d] @ [S, d, h] -> [S, N, h]
            if layer < len(self.weights) - 1:
                hidden = torch.relu(hidden)
        return hidden

    def class_weights(self, model: int = 0) -> Tensor:
        """The last linear layer's class vectors of one model of the stack, [K, h]."""
        return self.weights[-1][model].detach().T


def seeded_stack(num_models: int, in_dim: int, hidden: Sequence[int], num_classes: int,
                 seed: int) -> StackedMLP:
    """The initial stack of `seed`: every model of it, and of any stack of the seed, starts from
    the same weights."""
    return StackedMLP(num_models, in_dim, hidden, num_classes,
                      torch.Generator().manual_seed(derived_seed(seed, INIT_SEED)))


def recorded_stack(arch: dict) -> StackedMLP:
    """An (uninitialised-by-seed) model of the recorded architecture, to load weights into."""
    return StackedMLP(arch["num_models"], arch["in_dim"], arch["hidden"], arch["num_classes"],
                      torch.Generator().manual_seed(0))


def _linear_init(fan_in: int, fan_out: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """PyTorch's default nn.Linear initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    weight = (torch.rand(1, fan_in, fan_out, generator=generator) * 2 - 1) * bound
    bias = (torch.rand(1, 1, fan_out, generator=generator) * 2 - 1) * bound
    return weight, bias
