"""The image trainer fed by DataLoaders (the ImageNet track): `image_training`'s epoch, objective
and prediction over `imagenet.FolderImages` instead of device-resident splits.

The step is the CIFAR trainer's own (`image_training.sgd_epoch`): per-batch targets from the
frozen teacher's logits on the same augmented images, bf16 autocast and channels_last on a GPU,
no host synchronisation inside an epoch. Evaluation adds top-5 accuracy to the usual metrics.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from partialkd.image_training import ImageObjective, ImageTrainConfig, Placement, predict, sgd_epoch
from partialkd.imagenet import FolderImages
from partialkd.metrics import accuracy, classification_metrics
from partialkd.training import EVAL_SPLITS, Loop

TOP_K = 5  # the extra metric `top5_acc` (top-min(5, K) where K is smaller)


def loader_loop(model: nn.Module, data: dict[str, FolderImages], objective: ImageObjective,
                config: ImageTrainConfig, generator: torch.Generator, placement: Placement) -> Loop:
    """The `Loop` that `training.run_epochs` drives for one network on file-backed splits."""
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones),
                                                    gamma=config.lr_decay)

    def train_epoch() -> Tensor:
        mean_loss = sgd_epoch(model, data["train"], objective, optimizer, config, generator, placement)
        schedule.step()
        return mean_loss

    def logits(split: str) -> Tensor:
        return predict(model, data[split], config.eval_batch_size, placement)

    def valid_accuracy() -> Tensor:
        return accuracy(logits("valid")[None], F.one_hot(data["valid"].labels, objective.num_classes))

    def evaluate() -> dict[str, dict[str, Tensor]]:
        return {split: {name: value.cpu() for name, value in
                        scores(logits(split), data[split].labels, objective.num_classes).items()}
                for split in EVAL_SPLITS}

    return Loop(model, optimizer, schedule, generator, [objective.variant.label], len(data["train"]),
                "images", train_epoch, valid_accuracy, evaluate)


def scores(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, Tensor]:
    """`metrics.classification_metrics` plus top-5 accuracy, each [1], of logits [N, K]."""
    top = logits.topk(min(TOP_K, num_classes), dim=1).indices
    top_k = (top == labels[:, None]).any(dim=1).float().mean()[None]
    return {**classification_metrics(logits[None], F.one_hot(labels, num_classes)), "top5_acc": top_k}
