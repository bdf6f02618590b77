"""Teachers a student distils from: a trained run's model (best-on-validation weights, frozen)
or, on the synthetic track, the Bayes-optimal oracle (logits log p(y|x), class vectors = the
templates; NOTES §3)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from partialkd.datasets import Dataset, Split
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
    saved = load_torch(source, "teacher checkpoint")
    if len(saved["variants"]) != 1:
        raise ValueError(f"teacher checkpoint {source} holds {len(saved['variants'])} models; "
                         "a teacher must come from a run with a single variant")
    arch = saved["arch"]
    expected = {"in_dim": dataset["train"].x.shape[1], "num_classes": dataset.num_classes}
    if any(arch[key] != value for key, value in expected.items()):
        raise ValueError(f"teacher checkpoint {source} was trained for {arch} but the dataset has "
                         f"{expected}: it belongs to another configuration; retrain the teacher")
    model = build_model(arch)
    model.load_state_dict(saved["best_state"])
    model.requires_grad_(False)
    return Teacher(model, model.class_weights(0))


def build_model(arch: dict) -> StackedMLP:
    """An (uninitialised-by-seed) model of the recorded architecture, to load weights into."""
    return StackedMLP(arch["num_models"], arch["in_dim"], arch["hidden"], arch["num_classes"],
                      torch.Generator().manual_seed(0))
