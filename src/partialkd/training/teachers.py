"""Checkpoints of teachers: the checks a teacher's model.pt must pass, and plain state-dict files
(an ImageNet track's pretrained teacher). Trainers and analyses see every teacher, the synthetic
oracle included, through `partialkd.training.read_runs.teacher_network`."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor

from partialkd.common.torch_files import load_torch

ORACLE = "oracle"


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
