"""The image trainers' command line (train_images, train_imagenet): SGD with momentum and a step
schedule, read into an `ImageTrainConfig`."""
from __future__ import annotations

import argparse

from partialkd.training.images import ImageTrainConfig


def add_sgd_options(parser: argparse.ArgumentParser) -> None:
    """--epochs to --lr-decay: SGD with momentum and a step schedule (`ImageTrainConfig`)."""
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--momentum", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--milestones", type=int, nargs="*", default=[], help="epochs where lr decays")
    parser.add_argument("--lr-decay", type=float, required=True, help="lr factor at each milestone")


def sgd_config(args: argparse.Namespace, **fields: int) -> ImageTrainConfig:
    """The `ImageTrainConfig` of --arch and the values of add_sgd_options and add_run_options;
    `fields` are the trainer's own options that it sets too (eval_batch_size)."""
    return ImageTrainConfig(args.arch, args.epochs, args.batch_size, args.lr, args.momentum,
                            args.weight_decay, tuple(args.milestones), args.lr_decay, args.seed,
                            not args.no_tau_squared, args.precision, **fields)
