"""The CIFAR-100 track: download and verify the archive, read it, split off a validation set.

The archive is the python version from the dataset's home page. Its pickles are only ever
loaded after its MD5 matched the published one: a pickle can run code, a checksum cannot.
"""
from __future__ import annotations

import logging
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from partialkd.datasets import Dataset, Split
from partialkd.downloads import fetch, verify_md5
from partialkd.seeds import derived_seed

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
WHAT = "CIFAR-100 archive"
ROOT = "cifar-100-python"
SHAPE = (3, 32, 32)  # each row of `data`: the R plane, then G, then B, each 32 x 32 row-major
SPLIT_KEY = 100  # derived_seed(split_seed, SPLIT_KEY) draws the validation split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One pickled batch: images uint8 [N, 3, 32, 32], fine and coarse labels int64 [N]."""
    images: torch.Tensor
    fine: torch.Tensor
    coarse: torch.Tensor


@dataclass(frozen=True)
class Archive:
    train: Part
    test: Part
    fine_names: list[str]
    coarse_names: list[str]


def fetch_archive(path: str | Path, url: str = URL, md5: str = MD5, download: bool = True) -> Path:
    """The verified archive at `path`, downloaded from `url` first if it is missing."""
    return fetch(path, url, md5, WHAT, log, download)


def read_archive(path: str | Path, md5: str = MD5) -> Archive:
    """Verify the archive at `path` against `md5`, then read its train, test and meta pickles."""
    verify_md5(path, md5, WHAT, "Delete it and re-run to download it again, or put the right file "
                                f"there (from {URL})")
    try:
        with tarfile.open(path, "r:gz") as tar:
            train, test, meta = (_load_member(tar, name, path) for name in ("train", "test", "meta"))
    except (tarfile.TarError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(f"CIFAR-100 archive {path} is unreadable ({error}): delete it and "
                         "re-run to download it again") from error
    fine_names = _names(meta, "fine_label_names", path)
    coarse_names = _names(meta, "coarse_label_names", path)
    return Archive(_part(train, "train", len(fine_names), len(coarse_names), path),
                   _part(test, "test", len(fine_names), len(coarse_names), path),
                   fine_names, coarse_names)


def _load_member(tar: tarfile.TarFile, name: str, path: str | Path) -> dict[str, Any]:
    member = f"{ROOT}/{name}"
    try:
        handle = tar.extractfile(member)
    except KeyError:
        handle = None
    if handle is None:
        raise ValueError(f"CIFAR-100 archive {path} lacks the member {member}: it is not the "
                         "python version of CIFAR-100")
    with handle:
        raw = pickle.load(handle, encoding="latin1")  # written by Python 2
    if not isinstance(raw, dict):
        raise ValueError(f"CIFAR-100 archive {path}: {member} holds a {type(raw).__name__}, not a dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in raw.items()}


def _names(meta: dict[str, Any], key: str, path: str | Path) -> list[str]:
    if key not in meta:
        raise ValueError(f"CIFAR-100 archive {path}: meta lacks '{key}'")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in meta[key]]


def _part(raw: dict[str, Any], name: str, num_fine: int, num_coarse: int, path: str | Path) -> Part:
    missing = {"data", "fine_labels", "coarse_labels"} - raw.keys()
    if missing:
        raise ValueError(f"CIFAR-100 archive {path}: {name} lacks {sorted(missing)}")
    data = np.asarray(raw["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(SHAPE) or not len(data):
        raise ValueError(f"CIFAR-100 archive {path}: {name} data is {data.dtype} {list(data.shape)}, "
                         f"expected uint8 [N, {np.prod(SHAPE)}] with N >= 1")
    labels = {}
    for key, bound in (("fine_labels", num_fine), ("coarse_labels", num_coarse)):
        values = torch.as_tensor(np.asarray(raw[key], dtype=np.int64))
        if values.shape != (len(data),) or values.min() < 0 or values.max() >= bound:
            raise ValueError(f"CIFAR-100 archive {path}: {name} {key} are not {len(data)} labels "
                             f"in [0, {bound})")
        labels[key] = values
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *SHAPE))
    return Part(images, labels["fine_labels"], labels["coarse_labels"])


def superclasses(archive: Archive) -> torch.Tensor:
    """int64 [K]: the superclass of each fine class, checked to be unique over train and test."""
    num_fine, num_coarse = len(archive.fine_names), len(archive.coarse_names)
    fine = torch.cat([archive.train.fine, archive.test.fine])
    coarse = torch.cat([archive.train.coarse, archive.test.coarse])
    pairs = torch.zeros(num_fine, num_coarse, dtype=torch.bool)
    pairs[fine, coarse] = True
    counts = pairs.sum(dim=1)
    if (counts != 1).any():
        bad = int(torch.nonzero(counts != 1)[0])
        raise ValueError(f"CIFAR-100 fine class {bad} ({archive.fine_names[bad]}) has "
                         f"{int(counts[bad])} superclasses in the data, expected exactly one")
    return pairs.to(torch.int64).argmax(dim=1)


def channel_moments(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of uint8 images [N, 3, H, W] in [0, 1]."""
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        mean = float((counts * levels).sum() / counts.sum())
        variance = float((counts * (levels - mean) ** 2).sum() / counts.sum())
        means.append(mean)
        stds.append(variance ** 0.5)
    return means, stds


def prepare_cifar100(archive_path: str | Path, valid_size: int, split_seed: int,
                     md5: str = MD5) -> Dataset:
    """CIFAR-100 with fine labels: a seeded held-out `valid_size` split of the official training
    set, the rest as "train", and the official test set as "test"."""
    archive = read_archive(archive_path, md5)
    num_train = len(archive.train.fine)
    if not 1 <= valid_size < num_train:
        raise ValueError(f"valid_size must be in [1, {num_train}) (the training set has {num_train} "
                         f"images), got {valid_size}")
    generator = torch.Generator().manual_seed(derived_seed(split_seed, SPLIT_KEY))
    order = torch.randperm(num_train, generator=generator)
    index = {"train": order[valid_size:].sort().values, "valid": order[:valid_size].sort().values}
    full_train = Split(archive.train.images, archive.train.fine)
    splits = {"train": full_train.subset(index["train"]), "valid": full_train.subset(index["valid"]),
              "test": Split(archive.test.images, archive.test.fine)}
    mean, std = channel_moments(splits["train"].x)
    meta = {"track": "cifar100", "archive_md5": md5, "valid_size": valid_size,
            "split_seed": split_seed, "fine_class_names": archive.fine_names,
            "coarse_class_names": archive.coarse_names,
            "sizes": {name: len(split) for name, split in splits.items()},
            "channel_mean": mean, "channel_std": std}
    return Dataset(splits, len(archive.fine_names), superclasses(archive), None, meta)
