"""Checkpoints of teachers: the checks a teacher's model.pt must pass, and the frozen image network
the image trainer runs per batch. Trainers and analyses see every teacher, the synthetic
oracle included, through `partialkd.trained.teacher_network`."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from partialkd.image_models import build_image_model
from partialkd.torch_files import load_torch
from partialkd.models import StackedMLP

ORACLE = "oracle"


def load_image_teacher(source: str | Path, num_classes: int) -> nn.Module:
    """The frozen network (best-on-validation weights, eval mode) of an image teacher's model.pt."""
    saved = teacher_checkpoint(source, {"family": "image", "num_classes": num_classes})
    model = build_image_model(saved["arch"]["name"], num_classes)
    model.load_state_dict(saved["best_state"])
    return model.requires_grad_(False).eval()


def teacher_checkpoint(source: str | Path, expected: dict[str, object]) -> dict:
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


def plain_state_dict(source: str | Path) -> dict[str, Tensor]:
    """The parameter tensors of a state-dict file, unwrapped from {"state_dict": ...} and from
    DataParallel's "module." prefix."""
    raw = load_torch(source, "teacher state dict")
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else raw
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"teacher {source} is not a state dict (parameter names to tensors); "
                         "without --teacher-arch a teacher run's model.pt is expected")
    prefix = "module."
    if all(name.startswith(prefix) for name in state):
        state = {name[len(prefix):]: value for name, value in state.items()}
    return state
