"""The Fashion-MNIST track (NOTES §4): find and verify the four IDX files, read them, split.

Sources, in this order: a directory the user gives, a torchvision root (its
`FashionMNIST/raw/`, where torchvision's `FashionMNIST(root, download=True)` leaves both forms),
the files of Debian's `dataset-fashion-mnist` package, then a download folder (the files missing
there are fetched from the dataset's canonical address). Each file may be gzipped (`NAME.gz`, as
published) or not (`NAME`). Every file is verified before it is parsed: a gzipped file by the
published MD5 of the .gz (torchvision's `FashionMNIST.resources`) or, where it was compressed
again (Debian's are: same content, no file name in the gzip header), by the MD5 of its
decompressed IDX bytes; a plain file by the MD5 of its bytes. The address, the .gz MD5s and the
class names are torchvision's; its IDX reader is not used: it reads plain files only and checks
the header with `assert`, where ours reads the verified bytes and says what is wrong.

Class groups (NOTES §4): the ten classes fall into upper-body garments {0 T-shirt/top,
2 Pullover, 4 Coat, 6 Shirt}, footwear {5 Sandal, 7 Sneaker, 9 Ankle boot} and the rest
{1 Trouser, 3 Dress, 8 Bag}, which share no part of the body and no shape.
"""
from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import FashionMNIST

from partialkd.common.seeds import derived_seed
from partialkd.data.cifar100 import channel_moments
from partialkd.data.downloads import bytes_md5, download_file, mismatch
from partialkd.data.prepared import Dataset, Split

URL = FashionMNIST.mirrors[0]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NAMES = tuple(name for pair in FILES.values() for name in pair)
# "NAME.gz": the published MD5 of the gzipped file (torchvision's FashionMNIST.resources);
# "NAME": the MD5 of the IDX bytes inside, computed from Debian's files (whose content is the
# published one) and the same as public lists of the decompressed files' MD5s.
MD5 = {
    **dict(FashionMNIST.resources),
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803, 0x0801: unsigned bytes, 3 and 1 dimensions
SIDE = 28
CLASS_NAMES = tuple(FashionMNIST.classes)
GROUP_NAMES = ("upper_body", "footwear", "other")
CLASS_GROUPS = (0, 2, 0, 2, 0, 1, 0, 1, 2, 1)  # the group of each class, see the module docstring
SPLIT_KEY = 101  # derived_seed(split_seed, SPLIT_KEY) draws the validation split
WHAT = "Fashion-MNIST file"
TORCHVISION_RAW = Path(FashionMNIST.__name__, "raw")  # under a torchvision root: its raw_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where the four files were found: `kind` ("directory", "torchvision", "debian" or
    "download"), the folder, the path of each file (gzipped or not) and what to do if one turns
    out wrong."""
    kind: str
    folder: Path
    files: dict[str, Path]
    remedy: str


def find_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The files of NAMES present in `folder` (NAME.gz preferred over NAME) and the names missing."""
    found, missing = {}, []
    for name in NAMES:
        paths = [path for path in (folder / f"{name}.gz", folder / name) if path.is_file()]
        if paths:
            found[name] = paths[0]
        else:
            missing.append(name)
    return found, missing


def locate(download_dir: str | Path, user_dir: str | Path | None = None,
           debian_dir: str | Path | None = DEBIAN_DIR, url: str = URL,
           md5s: Mapping[str, str] = MD5, download: bool = True,
           torchvision_root: str | Path | None = None) -> Source:
    """The first complete source: `user_dir`, then `torchvision_root`'s FashionMNIST/raw, then
    `debian_dir`, then `download_dir`, where the missing files are downloaded from `url`
    (verified against `md5s`) unless `download` is off."""
    torchvision_raw = None if torchvision_root is None else Path(torchvision_root) / TORCHVISION_RAW
    candidates = [("directory", user_dir,
                   "Replace it by the published file or leave out --dir (fashion_mnist.data.dir)"),
                  ("torchvision", torchvision_raw,
                   "Delete it and run torchvision's FashionMNIST(root, download=True) to fetch it "
                   "again, or set fashion_mnist.data.torchvision_root to null (leave out "
                   "--torchvision-root)"),
                  ("debian", debian_dir, f"Reinstall it: apt-get install --reinstall {DEBIAN_PACKAGE}")]
    for kind, folder, remedy in candidates:
        if folder is None:
            continue
        found, missing = find_files(Path(folder))
        if not missing:
            log.info("Fashion-MNIST: using the %s source %s", kind, folder)
            return Source(kind, Path(folder), found, remedy)
        log.info("Fashion-MNIST: the %s source %s lacks %s", kind, folder, ", ".join(missing))
    return _download_source(Path(download_dir), url, md5s, download)


def _download_source(folder: Path, url: str, md5s: Mapping[str, str], download: bool) -> Source:
    found, missing = find_files(folder)
    listed = ", ".join(f"{name}.gz (MD5 {md5s[name + '.gz']})" for name in NAMES)
    by_hand = (f"Put the files {listed} "
               f"from {url} into {folder} by hand, or install Debian's {DEBIAN_PACKAGE}, or give "
               "a folder that holds them (fashion_mnist.data.dir, --dir) or a torchvision root "
               "(fashion_mnist.data.torchvision_root, --torchvision-root), then re-run")
    if missing and not download:
        raise FileNotFoundError(f"Fashion-MNIST: {', '.join(missing)} not found in {folder} and "
                                f"downloading is off. {by_hand}")
    for name in missing:
        try:
            found[name] = download_file(folder / f"{name}.gz", f"{url}{name}.gz", md5s[f"{name}.gz"],
                                        WHAT, log)
        except OSError as error:
            raise OSError(f"Fashion-MNIST: {error}. {by_hand}") from error
    remedy = f"Delete it and re-run to download it again, or put the right file there (from {url})"
    return Source("download", folder, found, remedy)


def verified_idx(path: Path, name: str, md5s: Mapping[str, str], remedy: str) -> tuple[bytes, str]:
    """The IDX bytes of file `name` at `path` once its MD5 matched, and the key of `md5s` that matched."""
    raw = path.read_bytes()
    actual = bytes_md5(raw)
    if path.suffix != ".gz":
        if actual != md5s[name]:
            raise mismatch(WHAT, path, actual, md5s[name], remedy)
        return raw, name
    if actual == md5s[f"{name}.gz"]:
        return gzip.decompress(raw), f"{name}.gz"
    try:
        content = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        content = b""
    if bytes_md5(content) != md5s[name]:
        expected = f"{md5s[name + '.gz']} (or decompressed content with MD5 {md5s[name]}, " \
                   f"found {bytes_md5(content) if content else 'no readable gzip stream'})"
        raise mismatch(WHAT, path, actual, expected, remedy)
    return content, name


def parse_idx(data: bytes, magic: int, where: str | Path) -> np.ndarray:
    """The uint8 array of an IDX file (magic number, big-endian uint32 sizes, then the bytes)."""
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(data) >= 4 and int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{where}: IDX magic number {int.from_bytes(data[:4], 'big')}, expected "
                         f"{magic} (unsigned bytes in {ndim} dimension(s)): not the right IDX file")
    if len(data) < header:
        raise ValueError(f"{where}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != header + math.prod(shape):
        raise ValueError(f"{where}: IDX payload of {len(data) - header} bytes, expected "
                         f"{math.prod(shape)} for the shape {list(shape)}: truncated or padded")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def verified_files(source: Source, md5s: Mapping[str, str]) -> dict[str, bytes]:
    """The IDX bytes of all four files, each verified before any is parsed."""
    return {name: verified_idx(source.files[name], name, md5s, source.remedy)[0] for name in NAMES}


def read_split(data: Mapping[str, bytes], split: str, source: Source) -> Split:
    """One official split as uint8 images [N, 1, 28, 28] and int64 labels."""
    images, labels = (parse_idx(data[name], magic, source.files[name])
                      for name, magic in zip(FILES[split], (IMAGES_MAGIC, LABELS_MAGIC)))
    if images.shape[1:] != (SIDE, SIDE) or labels.shape != images.shape[:1]:
        raise ValueError(f"Fashion-MNIST {split}: images {list(images.shape)} and labels "
                         f"{list(labels.shape)}, expected [N, {SIDE}, {SIDE}] and [N]")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise ValueError(f"Fashion-MNIST {split}: label {labels.max()} is not a class in [0, 10)")
    return Split(torch.from_numpy(images)[:, None], torch.from_numpy(labels).long())


def held_out(num: int, valid_size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices (kept, held out) of a seeded random `valid_size` of `num` training images."""
    if not 1 <= valid_size < num:
        raise ValueError(f"valid_size must be in [1, {num}) (the training set has {num} images), "
                         f"got {valid_size}")
    generator = torch.Generator().manual_seed(derived_seed(split_seed, SPLIT_KEY))
    order = torch.randperm(num, generator=generator)
    return order[valid_size:].sort().values, order[:valid_size].sort().values


def prepare_fashion_mnist(source: Source, valid_size: int, split_seed: int,
                          md5s: Mapping[str, str] = MD5) -> Dataset:
    """Fashion-MNIST: a seeded held-out `valid_size` of the official training set as "valid", the
    rest as "train", the official test set as "test"; class groups as in the module docstring."""
    data = verified_files(source, md5s)
    full_train, test = read_split(data, "train", source), read_split(data, "test", source)
    kept, valid = held_out(len(full_train), valid_size, split_seed)
    splits = {"train": full_train.subset(kept), "valid": full_train.subset(valid), "test": test}
    mean, std = channel_moments(splits["train"].x)
    # Nothing that depends on the source: the same data gives the same file (DVC, run fingerprints).
    meta = {"track": "fashion_mnist", "md5": {name: bytes_md5(data[name]) for name in NAMES},
            "valid_size": valid_size, "split_seed": split_seed,
            "class_names": list(CLASS_NAMES), "class_group_names": list(GROUP_NAMES),
            "sizes": {name: len(split) for name, split in splits.items()},
            "channel_mean": mean, "channel_std": std}
    return Dataset(splits, len(CLASS_NAMES), torch.tensor(CLASS_GROUPS, dtype=torch.int64), None, meta)
