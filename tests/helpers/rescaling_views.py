"""Teacher and student logits with a planted relation between them (issue 12's example)."""
from __future__ import annotations

import torch
from torch import Tensor


def planted_views(n: int = 400, classes: int = 7) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Teacher logits v, labels, a reference student independent of the teacher's confidence,
    and an over-confident own student 1.3·v + noise (issue 12's example)."""
    generator = torch.Generator().manual_seed(0)
    teacher = 3.0 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=generator)
    reference = 2.0 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    own = 1.3 * teacher + 0.5 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    return teacher, labels, reference, own
