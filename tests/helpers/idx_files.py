"""Small fake Fashion-MNIST files in the exact format of the real ones.

An IDX file is a big-endian magic number (0x0000 0803 for unsigned-byte images in three
dimensions, 0x0000 0801 for unsigned-byte labels in one), one big-endian uint32 size per
dimension, then the bytes in C order. The published files are gzipped with the file name in the
gzip header; Debian's carry the same content compressed again without it. Each fake image is
its class's grey level in a class-dependent band of rows plus noise, so the classes differ.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import struct
from pathlib import Path

import numpy as np

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array."""
    assert array.dtype == np.uint8
    return struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.tobytes()


def gzipped(data: bytes, name: str) -> bytes:
    """`data` gzipped with a fixed time stamp and `name` in the header ("" for none)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write(data)
    return buffer.getvalue()


def fake_fashion_mnist(train: int = 120, test: int = 30, seed: int = 0) -> dict[str, bytes]:
    """The IDX bytes of each of the four files, `train` and `test` images with labels 0-9."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, count in (("train", train), ("t10k", test)):
        labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(count, 28, 28))
        for index, label in enumerate(labels):
            images[index, 2 * label:2 * label + 8] += 20 * label + 30
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(np.clip(images, 0, 255).astype(np.uint8))
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(labels)
    return files


def published(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files as published: NAME.gz with NAME in the gzip header."""
    return {f"{name}.gz": gzipped(data, name) for name, data in files.items()}


def checksums(files: dict[str, bytes]) -> dict[str, str]:
    """The MD5 of each published NAME.gz and of each NAME's IDX bytes (the keys MD5 has)."""
    everything = {**published(files), **files}
    return {name: hashlib.md5(data).hexdigest() for name, data in everything.items()}


def write_files(folder: Path, files: dict[str, bytes], form: str = "published") -> Path:
    """Write the four files into `folder`: "published" (NAME.gz as published), "debian" (NAME.gz
    compressed again without a name in the header) or "plain" (NAME, not compressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if form == "published":
            (folder / f"{name}.gz").write_bytes(gzipped(data, name))
        elif form == "debian":
            (folder / f"{name}.gz").write_bytes(gzipped(data, ""))
        else:
            (folder / name).write_bytes(data)
    return folder
