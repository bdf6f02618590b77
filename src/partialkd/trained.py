"""Trained networks as the analyses see them, whatever the track: logits on a split of the
prepared dataset and the last layer's class vectors.

A run's model.pt holds one network (an image run) or a stack of them (a synthetic run, one per
grid point); each is loaded at its best-on-validation weights or, on request, at the initial
weights its trainer started from: model.pt does not store these, so they are rebuilt from the
recorded architecture and seed by the trainers' own seeded construction (`initial_state`). A
teacher is a run's single network or, on the synthetic track, the Bayes-optimal oracle.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from partialkd.datasets import Dataset, Split, as_features
from partialkd.grid import Variant
from partialkd.image_models import build_image_model, classifier
from partialkd.image_training import DeviceImages, Placement, predict
from partialkd.torch_files import load_torch
from partialkd.lm_models import seeded_lm
from partialkd.lm_training import lm_network
from partialkd.models import seeded_model, seeded_stack
from partialkd.teachers import ORACLE, build_model, plain_state_dict

PREDICT_BATCH = 500  # images per forward pass when scoring a whole split


@dataclass(frozen=True)
class Network:
    """One trained network: its variant and training config (None and {} for the oracle),
    class vectors [K, h], logits."""
    variant: Variant | None
    training: dict[str, Any]
    class_weights: Tensor
    forward: Callable[[Split], Tensor]

    def logits(self, split: Split) -> Tensor:
        """Float logits [N, K] of every example of `split`, in eval mode, on the CPU."""
        with torch.no_grad():
            return self.forward(split).detach().cpu()


def checkpoint_networks(path: str | Path, dataset: Dataset, what: str = "trained model",
                        initial: bool = False) -> dict[str, Network]:
    """Every network of a finished run's model.pt (`what`, in errors), by variant label, at its
    best-on-validation weights, or (`initial`) at the weights its training started from."""
    saved = load_torch(path, what)
    arch = saved["arch"]
    _check_fits(path, arch, dataset)
    variants = [Variant.from_dict(v) for v in saved["variants"]]
    training = saved["fingerprint"]["config"]
    state = initial_state(arch, training["seed"]) if initial else saved["best_state"]
    if arch.get("family") in ("image", "imagenet"):
        network = _image_network(arch, state, dataset)
        return {variants[0].label: Network(variants[0], training, *network)}
    if arch.get("family") == "lm":
        network = lm_network(arch, state, training)
        return {variants[0].label: Network(variants[0], training, *network)}
    model = build_model(arch)
    model.load_state_dict(state)
    model.requires_grad_(False).eval()

    def forward(split: Split, index: int) -> Tensor:
        return model(as_features(split, dataset.meta).x)[index]

    return {variant.label: Network(variant, training, model.class_weights(index),
                                   lambda split, index=index: forward(split, index))
            for index, variant in enumerate(variants)}


def initial_state(arch: dict[str, Any], seed: int) -> dict[str, Tensor]:
    """The weights a run of `arch` (model.pt's) and `seed` started from, drawn again by its
    trainer's seeded construction: one initialisation per seed, shared by every method of the
    seed and (a synthetic stack) by every variant of the stack."""
    if arch.get("family") in ("image", "imagenet"):
        return seeded_model(arch["name"], arch["num_classes"], seed).state_dict()
    if arch.get("family") == "lm":
        return seeded_lm(arch["name"], arch["num_classes"], seed).state_dict()
    return seeded_stack(arch["num_models"], arch["in_dim"], arch["hidden"], arch["num_classes"],
                        seed).state_dict()


def teacher_network(source: str | Path, dataset: Dataset) -> Network:
    """A teacher: 'oracle' (the synthetic track's Bayes posterior: logits log p(y|x), class
    vectors the templates; NOTES §3) or the model.pt of a single-network run."""
    if str(source) == ORACLE:
        if not dataset.has_oracle:
            raise ValueError("teacher 'oracle' needs a dataset with a known posterior "
                             "(the synthetic track); give a trained teacher's model.pt instead")
        return Network(None, {}, dataset.oracle_class_vectors, _log_posterior)
    networks = checkpoint_networks(source, dataset, "teacher checkpoint")
    if len(networks) != 1:
        raise ValueError(f"teacher checkpoint {source} holds {len(networks)} networks; a teacher "
                         "comes from a run with a single variant")
    return next(iter(networks.values()))


def file_teacher_network(source: str | Path, dataset: Dataset, arch: str, crop: int, resize: int) -> Network:
    """A teacher given as a plain state-dict file of torchvision's `arch` (an ImageNet track's
    pretrained teacher), scored like the students: from the image files at `crop` and `resize`."""
    from partialkd.imagenet import FAMILY  # here: it imports torchvision, about a second

    family = {"family": FAMILY, "name": arch, "crop": crop, "resize": resize}
    return Network(None, {}, *_image_network(family, plain_state_dict(source), dataset))


def _log_posterior(split: Split) -> Tensor:
    assert split.posterior is not None, "checked by has_oracle"
    return split.posterior.clamp_min(torch.finfo(split.posterior.dtype).tiny).log()


def _check_fits(path: str | Path, arch: dict[str, Any], dataset: Dataset) -> None:
    """Refuse a checkpoint trained for other classes or (an MLP) other input features."""
    if arch.get("num_classes") != dataset.num_classes:
        raise ValueError(f"{path} was trained for {arch.get('num_classes')} classes but the dataset "
                         f"has {dataset.num_classes}: it belongs to another configuration; retrain it")
    dim = dataset["valid"].x[0].numel()
    if arch.get("family") is None and arch["in_dim"] != dim:
        raise ValueError(f"{path} was trained on {arch['in_dim']} input features but the dataset has "
                         f"{dim}: it belongs to another configuration; retrain it")


def _image_network(arch: dict[str, Any], state: dict[str, Tensor], dataset: Dataset
                   ) -> tuple[Tensor, Callable[[Split], Tensor]]:
    """An image network's class vectors and forward pass over a split (on the GPU if any)."""
    placement = Placement.choose("fp32")
    model = placement.prepare(build_image_model(arch["name"], dataset.num_classes))
    model.load_state_dict(state)
    model.requires_grad_(False).eval()

    def forward(split: Split) -> Tensor:
        return predict(model, _images(arch, split, dataset.meta, placement), PREDICT_BATCH, placement)

    return classifier(model).weight.detach().float().cpu(), forward


def _images(arch: dict[str, Any], split: Split, meta: dict[str, Any], placement: Placement) -> Any:
    """The split's batches as the network's trainer saw them at evaluation: on the device, or
    (family "imagenet") read from the image files with the run's crop and resize."""
    if arch["family"] == "imagenet":
        from partialkd import imagenet  # here: it imports torchvision, about a second

        size = imagenet.InputSize(arch["crop"], arch["resize"])
        return imagenet.FolderImages(split, meta["root"], size, placement, imagenet.default_workers())
    return DeviceImages(split, meta["channel_mean"], meta["channel_std"], placement)
