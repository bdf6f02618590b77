"""The image tracks' trainer (CIFAR-100): one network, a teacher or a student, on one device.

Augmentation (pad-4 random crop and horizontal flip, NOTES §4) changes the teacher's output at
every step, so the target ρ is built per batch from the frozen teacher's logits on the same
augmented images. The images stay on the device as uint8; crops, flips and normalisation run
there, and the random draws of an epoch are made up front from one CPU generator, so a run is
fixed by its seed and resumes exactly. Images and convolutions use the channels_last layout on
every device (on the CPU it is faster too: see docs/benchmarks.md); on a GPU the forward passes
run under bf16 autocast and the loss is computed in float32; on a CPU everything is float32.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from partialkd.common.devices import MEMORY_FORMAT, PRECISIONS, Placement
from partialkd.core.metrics import accuracy, classification_metrics
from partialkd.data.prepared import Dataset, Split
from partialkd.models.vision import build_image_model, classifier, seeded_model
from partialkd.training.engine import EVAL_SPLITS, Loop, WeightsMemo
from partialkd.training.objective import NetworkObjective
from partialkd.training.teachers import teacher_checkpoint

PREDICT_BATCH = 500  # images per forward pass when scoring a whole split
PAD = 4  # pixels of zero padding before the random 32x32 crop
SHIFTS = 2 * PAD + 1  # crop offsets per axis: with the flip, 9 x 9 x 2 = 162 views of an image


class Views(NamedTuple):
    """Augmented views of a batch of training images: indices [B] into the split, crop offsets
    (row, column) [B, 2] in [0, SHIFTS), horizontal flips [B] (bool)."""
    index: Tensor
    shifts: Tensor
    flips: Tensor


# The teacher's logits [B, K] of a batch's views, read from a cache of them (training.teacher_cache).
CachedTeacher = Callable[[Views], Tensor]


@dataclass(frozen=True)
class ImageTrainConfig:
    """SGD with momentum and a step schedule (×lr_decay at each milestone epoch)."""
    arch: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    lr_decay: float
    seed: int
    tau_squared: bool = True
    precision: str = "auto"
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0) or not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr must be finite and > 0 and lr_decay in (0, 1], got {self.lr}, "
                             f"{self.lr_decay}")
        if not 0 <= self.momentum < 1 or not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"momentum must lie in [0, 1) and weight_decay be finite and >= 0, got "
                             f"{self.momentum}, {self.weight_decay}")
        milestones = list(self.milestones)
        if milestones != sorted(set(milestones)) or any(epoch < 1 for epoch in milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {milestones}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


class DeviceImages:
    """One split's uint8 images and labels on the device, served as normalised float batches."""

    def __init__(self, split: Split, mean: list[float], std: list[float], placement: Placement) -> None:
        self.placement = placement
        device = placement.device
        self.images = split.x.to(device)
        self.labels = split.labels.to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def normalise(self, images: Tensor) -> Tensor:
        x = (images.float() / 255 - self.mean) / self.std
        return x.contiguous(memory_format=MEMORY_FORMAT)

    def in_order(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            yield self.normalise(self.images[start:end]), self.labels[start:end]

    def augmented_views(self, batch_size: int, generator: torch.Generator) -> Iterator[Views]:
        """A shuffled epoch's draws, made before the first batch: per batch, which images, and
        the crop (pad 4) and flip of each."""
        count = len(self)
        order = torch.randperm(count, generator=generator).to(self.images.device)
        shifts = torch.randint(0, SHIFTS, (count, 2), generator=generator).to(self.images.device)
        flips = (torch.rand(count, generator=generator) < 0.5).to(self.images.device)
        for batch in order.split(batch_size):
            yield Views(batch, shifts[batch], flips[batch])

    def view_batch(self, views: Views) -> tuple[Tensor, Tensor]:
        """The normalised images and the labels of `views`."""
        images = crop_and_flip(self.images[views.index], views.shifts, views.flips)
        return self.normalise(images), self.labels[views.index]

    def augmented_epoch(self, batch_size: int, generator: torch.Generator
                        ) -> Iterator[tuple[Tensor, Tensor]]:
        """A shuffled epoch of randomly cropped (pad 4) and flipped images."""
        for views in self.augmented_views(batch_size, generator):
            yield self.view_batch(views)


def crop_and_flip(images: Tensor, shifts: Tensor, flips: Tensor) -> Tensor:
    """Per image: zero-pad by PAD, take the 32x32 window at (row, col) = shifts, mirror if flipped."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = (shifts[:, 0:1] + torch.arange(height, device=images.device))[:, None, :, None]
    cols = (shifts[:, 1:2] + torch.arange(width, device=images.device))[:, None, None, :]
    index = torch.arange(count, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    cropped = padded[index, channel, rows, cols]
    return torch.where(flips[:, None, None, None], cropped.flip(3), cropped)


def image_loop(model: nn.Module, splits: dict[str, Split], mean: list[float], std: list[float],
               objective: NetworkObjective, config: ImageTrainConfig, generator: torch.Generator,
               placement: Placement, cached_teacher: CachedTeacher | None = None) -> Loop:
    """The `Loop` that `training.run_epochs` drives for one image network; a student's teacher
    logits come from `cached_teacher` where given, else from `objective.teacher` on each batch."""
    data = {name: DeviceImages(split, mean, std, placement) for name, split in splits.items()}
    return sgd_loop(model, data, objective, config, generator, placement, split_scores, cached_teacher)


def sgd_loop(model: nn.Module, data: dict[str, DeviceImages], objective: NetworkObjective,
             config: ImageTrainConfig, generator: torch.Generator, placement: Placement,
             scores: Callable[[Tensor, Tensor, int], dict[str, Tensor]],
             cached_teacher: CachedTeacher | None = None) -> Loop:
    """The `Loop` of `sgd_epoch`s on data["train"], each split scored by `scores(logits, labels,
    num_classes)` and its accuracy alone after every epoch on "valid" (selection) and "test"
    (recorded, never selecting); `data` holds DeviceImages or splits that serve the same batches
    (`imagenet.FolderImages`, which has no cache of teacher logits)."""
    optimizer, schedule = sgd_with_steps(model, config)

    def train_epoch() -> Tensor:
        mean_loss = sgd_epoch(model, data["train"], objective, optimizer, config, generator, placement,
                              cached_teacher)
        schedule.step()
        return mean_loss

    memo = WeightsMemo(model)

    def logits(split: str) -> Tensor:
        return memo.get(split, lambda: predict(model, data[split], config.eval_batch_size, placement))

    def split_accuracy(split: str) -> Tensor:
        return accuracy(logits(split)[None], F.one_hot(data[split].labels, objective.num_classes))

    def evaluate() -> dict[str, dict[str, Tensor]]:
        return {split: {name: value.cpu() for name, value in
                        scores(logits(split), data[split].labels, objective.num_classes).items()}
                for split in EVAL_SPLITS}

    return Loop(model, optimizer, schedule, generator, [objective.variant.label], len(data["train"]),
                "images", train_epoch, partial(split_accuracy, "valid"), evaluate,
                test_accuracy=partial(split_accuracy, "test"))


def sgd_with_steps(model: nn.Module, config: ImageTrainConfig
                   ) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR]:
    """SGD with momentum and weight decay, its lr ×lr_decay at each milestone epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones),
                                                           gamma=config.lr_decay)


def split_scores(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, Tensor]:
    """`metrics.classification_metrics`, each [1], of logits [N, K] against labels [N]."""
    return classification_metrics(logits[None], F.one_hot(labels, num_classes))


def sgd_epoch(model: nn.Module, train: DeviceImages, objective: NetworkObjective,
              optimizer: torch.optim.Optimizer, config: ImageTrainConfig,
              generator: torch.Generator, placement: Placement,
              cached_teacher: CachedTeacher | None = None) -> Tensor:
    """One epoch of SGD; the mean loss [1] stays on the device until the epoch ends. The random
    draws are the same with and without `cached_teacher`, so are the batches."""
    model.train()
    total = torch.zeros(1, device=placement.device)
    for images, labels, cached in _batches(train, config.batch_size, generator, cached_teacher):
        with placement.autocast():
            logits = model(images)
            live = cached is None and objective.teacher is not None
            teacher_logits = _teacher_logits(objective.teacher, images) if live else cached
        loss = objective.loss(logits.float(), teacher_logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(labels)
    return total / len(train)


def _batches(train: DeviceImages, batch_size: int, generator: torch.Generator,
             cached_teacher: CachedTeacher | None) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """An epoch's (images, labels, the teacher's cached logits or None)."""
    if cached_teacher is None:
        yield from ((images, labels, None) for images, labels in train.augmented_epoch(batch_size, generator))
        return
    for views in train.augmented_views(batch_size, generator):
        yield *train.view_batch(views), cached_teacher(views)


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, images: Tensor) -> Tensor:
    return teacher(images).float()


@torch.no_grad()
def predict(model: nn.Module, images: DeviceImages, batch_size: int, placement: Placement) -> Tensor:
    """Float32 logits [N, K] of the whole split, in eval mode."""
    model.eval()
    outputs = []
    for x, _ in images.in_order(batch_size):
        with placement.autocast():
            outputs.append(model(x).float())
    return torch.cat(outputs)


def saved_network(arch: dict[str, Any], state: dict[str, Tensor], training: dict[str, Any], dataset: Dataset
                  ) -> tuple[Tensor, Callable[[Split], Tensor]]:
    """The class vectors and forward pass over a split (on the GPU if any) of the image network of
    a run's model.pt `arch` and `state` (`training` is unused: evaluation needs no setting of it)."""
    placement = Placement.choose("fp32")
    model = placement.prepare(build_image_model(arch["name"], dataset.num_classes))
    model.load_state_dict(state)
    model.requires_grad_(False).eval()

    def forward(split: Split) -> Tensor:
        return predict(model, _saved_images(arch, split, dataset.meta, placement), PREDICT_BATCH, placement)

    return classifier(model).weight.detach().float().cpu(), forward


def _saved_images(arch: dict[str, Any], split: Split, meta: dict[str, Any], placement: Placement) -> Any:
    """The split's batches as the network's trainer saw them at evaluation: on the device, or
    (family "imagenet") read from the image files with the run's crop and resize."""
    if arch["family"] == "imagenet":
        from partialkd.data import imagenet  # here: it imports torchvision, about a second

        size = imagenet.InputSize(arch["crop"], arch["resize"])
        return imagenet.FolderImages(split, meta["root"], size, placement, imagenet.default_workers())
    return DeviceImages(split, meta["channel_mean"], meta["channel_std"], placement)


def initial_network(arch: dict[str, Any], seed: int) -> nn.Module:
    """The network a run of model.pt's `arch` and `seed` started from."""
    return seeded_model(arch["name"], arch["num_classes"], seed)


def load_image_teacher(source: str | Path, num_classes: int) -> nn.Module:
    """The frozen network (best-on-validation weights, eval mode) of an image teacher's model.pt."""
    saved = teacher_checkpoint(source, {"family": "image", "num_classes": num_classes})
    model = build_image_model(saved["arch"]["name"], num_classes)
    model.load_state_dict(saved["best_state"])
    return model.requires_grad_(False).eval()
