"""The seeded construction every trainer draws a run's initial weights with: one initialisation
per seed, shared by every method of the seed (paired seeds), which the analyses rebuild
(partialkd.training.read_runs) since model.pt does not store it."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from partialkd.common.seeds import derived_seed

INIT_SEED = 103  # derived_seed(run seed, INIT_SEED) seeds a run's initial weights


def seeded_network(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """`build()` under the global RNG seeded for `seed`; the caller's RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, INIT_SEED))
        return build()
