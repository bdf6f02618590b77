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
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from partialkd.common.torch_files import load_torch
from partialkd.core.grid import Variant
from partialkd.data.prepared import Dataset, Split, as_features
from partialkd.models.mlp import recorded_stack, seeded_stack
from partialkd.training.teachers import ORACLE, plain_state_dict



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
    if arch.get("family") is not None:
        network = _family_trainer(arch["family"]).saved_network(arch, state, training, dataset)
        return {variants[0].label: Network(variants[0], training, *network)}
    model = recorded_stack(arch)
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
    if arch.get("family") is not None:
        return _family_trainer(arch["family"]).initial_network(arch, seed).state_dict()
    return seeded_stack(arch["num_models"], arch["in_dim"], arch["hidden"], arch["num_classes"],
                        seed).state_dict()


def network_parameters(arch: dict[str, Any]) -> int:
    """The parameter count of one network of model.pt's `arch` (one model of a stack)."""
    if arch.get("family") is not None:
        return _parameters(_family_trainer(arch["family"]).initial_network(arch, 0))
    return _parameters(recorded_stack(arch)) // arch["num_models"]


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    from partialkd.data.imagenet import FAMILY  # here: it imports torchvision, about a second

    family = {"family": FAMILY, "name": arch, "crop": crop, "resize": resize}
    return Network(None, {}, *_family_trainer(FAMILY).saved_network(family, plain_state_dict(source), {}, dataset))


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


def _family_trainer(family: str) -> ModuleType:
    """The trainer module of a network family: its `saved_network(arch, state, training, dataset)`
    gives the class vectors and forward pass, its `initial_network(arch, seed)` the initial
    weights. Imported only here, when a run of the family is read, so that a step reading one
    family's runs does not depend on another family's code: an import inside a function counts
    only where a step names the module (partialkd.plan.code_dependencies)."""
    if family in ("image", "imagenet"):
        from partialkd.training import images as trainer  # here: see the docstring
    elif family == "lm":
        from partialkd.training import lm as trainer
    else:
        raise ValueError(f"model.pt names an unknown network family {family!r}; it was written by "
                         "another version of partialkd: retrain it")
    return trainer
