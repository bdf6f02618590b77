"""The command line that the trainers share (train, train_images, train_imagenet, train_lm): the
training recipe as one JSON object, the run options, and the first steps of their `main`."""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

from partialkd.common.records import record_from

T = TypeVar("T")

GRID_HELP = 'JSON with one variant, e.g. \'{"kd": {"lam": [0.9], "tau": [4]}}\''
RECIPE_HELP = ("JSON: the training recipe, params.yaml's keys of it (the fields of the trainer's "
               "configuration), e.g. \'{\"epochs\": 2, \"batch_size\": 64, ...}\'")


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
    """--recipe to --out-dir: the training recipe, the seed, threads, tags and run directory."""
    parser.add_argument("--recipe", required=True, type=json.loads, help=RECIPE_HELP)
    parser.add_argument("--seed", type=int, required=True)
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


def recipe_config(parser: argparse.ArgumentParser, cls: type[T], args: argparse.Namespace, **fields: Any) -> T:
    """The trainer's configuration `cls` from --recipe, --seed and `fields` (e.g. arch), checked
    before anything is read: a wrong key or value stops with the parser's usage error."""
    try:
        return record_from(cls, args.recipe, "--recipe", seed=args.seed, **fields)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
