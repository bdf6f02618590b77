"""The exact teacher-logit cache of the CIFAR trainer (issue 15).

Pad-4 random crops and horizontal flips (NOTES §4) give every training image exactly
SHIFTS × SHIFTS × 2 = 162 views. The frozen teacher's logits for all of them, computed once,
replace the teacher's forward pass in every student of that teacher: a student reads the logits
of its batch's views (image, row shift, column shift, flip) from the cache, and its random draws,
hence its batches, are those of a run with the live teacher. The logits are computed as the live
teacher computes them (eval mode, the run's precision: bf16 autocast on a GPU, float32 on a CPU)
and stored in that dtype ("auto"), or rounded to bf16 or kept in float32 by choice.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from partialkd.common.devices import Placement
from partialkd.common.torch_files import load_torch, save_torch
from partialkd.training.images import SHIFTS, DeviceImages, Views, crop_and_flip

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
CACHE_DTYPES = ("auto", *DTYPES)  # "auto": the dtype of the live teacher's logits


@dataclass(frozen=True)
class TeacherCache:
    """The teacher's logits [N, SHIFTS, SHIFTS, 2, K] of every view of the N training images."""
    logits: Tensor

    def __call__(self, views: Views) -> Tensor:
        """Float32 logits [B, K] of a batch's views (a `training.images.CachedTeacher`)."""
        return self.logits[views.index, views.shifts[:, 0], views.shifts[:, 1], views.flips.long()].float()


@torch.no_grad()
def view_logits(teacher: nn.Module, train: DeviceImages, placement: Placement, batch_size: int,
                dtype: str = "auto") -> Tensor:
    """The logits of every view of every image of `train`, on the CPU, [N, SHIFTS, SHIFTS, 2, K]."""
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"the cache's dtype must be one of {', '.join(CACHE_DTYPES)}, got {dtype!r}")
    teacher.eval()
    rows = []
    for start in range(0, len(train), batch_size):
        index = torch.arange(start, min(start + batch_size, len(train)), device=placement.device)
        rows.append(torch.stack([_logits(teacher, train, Views(index, _shifts(index, row, col), _flips(index, flip)),
                                         placement, dtype)
                                 for row in range(SHIFTS) for col in range(SHIFTS) for flip in (False, True)], dim=1))
    logits = torch.cat(rows)
    return logits.view(len(train), SHIFTS, SHIFTS, 2, logits.shape[-1])


def _logits(teacher: nn.Module, train: DeviceImages, views: Views, placement: Placement, dtype: str) -> Tensor:
    with placement.autocast():
        logits = teacher(train.normalise(crop_and_flip(train.images[views.index], views.shifts, views.flips)))
    return (logits if dtype == "auto" else logits.to(DTYPES[dtype])).cpu()


def _shifts(index: Tensor, row: int, col: int) -> Tensor:
    return torch.tensor([row, col], device=index.device).expand(len(index), 2)


def _flips(index: Tensor, flip: bool) -> Tensor:
    return torch.full((len(index),), flip, device=index.device)


def save_cache(logits: Tensor, path: str | Path, teacher_sha256: str, data_sha256: str) -> None:
    """Write the cache atomically, with the hashes of the teacher and data it was computed from."""
    save_torch({"logits": logits, "teacher_sha256": teacher_sha256, "data_sha256": data_sha256}, path)


def load_cache(path: str | Path, teacher_sha256: str, data_sha256: str, placement: Placement) -> TeacherCache:
    """The cache at `path` on the device, refused when it was computed from another teacher or
    other data than the run's."""
    saved = load_torch(path, "teacher-logit cache")
    for what, expected in (("teacher", teacher_sha256), ("data", data_sha256)):
        if saved[f"{what}_sha256"] != expected:
            raise ValueError(f"teacher-logit cache {path} was computed from another {what} (sha256 "
                             f"{saved[f'{what}_sha256']}) than this run's (sha256 {expected}): delete it "
                             "and re-run the step that creates it")
    return TeacherCache(saved["logits"].to(placement.device))
