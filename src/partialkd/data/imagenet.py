"""The ImageNet track (NOTES §4): a user-provided ImageFolder, its split index, and an input
pipeline that reads the image files fast enough to keep a GPU busy.

Layout of the folder (params.yaml `imagenet.data.root`): ROOT/train/<wnid>/<image> and
ROOT/val/<wnid>/<image>, the official validation images re-foldered into the same class folders
(the common layout, e.g. after the well-known valprep.sh). The classes are the sorted folder
names: the order of torchvision's ImageFolder and of its pretrained ImageNet weights.

What preparation checks, affordable for 1.33M files (one directory listing, one stat a file):
both folders exist with the same class folders, each class holds images, and every file has an
image extension (torchvision's IMG_EXTENSIONS) and is not empty. `check_headers` also opens every
file and lets PIL identify it from its header, without decoding (minutes for ImageNet on a local
disk). A file that still fails to decode stops training with an error naming it.

The index is a `data.prepared.Dataset`, as every track writes, so the trainer's plumbing,
`training.read_runs.checkpoint_networks`, the analyses and `aggregate` take it unchanged. A split's x is
uint8 [N, W]: each image's path relative to ROOT in UTF-8, zero-padded to W bytes (ImageNet:
≈ 1.33M × 45 bytes ≈ 60 MB). The paths are a tensor, not a list of strings in `meta`, because
`meta` is copied into every run's metrics.json, and because a tensor loads fast and is read by
DataLoader workers without the copy-on-write growth that Python objects cause. Splits: "train"
is the training folders minus "valid", `valid_per_class` images per class held out with a seed
per class for checkpoint selection; "test" is the official validation set, never used to select.

Pipeline: workers decode and augment (random resized crop and flip for training; resize and
centre crop otherwise) into uint8 tensors, which are pinned and copied without blocking, then
normalised on the device (channels_last; on a GPU the forward passes use bf16 autocast
through `common.devices.Placement`). Reproducibility: each epoch's order and one seed per image
are drawn from the run's generator, and an image's crop and flip come from its own seed, so an
epoch's batches are bit-identical whatever the number of workers, and a resumed run reproduces
them. What is not bit-reproducible is the GPU arithmetic (bf16, cuDNN's algorithm choice).
"""
from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader
from torchvision.transforms import v2

from partialkd.common.devices import MEMORY_FORMAT, Placement
from partialkd.common.seeds import derived_seed
from partialkd.data.prepared import Dataset, Split

FAMILY = "imagenet"  # model.pt's arch["family"]: a torchvision network fed from image files
PARAM = "imagenet.data.root"
LAYOUT = ("ROOT/train/<wnid>/<image> and ROOT/val/<wnid>/<image> (ImageNet's validation images "
          "re-foldered into the same class folders)")
FOLDERS = ("train", "val")  # train and valid come from the first, test from the second
MEAN = [0.485, 0.456, 0.406]  # the usual ImageNet channel moments (torchvision's weights use them)
STD = [0.229, 0.224, 0.225]
SPLIT_KEY = 102  # derived_seed(split_seed, SPLIT_KEY, class) draws a class's held-out images
SHOWN = 5  # offending names an error lists
HEADER_THREADS = 16  # files opened at once by the header check (I/O bound)
PREFETCH = 4  # batches each worker prepares ahead
MAX_DEFAULT_WORKERS = 8
SEED_BOUND = 2 ** 62


@dataclass(frozen=True)
class InputSize:
    """Training crops are `crop` px square; evaluation resizes the short side to `resize` px and
    takes the centre `crop` px."""
    crop: int = 224
    resize: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.crop <= self.resize:
            raise ValueError(f"crop and resize must satisfy 1 <= crop <= resize, got crop {self.crop}, "
                             f"resize {self.resize}")


# ---------------------------------------------------------------------------- preparation


def prepare_imagenet(root: str | Path, valid_per_class: int, split_seed: int,
                     check_headers: bool = False) -> Dataset:
    """The index of the ImageFolder at `root` (see the module docstring); raises ValueError naming
    `imagenet.data.root` and what is wrong when the folder does not have the layout."""
    root = Path(root).absolute()
    classes, files = scan(root, check_headers)
    _check_valid_per_class(classes, files["train"], valid_per_class)
    held_out = [_held_out(len(names), valid_per_class, split_seed, label)
                for label, names in enumerate(files["train"])]
    items = {"train": _items("train", classes, files["train"], [~mask for mask in held_out]),
             "valid": _items("train", classes, files["train"], held_out),
             "test": _items("val", classes, files["val"], None)}
    width = max(len(path) for paths, _ in items.values() for path in paths)
    splits = {name: Split(encode_paths(paths, width), torch.tensor(labels, dtype=torch.long))
              for name, (paths, labels) in items.items()}
    meta = {"track": "imagenet", "root": str(root), "valid_per_class": valid_per_class,
            "split_seed": split_seed, "header_check": check_headers, "class_names": classes,
            "sizes": {name: len(split) for name, split in splits.items()},
            "channel_mean": MEAN, "channel_std": STD}
    no_groups = torch.zeros(len(classes), dtype=torch.long)  # no class hierarchy is read
    return Dataset(splits, len(classes), no_groups, None, meta)


def scan(root: Path, check_headers: bool) -> tuple[list[str], dict[str, list[list[str]]]]:
    """The sorted class names and, per folder (train, val), each class's sorted image files."""
    if not root.is_dir():
        raise ValueError(f"{PARAM}: {root} is not a directory; give the folder that holds {LAYOUT}")
    classes = _classes(root)
    problems: dict[str, list[str]] = defaultdict(list)
    files = {folder: [_images(root / folder / wnid, problems) for wnid in classes] for folder in FOLDERS}
    if check_headers and not problems:
        _check_headers(root, classes, files, problems)
    if problems:
        raise ValueError(f"{PARAM}: {root} holds files that are not readable images: "
                         + "; ".join(f"{len(paths)} {what} ({few(paths)})"
                                     for what, paths in problems.items())
                         + ". Remove or replace them and re-run")
    empty = [f"{folder}/{wnid}" for folder, per_class in files.items()
             for wnid, names in zip(classes, per_class) if not names]
    if empty:
        raise ValueError(f"{PARAM}: {len(empty)} class folders of {root} hold no images "
                         f"({few(empty)}); expected {LAYOUT}")
    return classes, files


def _classes(root: Path) -> list[str]:
    """The class folders, the same in train/ and val/."""
    train, val = (_class_folders(root, folder) for folder in FOLDERS)
    if train != val:
        raise ValueError(f"{PARAM}: the class folders of {root}/train and {root}/val differ: "
                         f"{few(sorted(set(train) - set(val)))} only in train, "
                         f"{few(sorted(set(val) - set(train)))} only in val; expected {LAYOUT}")
    return train


def _class_folders(root: Path, folder: str) -> list[str]:
    path = root / folder
    if not path.is_dir():
        raise ValueError(f"{PARAM}: {root} has no {folder}/ folder; expected {LAYOUT}")
    with os.scandir(path) as entries:
        names = sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise ValueError(f"{PARAM}: {path} holds no class folders; expected {LAYOUT}")
    return names


def _images(folder: Path, problems: dict[str, list[str]]) -> list[str]:
    """The sorted image files of one class folder; anything else goes into `problems`
    (hidden files are ignored)."""
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not entry.is_file():
                problems["entries that are not files"].append(entry.path)
            elif not entry.name.lower().endswith(IMG_EXTENSIONS):
                problems["files without an image extension"].append(entry.path)
            elif entry.stat().st_size == 0:
                problems["empty files"].append(entry.path)
            else:
                names.append(entry.name)
    return sorted(names)


def _check_headers(root: Path, classes: list[str], files: dict[str, list[list[str]]],
                   problems: dict[str, list[str]]) -> None:
    """Let PIL identify every file from its header (no decoding); failures go into `problems`."""
    paths = [root / folder / wnid / name for folder, per_class in files.items()
             for wnid, names in zip(classes, per_class) for name in names]
    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        failures = [failure for failure in pool.map(_header_failure, paths) if failure]
    if failures:
        problems["files whose header PIL cannot read"] = failures


def _header_failure(path: Path) -> str | None:
    try:
        with Image.open(path):
            return None
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return f"{path}: {error}"


def few(names: list[str]) -> str:
    """The first SHOWN names, and how many more there are."""
    if not names:
        return "none"
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _check_valid_per_class(classes: list[str], train: list[list[str]], valid_per_class: int) -> None:
    smallest = min(range(len(classes)), key=lambda label: len(train[label]))
    if not 1 <= valid_per_class < len(train[smallest]):
        raise ValueError(f"valid_per_class must be at least 1 and leave a training image in every "
                         f"class, got {valid_per_class}; the smallest class, {classes[smallest]}, "
                         f"has {len(train[smallest])} training images")


def _held_out(count: int, valid_per_class: int, split_seed: int, label: int) -> np.ndarray:
    """bool [count]: the class's files held out as "valid", drawn with the class's own seed."""
    generator = torch.Generator().manual_seed(derived_seed(split_seed, SPLIT_KEY, label))
    mask = np.zeros(count, dtype=bool)
    mask[torch.randperm(count, generator=generator)[:valid_per_class].numpy()] = True
    return mask


def _items(folder: str, classes: list[str], files: list[list[str]], keep: list[np.ndarray] | None
           ) -> tuple[list[bytes], list[int]]:
    """Relative paths (UTF-8) and labels of the files of `folder` that `keep` marks (all if None)."""
    paths, labels = [], []
    for label, (wnid, names) in enumerate(zip(classes, files)):
        chosen = names if keep is None else [name for name, kept in zip(names, keep[label]) if kept]
        paths += [f"{folder}/{wnid}/{name}".encode() for name in chosen]
        labels += [label] * len(chosen)
    return paths, labels


def encode_paths(paths: list[bytes], width: int) -> Tensor:
    """uint8 [N, width]: each path's bytes, zero-padded (a path never holds a zero byte)."""
    return torch.from_numpy(np.array(paths, dtype=f"S{width}").view(np.uint8).reshape(len(paths), width))


def decode_path(row: np.ndarray) -> str:
    """The relative path of one row of a split's x."""
    return row.tobytes().rstrip(b"\0").decode()


# ---------------------------------------------------------------------------- input pipeline


def load_image(path: Path) -> Image.Image:
    """The RGB image at `path`, or a ValueError naming the file."""
    try:
        return default_loader(str(path))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{PARAM}: image {path} cannot be read ({error}); replace it with a good "
                         "copy, or delete it and re-run `python -m partialkd.prepare imagenet`") from error


def train_transform(size: InputSize) -> v2.Transform:
    return v2.Compose([v2.RandomResizedCrop(size.crop, antialias=True), v2.RandomHorizontalFlip(),
                       v2.PILToTensor()])


def eval_transform(size: InputSize) -> v2.Transform:
    return v2.Compose([v2.Resize(size.resize, antialias=True), v2.CenterCrop(size.crop), v2.PILToTensor()])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The global CPU generator, which torchvision's random transforms draw from, set to `seed`
    for the block and restored after it."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


class ImageFiles(torch.utils.data.Dataset):
    """One split's image files. Item (index, seed) -> (uint8 [3, crop, crop], label): with a seed
    the training transform drawn from it, with None the evaluation transform."""

    def __init__(self, root: Path, split: Split, size: InputSize) -> None:
        self.root = root
        self.paths = split.x.numpy()
        self.labels = split.labels.numpy()
        self.train, self.eval = train_transform(size), eval_transform(size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item: tuple[int, int | None]) -> tuple[Tensor, int]:
        index, seed = item
        image = load_image(self.root / decode_path(self.paths[index]))
        if seed is None:
            return self.eval(image), int(self.labels[index])
        with seeded(seed):
            return self.train(image), int(self.labels[index])


class PlannedBatches(Sampler[list[tuple[int, Any]]]):
    """A loader's batch sampler: the batches of items its next pass yields, set before each pass."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, Any]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, Any]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def default_workers() -> int:
    """Decoding processes when no one says how many: the usable cores, at most 8."""
    return min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0)))


class FolderImages:
    """One split's image files served as normalised float batches on the device: the interface of
    `training.images.DeviceImages` (len, labels, in_order, augmented_epoch), fed by a DataLoader."""

    def __init__(self, split: Split, root: str | Path, size: InputSize, placement: Placement,
                 workers: int) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{PARAM}: {root}, the image folder this index was prepared "
                                    "from, is not there; mount it there or prepare the index again")
        self.placement = placement
        device = placement.device
        self.labels = split.labels.to(device)
        self.mean = torch.tensor(MEAN, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(STD, device=device).view(1, -1, 1, 1) * 255
        self.plan = PlannedBatches()
        self.loader = DataLoader(
            ImageFiles(root, split, size), batch_sampler=self.plan, num_workers=workers,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=PREFETCH if workers else None,
            generator=torch.Generator())  # the loader's own draw must not move the global RNG

    def __len__(self) -> int:
        return len(self.labels)

    def in_order(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The split in its order, evaluation transform."""
        return self._serve([[(index, None) for index in batch.tolist()]
                            for batch in torch.arange(len(self)).split(batch_size)])

    def augmented_epoch(self, batch_size: int, generator: torch.Generator
                        ) -> Iterator[tuple[Tensor, Tensor]]:
        """A shuffled epoch of training-transformed images; order and per-image seeds are drawn
        from `generator` now, before the first batch."""
        order = torch.randperm(len(self), generator=generator)
        seeds = torch.randint(0, SEED_BOUND, (len(self),), generator=generator)
        return self._serve([list(zip(batch.tolist(), batch_seeds.tolist())) for batch, batch_seeds
                            in zip(order.split(batch_size), seeds.split(batch_size))])

    def _serve(self, batches: list[list[tuple[int, Any]]]) -> Iterator[tuple[Tensor, Tensor]]:
        self.plan.batches = batches
        return self._on_device(iter(self.loader))  # workers start on this plan right away

    def _on_device(self, batches: Iterator[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        device = self.placement.device
        for images, labels in batches:
            images = images.to(device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
            yield (images.float() - self.mean) / self.std, labels.to(device, non_blocking=True)
