"""Throughput of the ImageNet input pipeline, alone and feeding training steps.

Not a test: it prints figures. On an ImageFolder (`--root`, or one generated in a temporary
folder with ImageNet-like image sizes: 375 px high, 375 or 468 px wide, JPEG and PNG) it prints

- loader: images per second of `imagenet.FolderImages` serving training batches (decode,
  random resized crop, flip, collation, copy to the device, normalisation), per worker count;
- train: images per second of the real training epoch (`training.loader.loader_loop`) for the
  student trained alone (ce) and distilled (kd) from the teacher, with the last worker count.

The first batch of each pass (worker start-up, cuDNN tuning) is left out of the figures.

    python bench/imagenet_pipeline.py --workers 0 1 2 --train-images 64
    python bench/imagenet_pipeline.py --root /data/imagenet --workers 8 16 --batch-size 256
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from partialkd.common.devices import Placement
from partialkd.core.grid import expand_grid
from partialkd.data.imagenet import FolderImages, InputSize, prepare_imagenet
from partialkd.models.vision import classifier, seeded_model
from partialkd.training.images import ImageTrainConfig
from partialkd.training.loader import loader_loop
from partialkd.training.objective import NetworkObjective

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.image_folder import write_image_folder  # noqa: E402  (the tests' generator, at ImageNet sizes)

SIDE = 375  # ImageNet's most common image height


def timed(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Images per second over `batches`, the first one left out."""
    next(batches)
    count, started = 0, time.perf_counter()
    for images, _ in batches:
        count += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - started)


def loader_speed(train: FolderImages, batch_size: int, device: torch.device) -> float:
    return timed(train.augmented_epoch(batch_size, torch.Generator().manual_seed(0)), device)


def train_speed(train: FolderImages, args: argparse.Namespace, placement: Placement, num_classes: int,
                distil: bool) -> float:
    """Images per second of a training epoch over `train` (all of it timed, after a warm-up epoch)."""
    teacher = None
    if distil:
        teacher = placement.prepare(seeded_model(args.teacher, num_classes, 1).eval().requires_grad_(False))
    grid = {"kd": {"lam": [0.9], "tau": [4]}} if distil else {"ce": {}}
    objective = NetworkObjective(expand_grid(grid)[0], teacher,
                               None if teacher is None else classifier(teacher).weight.float(),
                               num_classes, True)
    config = ImageTrainConfig(args.arch, 1, args.batch_size, lr=0.1, momentum=0.9, weight_decay=1e-4,
                              milestones=(), lr_decay=1.0, seed=0, precision=args.precision)
    model = placement.prepare(seeded_model(args.arch, num_classes, 0))
    generator = torch.Generator().manual_seed(0)
    loop = loader_loop(model, {"train": train}, objective, config, generator, placement)
    loop.train_epoch()  # warm-up: workers, allocator, cuDNN
    started = time.perf_counter()
    loop.train_epoch().cpu()  # .cpu() waits for the device
    return len(train) / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="an ImageFolder (train/ and val/); default: generate one")
    parser.add_argument("--classes", type=int, default=8, help="classes of the generated folder")
    parser.add_argument("--per-class", type=int, default=32, help="training images per generated class")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=64, help="images per timed training epoch")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--teacher", default="resnet34")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or write_image_folder(Path(scratch) / "root", args.classes, args.per_class, 1, SIDE)
        dataset = prepare_imagenet(root, 1, 0)
        placement = Placement.choose(args.precision)
        size = InputSize(args.crop, args.resize)
        print(f"device {placement.device} (bf16 {placement.bf16}), {args.threads} torch threads, "
              f"{len(dataset['train'])} training images, crop {size.crop}, batch {args.batch_size}")
        for workers in args.workers:
            train = FolderImages(dataset["train"], root, size, placement, workers)
            speed = loader_speed(train, args.batch_size, placement.device)
            print(f"loader  workers {workers:2d}: {speed:8.1f} images/s")
        subset = dataset["train"].subset(torch.arange(min(args.train_images, len(dataset["train"]))))
        train = FolderImages(subset, root, size, placement, args.workers[-1])
        for distil in (False, True):
            name = f"kd {args.teacher}->{args.arch}" if distil else f"ce {args.arch}"
            speed = train_speed(train, args, placement, dataset.num_classes, distil)
            print(f"train   {name:22s} (workers {args.workers[-1]}): {speed:8.1f} images/s")


if __name__ == "__main__":
    main()
