"""The command line that the one-run trainers share (train_images, train_imagenet, train_lm):
their common options, the image trainers' SGD options, and the first steps of their `main`."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import torch

from partialkd.image_training import PRECISIONS, ImageTrainConfig

GRID_HELP = 'JSON with one variant, e.g. \'{"kd": {"lam": [0.9], "tau": [4]}}\''


def parse_tag(text: str) -> tuple[str, str]:
    """An argparse type: a --tag KEY=VALUE as (KEY, VALUE)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--tag expects KEY=VALUE, got {text!r}")
    return key, value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_sgd_options(parser: argparse.ArgumentParser) -> None:
    """--epochs to --lr-decay: SGD with momentum and a step schedule (`ImageTrainConfig`)."""
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--momentum", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, required=True)
    parser.add_argument("--milestones", type=int, nargs="*", default=[], help="epochs where lr decays")
    parser.add_argument("--lr-decay", type=float, required=True, help="lr factor at each milestone")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """--seed to --out-dir: the seed, τ² scaling, precision, threads, tags and run directory."""
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--no-tau-squared", action="store_true", help="c(τ) = 1 instead of τ²")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bf16 autocast on a GPU, fp32 on a CPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--tag", action="append", default=[], type=parse_tag, metavar="KEY=VALUE",
                        help="a label recorded in metrics.json (repeatable)")
    parser.add_argument("--out-dir", required=True)


def parse_run_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`argv` parsed by `parser`, with progress logged to stderr and torch on --threads threads."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    return args


def sgd_config(args: argparse.Namespace, **fields: int) -> ImageTrainConfig:
    """The `ImageTrainConfig` of --arch and the values of add_sgd_options and add_run_options;
    `fields` are the trainer's own options that it sets too (eval_batch_size)."""
    return ImageTrainConfig(args.arch, args.epochs, args.batch_size, args.lr, args.momentum,
                            args.weight_decay, tuple(args.milestones), args.lr_decay, args.seed,
                            not args.no_tau_squared, args.precision, **fields)
