"""Seeds derived from keys: one independent stream per purpose (a split, a run's data order, its
initial weights, ...), the same for the same keys on every machine."""
from __future__ import annotations

import numpy as np


def derived_seed(*keys: int) -> int:
    """An independent 63-bit seed for each tuple of keys (a split, a run, ...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))
