"""The prepared-dataset file every track writes and every training run reads.

A dataset is a dict of splits (train / valid / test), each features, labels and, where the
truth is known (the synthetic track), the Bayes posterior. Metrics are then computed against
the posterior (expected accuracy, free of label noise) and otherwise against the labels.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from partialkd.common.torch_files import load_torch, save_torch

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Split:
    x: Tensor
    labels: Tensor
    posterior: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def truth(self, num_classes: int) -> Tensor:
        """The distribution a prediction is scored against: the posterior, else the one-hot label."""
        if self.posterior is not None:
            return self.posterior
        return torch.nn.functional.one_hot(self.labels, num_classes).to(self.x.dtype)

    def subset(self, index: Tensor) -> Split:
        posterior = None if self.posterior is None else self.posterior[index]
        return Split(self.x[index], self.labels[index], posterior)

    def to_dict(self) -> dict[str, Tensor]:
        out = {"x": self.x, "labels": self.labels}
        if self.posterior is not None:
            out["posterior"] = self.posterior
        return out


@dataclass(frozen=True)
class Dataset:
    splits: dict[str, Split]
    num_classes: int
    class_groups: Tensor  # [K] group id per class, for ordering geometry plots
    oracle_class_vectors: Tensor | None = None  # last layer of the Bayes teacher, if known
    meta: dict[str, Any] = field(default_factory=dict)  # how the data was made, for provenance

    def __getitem__(self, split: str) -> Split:
        return self.splits[split]

    @property
    def has_oracle(self) -> bool:
        return self.oracle_class_vectors is not None and all(
            split.posterior is not None for split in self.splits.values())


def as_features(split: Split, meta: dict[str, Any]) -> Split:
    """The split as float feature vectors [N, D], what an MLP takes: images (uint8) scaled to
    [0, 1], normalised by the training split's channel moments (meta) and flattened; float
    features (the synthetic track) as they are."""
    if split.x.is_floating_point():
        return split
    shape = (1, -1) + (1,) * (split.x.ndim - 2)  # broadcast over channels
    mean = torch.tensor(meta["channel_mean"]).view(shape)
    std = torch.tensor(meta["channel_std"]).view(shape)
    return Split(((split.x.float() / 255 - mean) / std).flatten(1), split.labels, split.posterior)


def save_dataset(dataset: Dataset, path: str | Path) -> None:
    """Write `dataset` atomically, with the sha256 of its tensors (`tensors_sha256`) that loading checks."""
    raw = {
        "splits": {name: split.to_dict() for name, split in dataset.splits.items()},
        "num_classes": dataset.num_classes,
        "class_groups": dataset.class_groups,
        "oracle_class_vectors": dataset.oracle_class_vectors,
        "meta": dataset.meta,
    }
    save_torch({**raw, "sha256": tensors_sha256(raw)}, path)


def tensors_sha256(raw: dict[str, Any]) -> str:
    """The sha256 of a saved dataset's tensors, names, dtypes and shapes included: torch.load does
    not check its archive's CRCs, so a flipped byte would otherwise train silently."""
    digest = hashlib.sha256()
    tensors = {f"splits.{name}.{key}": tensor for name, split in sorted(raw["splits"].items())
               for key, tensor in sorted(split.items())}
    tensors |= {key: raw[key] for key in ("class_groups", "oracle_class_vectors") if raw[key] is not None}
    for name, tensor in sorted(tensors.items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_dataset(path: str | Path) -> Dataset:
    raw = load_torch(path, "prepared dataset")
    if "sha256" in raw and tensors_sha256(raw) != raw["sha256"]:  # files written before the checksum: none
        raise ValueError(f"prepared dataset at {path} does not match its checksum: its contents changed after "
                         "it was written (a damaged disk or copy); delete it and re-run its preparation step")
    try:
        splits = {name: Split(**raw["splits"][name]) for name in SPLITS}
        dataset = Dataset(splits, int(raw["num_classes"]), raw["class_groups"],
                          raw["oracle_class_vectors"], raw["meta"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"prepared dataset at {path} lacks {error}: it was written by another "
                         "version of the code; delete it and re-run its preparation step") from error
    for name, split in dataset.splits.items():
        if split.x.shape[0] != len(split) or (split.posterior is not None
                                              and split.posterior.shape != (len(split), dataset.num_classes)):
            raise ValueError(f"prepared dataset at {path}: split '{name}' has inconsistent shapes; "
                             "delete it and re-run its preparation step")
        if len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < dataset.num_classes:
            raise ValueError(f"prepared dataset at {path}: split '{name}' has labels outside 0..{dataset.num_classes - 1}; "
                             "delete it and re-run its preparation step")
    return dataset


def first_examples(split: Split, count: int | None) -> Split:
    """The first `count` examples of `split` (all of them when None): a prefix, so that a token
    stream stays a stream."""
    if count is None or count >= len(split):
        return split
    return replace(split, x=split.x[:count], labels=split.labels[:count],
                   posterior=None if split.posterior is None else split.posterior[:count])
