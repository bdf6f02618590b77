"""Small fake CIFAR-100 archives in the exact layout of the real cifar-100-python.tar.gz.

The members are pickled dicts under `cifar-100-python/` as in the real file: `train` and `test`
with `data` (uint8 [N, 3072]: R, G, B planes of 32 x 32), `fine_labels`, `coarse_labels`,
`filenames` and `batch_label`; `meta` with `fine_label_names` and `coarse_label_names`.
Fine class c is in superclass c // 5. Each image is its class's colour plus pixel noise, and
the classes of a superclass share a base colour, so a tiny network can learn them and a
teacher's soft labels show the superclasses.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

FINE_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
COARSE_NAMES = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things "
    "large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals "
    "non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2").split()
assert len(FINE_NAMES) == 100 and len(COARSE_NAMES) == 20
PIXELS = 3 * 32 * 32


def fake_cifar100(train_per_class: int = 3, test_per_class: int = 1, seed: int = 0) -> dict[str, dict]:
    """The three members ('train', 'test', 'meta') of a fake CIFAR-100, as dicts to pickle."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(60, 195, size=(len(COARSE_NAMES), 3))
    colours = base[np.arange(len(FINE_NAMES)) // 5] + rng.uniform(-35, 35, size=(len(FINE_NAMES), 3))
    members: dict[str, dict[str, Any]] = {
        "meta": {"fine_label_names": list(FINE_NAMES), "coarse_label_names": list(COARSE_NAMES)}}
    for name, per_class, batch_label in (("train", train_per_class, "training batch 1 of 1"),
                                         ("test", test_per_class, "testing batch 1 of 1")):
        fine = rng.permutation(np.repeat(np.arange(len(FINE_NAMES)), per_class))
        planes = colours[fine][:, :, None] + rng.normal(0, 25, size=(len(fine), 3, 32 * 32))
        members[name] = {
            "filenames": [f"{FINE_NAMES[c]}_s_{i:06d}.png" for i, c in enumerate(fine)],
            "batch_label": batch_label,
            "fine_labels": [int(c) for c in fine],
            "coarse_labels": [int(c) // 5 for c in fine],
            "data": np.clip(planes, 0, 255).round().astype(np.uint8).reshape(len(fine), PIXELS),
        }
    return members


def write_members(path: str | Path, members: dict[str, dict]) -> str:
    """Pickle `members` (protocol 2) under cifar-100-python/ in a tar.gz at `path`; return its MD5.

    The same members give the same bytes (fixed timestamps), hence the same MD5.
    """
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        folder = tarfile.TarInfo("cifar-100-python")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, content in members.items():
            payload = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_cifar100_archive(path: str | Path, train_per_class: int = 3, test_per_class: int = 1,
                           seed: int = 0) -> str:
    """Write a fake cifar-100-python.tar.gz (100 x train_per_class training images, 100 x
    test_per_class test images) at `path`; return its MD5."""
    return write_members(path, fake_cifar100(train_per_class, test_per_class, seed))
