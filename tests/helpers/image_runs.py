"""A tiny prepared image dataset (coloured noise, 32x32) and a configuration that trains it in a
fraction of a second per epoch."""
from __future__ import annotations

from typing import Any
import torch
from partialkd.data.prepared import Dataset, Split
from partialkd.training.images import ImageTrainConfig


K = 10


SIZES = {"train": 200, "valid": 60, "test": 60}


MEAN = [0.45, 0.5, 0.55]


STD = [0.25, 0.2, 0.3]


ARCH = "resnet8"


def make_dataset(num_classes: int = K, seed: int = 0) -> Dataset:
    """uint8 images [N, 3, 32, 32]: a class colour plus uniform noise; labels cycle the classes."""
    generator = torch.Generator().manual_seed(seed)
    colours = torch.randint(40, 216, (num_classes, 3), generator=generator)

    def split(size: int) -> Split:
        labels = torch.arange(size) % num_classes
        noise = torch.randint(-40, 41, (size, 3, 32, 32), generator=generator)
        images = (colours[labels][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8)
        return Split(images, labels.long())

    return Dataset({name: split(size) for name, size in SIZES.items()}, num_classes,
                   torch.arange(num_classes) // 5, None,
                   {"channel_mean": MEAN, "channel_std": STD, "track": "tiny-images"})


def image_config(**overrides: Any) -> ImageTrainConfig:
    """A configuration that trains the tiny dataset in a fraction of a second per epoch."""
    values: dict[str, Any] = dict(arch=ARCH, epochs=2, batch_size=50, lr=0.05, momentum=0.9,
                                  weight_decay=5e-4, milestones=(1,), lr_decay=0.1, seed=0,
                                  eval_batch_size=25)
    values.update(overrides)
    return ImageTrainConfig(**values)
