"""The CIFAR-100 track: find and verify the data, read it, split off a validation set.

Two sources, in this order: a torchvision root (params.yaml `cifar100.data.torchvision_root`,
whose `cifar-100-python/` holds the pickles `train`, `test` and `meta` as torchvision's
`CIFAR100(root, download=True)` leaves them), then the python version's archive, downloaded
when missing. The address and the published MD5s are torchvision's (`CIFAR100`). A pickle is
only ever loaded after its MD5 matched: a pickle can run code, a checksum cannot. The archive's
MD5 vouches for its members; each file of a torchvision root is checked itself, on the very
bytes that are then unpickled.
"""
from __future__ import annotations

import logging
import pickle
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR100

from partialkd.common.seeds import derived_seed
from partialkd.data.downloads import bytes_md5, fetch, mismatch, verify_md5
from partialkd.data.prepared import Dataset, Split

URL, MD5, ROOT = CIFAR100.url, CIFAR100.tgz_md5, CIFAR100.base_folder
MEMBERS = ("train", "test", "meta")  # the pickles under ROOT/, in the archive and in a torchvision root
FILE_MD5 = {**dict(CIFAR100.train_list + CIFAR100.test_list), "meta": CIFAR100.meta["md5"]}
WHAT = "CIFAR-100 archive"
ROOT_PARAM = "cifar100.data.torchvision_root"
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
    """The contents of the python version, from the archive or a torchvision root; `md5` holds
    each pickle's MD5 (the same from either source)."""
    train: Part
    test: Part
    fine_names: list[str]
    coarse_names: list[str]
    md5: dict[str, str]


def fetch_archive(path: str | Path, url: str = URL, md5: str = MD5, download: bool = True) -> Path:
    """The verified archive at `path`, downloaded from `url` first if it is missing."""
    return fetch(path, url, md5, WHAT, log, download)


def torchvision_folder(root: str | Path | None) -> Path | None:
    """`root`/cifar-100-python when it holds the three pickles, else None (and why, in the log)."""
    if root is None:
        return None
    folder = Path(root) / ROOT
    missing = [name for name in MEMBERS if not (folder / name).is_file()]
    if missing:
        log.info("CIFAR-100: the torchvision root %s lacks %s in %s", root, ", ".join(missing), folder)
        return None
    log.info("CIFAR-100: using the torchvision root %s", root)
    return folder


def read_archive(path: str | Path, md5: str = MD5) -> Archive:
    """Verify the archive at `path` against `md5`, then read its train, test and meta pickles."""
    verify_md5(path, md5, WHAT, "Delete it and re-run to download it again, or put the right file "
                                f"there (from {URL})")
    try:
        with tarfile.open(path, "r:gz") as tar:
            pickles = {name: _member(tar, name, path) for name in MEMBERS}
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ValueError(f"CIFAR-100 archive {path} is unreadable ({error}): delete it and "
                         "re-run to download it again") from error
    return _parse(pickles, {name: f"CIFAR-100 archive {path}: {name}" for name in MEMBERS})


def read_folder(folder: str | Path, md5s: Mapping[str, str] = FILE_MD5) -> Archive:
    """Verify each pickle of a torchvision root's `folder` against `md5s`, then read them."""
    pickles = {}
    for name in MEMBERS:
        path = Path(folder) / name
        pickles[name] = path.read_bytes()
        actual = bytes_md5(pickles[name])
        if actual != md5s[name]:
            raise mismatch("CIFAR-100 file", path, actual, md5s[name],
                           f"Delete {folder} and run torchvision's CIFAR100(root, download=True) to "
                           f"fetch it again, or set {ROOT_PARAM} to null (leave out --torchvision-root) "
                           "to use the archive instead")
    return _parse(pickles, {name: f"CIFAR-100 file {Path(folder) / name}" for name in MEMBERS})


def _member(tar: tarfile.TarFile, name: str, path: str | Path) -> bytes:
    member = f"{ROOT}/{name}"
    try:
        handle = tar.extractfile(member)
    except KeyError:
        handle = None
    if handle is None:
        raise ValueError(f"CIFAR-100 archive {path} lacks the member {member}: it is not the "
                         "python version of CIFAR-100")
    with handle:
        return handle.read()


def _parse(pickles: Mapping[str, bytes], where: Mapping[str, str]) -> Archive:
    """Unpickle the verified bytes of each member; `where` names each one in errors."""
    train, test, meta = (_unpickle(pickles[name], where[name]) for name in MEMBERS)
    fine_names = _names(meta, "fine_label_names", where["meta"])
    coarse_names = _names(meta, "coarse_label_names", where["meta"])
    return Archive(_part(train, len(fine_names), len(coarse_names), where["train"]),
                   _part(test, len(fine_names), len(coarse_names), where["test"]),
                   fine_names, coarse_names, {name: bytes_md5(pickles[name]) for name in MEMBERS})


def _unpickle(data: bytes, where: str) -> dict[str, Any]:
    try:
        raw = pickle.loads(data, encoding="latin1")  # written by Python 2
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{where} is not a readable pickle ({error})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{where} holds a {type(raw).__name__}, not a dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in raw.items()}


def _names(meta: dict[str, Any], key: str, where: str) -> list[str]:
    if key not in meta:
        raise ValueError(f"{where} lacks '{key}'")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in meta[key]]


def _part(raw: dict[str, Any], num_fine: int, num_coarse: int, where: str) -> Part:
    missing = {"data", "fine_labels", "coarse_labels"} - raw.keys()
    if missing:
        raise ValueError(f"{where} lacks {sorted(missing)}")
    data = np.asarray(raw["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != np.prod(SHAPE) or not len(data):
        raise ValueError(f"{where} data is {data.dtype} {list(data.shape)}, "
                         f"expected uint8 [N, {np.prod(SHAPE)}] with N >= 1")
    labels = {}
    for key, bound in (("fine_labels", num_fine), ("coarse_labels", num_coarse)):
        values = torch.as_tensor(np.asarray(raw[key], dtype=np.int64))
        if values.shape != (len(data),) or values.min() < 0 or values.max() >= bound:
            raise ValueError(f"{where} {key} are not {len(data)} labels in [0, {bound})")
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


def load(archive: str | Path, torchvision_root: str | Path | None = None, url: str = URL,
         md5: str = MD5, file_md5s: Mapping[str, str] = FILE_MD5, download: bool = True) -> Archive:
    """The data of the first source that has it: `torchvision_root` (its files verified against
    `file_md5s`), else the archive at `archive` (verified against `md5`; downloaded from `url`
    first if it is missing, unless `download` is off)."""
    folder = torchvision_folder(torchvision_root)
    if folder is not None:
        return read_folder(folder, file_md5s)
    return read_archive(fetch_archive(archive, url, md5, download), md5)


def prepare_cifar100(archive: Archive, valid_size: int, split_seed: int) -> Dataset:
    """CIFAR-100 with fine labels: a seeded held-out `valid_size` split of the official training
    set, the rest as "train", and the official test set as "test"."""
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
    # Nothing that depends on the source: the same data gives the same file (DVC, run fingerprints).
    meta = {"track": "cifar100", "md5": archive.md5, "valid_size": valid_size,
            "split_seed": split_seed, "fine_class_names": archive.fine_names,
            "coarse_class_names": archive.coarse_names,
            "sizes": {name: len(split) for name, split in splits.items()},
            "channel_mean": mean, "channel_std": std}
    return Dataset(splits, len(archive.fine_names), superclasses(archive), None, meta)
