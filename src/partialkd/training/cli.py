"""The command line that the one-run trainers share (train_images, train_imagenet, train_lm):
their common options and the first steps of their `main` (the image trainers' SGD options are in
training.image_cli)."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import torch

from partialkd.common.devices import PRECISIONS

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
