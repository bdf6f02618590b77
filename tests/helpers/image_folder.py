"""Small generated ImageFolders in ImageNet's layout: ROOT/train/<wnid>/ and ROOT/val/<wnid>/.

Each image is its class's colour plus pixel noise, so a small network can learn the classes. The
files alternate between JPEG (named `.JPEG`, as ImageNet's are) and PNG, and every other image is
a little wider than tall, so that resizing and cropping have work to do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def wnids(num_classes: int) -> list[str]:
    """ImageNet-like class folder names, sorted in label order."""
    return [f"n{index:08d}" for index in range(num_classes)]


def write_image_folder(root: str | Path, num_classes: int = 4, train_per_class: int = 6,
                       val_per_class: int = 2, side: int = 32, seed: int = 0) -> Path:
    """Write the folder at `root` (images `side` px high, `side` or 5/4 `side` px wide); return it."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(num_classes, 3))
    for folder, count in (("train", train_per_class), ("val", val_per_class)):
        for label, wnid in enumerate(wnids(num_classes)):
            (root / folder / wnid).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                width = side + side // 4 * (index % 2)
                pixels = colours[label] + rng.normal(0, 30, size=(side, width, 3))
                image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
                if index % 2:
                    image.save(root / folder / wnid / f"{wnid}_{index}.png", format="PNG")
                else:
                    image.save(root / folder / wnid / f"{wnid}_{index}.JPEG", format="JPEG", quality=90)
    return root


def truncate(path: Path) -> None:
    """Cut a JPEG file in the middle of its scan data: its header still reads, decoding fails."""
    data = path.read_bytes()
    scan = data.index(b"\xff\xda")  # start-of-scan marker: the headers end here
    path.write_bytes(data[:scan + (len(data) - scan) // 2])
