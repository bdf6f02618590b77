"""Teachers a student distils from: a trained run's model (best-on-validation weights, frozen;
an MLP stack of one, or an image network) or, on the synthetic track, the Bayes-optimal oracle
(logits log p(y|x), class vectors = the templates; NOTES §3)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from partialkd.datasets import Dataset, Split
from partialkd.image_models import build_image_model
from partialkd.io import load_torch
from partialkd.models import StackedMLP

ORACLE = "oracle"


@dataclass(frozen=True)
class Teacher:
    model: StackedMLP | None  # None for the oracle
    class_weights: Tensor  # [K, h] last-layer class vectors (KD-sim's ŵ)

    @torch.no_grad()
    def logits(self, split: Split) -> Tensor:
        """Teacher logits v for every example of `split`, [N, K]."""
        if self.model is None:
            assert split.posterior is not None, "checked in load_teacher"
            return split.posterior.clamp_min(torch.finfo(split.posterior.dtype).tiny).log()
        self.model.eval()
        return self.model(split.x)[0]


def load_teacher(source: str | Path, dataset: Dataset) -> Teacher:
    """`source` is 'oracle' or the model.pt of a training run with a single model."""
    if str(source) == ORACLE:
        if not dataset.has_oracle:
            raise ValueError("teacher 'oracle' needs a dataset with a known posterior "
                             "(the synthetic track); give a trained teacher's model.pt instead")
        return Teacher(None, dataset.oracle_class_vectors)
    saved = _teacher_checkpoint(source, {"in_dim": dataset["train"].x.shape[1],
                                         "num_classes": dataset.num_classes})
    model = build_model(saved["arch"])
    model.load_state_dict(saved["best_state"])
    model.requires_grad_(False)
    return Teacher(model, model.class_weights(0))


def load_image_teacher(source: str | Path, num_classes: int) -> nn.Module:
    """The frozen network (best-on-validation weights, eval mode) of an image teacher's model.pt."""
    saved = _teacher_checkpoint(source, {"family": "image", "num_classes": num_classes})
    model = build_image_model(saved["arch"]["name"], num_classes)
    model.load_state_dict(saved["best_state"])
    return model.requires_grad_(False).eval()


def _teacher_checkpoint(source: str | Path, expected: dict[str, object]) -> dict:
    """A single-variant run's checkpoint whose architecture matches `expected`."""
    saved = load_torch(source, "teacher checkpoint")
    if len(saved["variants"]) != 1:
        raise ValueError(f"teacher checkpoint {source} holds {len(saved['variants'])} models; "
                         "a teacher must come from a run with a single variant")
    arch = saved["arch"]
    if any(arch.get(key) != value for key, value in expected.items()):
        raise ValueError(f"teacher checkpoint {source} was trained for {arch} but this run needs "
                         f"{expected}: it belongs to another configuration; retrain the teacher")
    return saved


def build_model(arch: dict) -> StackedMLP:
    """An (uninitialised-by-seed) model of the recorded architecture, to load weights into."""
    return StackedMLP(arch["num_models"], arch["in_dim"], arch["hidden"], arch["num_classes"],
                      torch.Generator().manual_seed(0))
