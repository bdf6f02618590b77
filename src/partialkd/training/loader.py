"""The image trainer fed by DataLoaders (the ImageNet track): `image_training`'s loop (epoch,
objective and prediction) over `imagenet.FolderImages` instead of device-resident splits.

The step is the CIFAR trainer's own (`training.images.sgd_epoch`): per-batch targets from the
frozen teacher's logits on the same augmented images, bf16 autocast and channels_last on a GPU,
no host synchronisation inside an epoch. Evaluation adds top-5 accuracy to the usual metrics.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from partialkd.training.objective import NetworkObjective

from partialkd.training.images import ImageTrainConfig, sgd_loop, split_scores

from partialkd.common.devices import Placement
from partialkd.data.imagenet import FolderImages
from partialkd.training.engine import Loop

TOP_K = 5  # the extra metric `top5_acc` (top-min(5, K) where K is smaller)


def loader_loop(model: nn.Module, data: dict[str, FolderImages], objective: NetworkObjective,
                config: ImageTrainConfig, generator: torch.Generator, placement: Placement) -> Loop:
    """The `Loop` that `training.run_epochs` drives for one network on file-backed splits."""
    return sgd_loop(model, data, objective, config, generator, placement, scores)


def scores(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, Tensor]:
    """`training.images.split_scores` plus top-5 accuracy, each [1], of logits [N, K]."""
    top = logits.topk(min(TOP_K, num_classes), dim=1).indices
    top_k = (top == labels[:, None]).any(dim=1).float().mean()[None]
    return {**split_scores(logits, labels, num_classes), "top5_acc": top_k}
