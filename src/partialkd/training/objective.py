"""A network trainer's per-batch loss: the grid point's target (NOTES §2) built from the frozen
teacher's logits on the same batch, then the distillation loss."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from partialkd.core.grid import Variant
from partialkd.core.losses import distillation_loss


@dataclass
class NetworkObjective:
    """The variant's loss: its target builder applied per batch to the teacher's logits."""
    variant: Variant
    teacher: nn.Module | None
    class_weights: Tensor | None  # the teacher's last-layer class vectors, for the sim targets
    num_classes: int
    tau_squared: bool

    def loss(self, logits: Tensor, teacher_logits: Tensor | None, labels: Tensor) -> Tensor:
        target = self.variant.target(teacher_logits, labels, self.num_classes, self.class_weights)
        return distillation_loss(logits, labels, target, lam=self.variant.lam, tau=self.variant.tau,
                                 tau_squared=self.tau_squared)
