"""Tests for the prepared-dataset file (partialkd.data.prepared): a damaged file is refused
naming it (issue 16, finding 6), a sound one loads as it was written."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from partialkd.data.prepared import Dataset, Split, load_dataset, save_dataset

MARKER = bytes(range(200, 232))  # 32 bytes found once in the file: the start of train's images


def dataset(labels: torch.Tensor | None = None) -> Dataset:
    images = torch.randint(0, 100, (20, 3, 4, 4), dtype=torch.uint8)
    images.view(-1)[:len(MARKER)] = torch.tensor(list(MARKER), dtype=torch.uint8)
    train = Split(images, torch.arange(20) % 4 if labels is None else labels)
    other = Split(torch.zeros(4, 3, 4, 4, dtype=torch.uint8), torch.arange(4))
    return Dataset({"train": train, "valid": other, "test": other}, 4, torch.zeros(4, dtype=torch.long))


def test_a_saved_dataset_loads_as_it_was_written(tmp_path: Path) -> None:
    original = dataset()
    save_dataset(original, tmp_path / "data.pt")
    loaded = load_dataset(tmp_path / "data.pt")
    assert torch.equal(loaded["train"].x, original["train"].x)
    assert torch.equal(loaded["train"].labels, original["train"].labels)


def test_a_flipped_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.pt"
    save_dataset(dataset(), path)
    content = bytearray(path.read_bytes())
    assert content.count(MARKER) == 1
    content[content.index(MARKER) + 5] ^= 0x01  # torch.load itself reads it without complaint
    path.write_bytes(bytes(content))
    assert torch.load(path, weights_only=True)["splits"]["train"]["x"].view(-1)[5] == MARKER[5] ^ 0x01
    with pytest.raises(ValueError, match="does not match its checksum") as error:
        load_dataset(path)
    assert str(path) in str(error.value) and "delete it and re-run" in str(error.value)


def test_labels_outside_the_classes_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.pt"
    save_dataset(dataset(labels=torch.arange(20) % 5), path)  # 4 classes
    with pytest.raises(ValueError, match=r"labels outside 0\.\.3") as error:
        load_dataset(path)
    assert str(path) in str(error.value)


def test_a_file_written_before_the_checksum_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "data.pt"
    save_dataset(dataset(), path)
    raw = torch.load(path, weights_only=True)
    del raw["sha256"]
    torch.save(raw, path)
    assert len(load_dataset(path)["train"]) == 20
