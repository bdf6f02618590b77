"""Train one image network, a teacher or a student: `python -m partialkd.train_images ...`.

A teacher is a run without `--teacher` (grid {"ce": {}}, or {"ls": ...} for a label-smoothed
teacher); a student gets a teacher run's model.pt, and with `--teacher-cache` reads the teacher's
logits from the cache that `python -m partialkd.cache_teacher` wrote for that teacher instead of
running it (training.teacher_cache: the same batches, the same targets). The grid holds exactly
one variant: on the image tracks every method and hyperparameter value is its own job. The run
directory gets the same files as the synthetic trainer's: model.pt, metrics.json and, while
running, its resume state (resume-<digest>.pt).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from partialkd.common.devices import Placement
from partialkd.common.seeds import derived_seed
from partialkd.core.grid import Variant, expand_grid
from partialkd.data.prepared import load_dataset
from partialkd.models.vision import classifier, seeded_model
from partialkd.training.cli import GRID_HELP, add_run_options, parse_run_args, recipe_config
from partialkd.training.engine import run_epochs
from partialkd.training.images import ImageTrainConfig, image_loop, load_image_teacher
from partialkd.training.objective import NetworkObjective
from partialkd.training.run_directory import ORDER_SEED, require_teacher, save_run, sha256
from partialkd.training.teacher_cache import load_cache


def run(data: str | Path, grid: dict[str, dict[str, list]], config: ImageTrainConfig,
        out_dir: str | Path, teacher: str | Path | None = None, tags: dict[str, str] | None = None,
        on_epoch_end: Callable[[int], None] | None = None,
        teacher_cache: str | Path | None = None) -> dict[str, Any]:
    """Train the single variant of `grid` on `data` and write the run directory; returns metrics."""
    out_dir = Path(out_dir)
    variants = expand_grid(grid)
    if len(variants) != 1:
        raise ValueError(f"an image run trains one variant, but the grid gives {len(variants)}: "
                         "give one method with one value per parameter")
    require_teacher(variants, teacher)
    if teacher_cache is not None and teacher is None:
        raise ValueError("--teacher-cache holds the logits of a --teacher: give --teacher too")
    dataset = load_dataset(data)
    placement = Placement.choose(config.precision)
    fingerprint = {"config": asdict(config), "variants": [v.to_dict() for v in variants],
                   "data": sha256(data), "teacher": None if teacher is None else sha256(teacher)}
    cache = None if teacher_cache is None else load_cache(teacher_cache, fingerprint["teacher"],
                                                          fingerprint["data"], placement)
    if cache is not None:
        fingerprint["teacher_cache"] = str(cache.logits.dtype).removeprefix("torch.")
    objective = _objective(variants[0], teacher, cache is None, dataset.num_classes, config, placement)
    model = placement.prepare(seeded_model(config.arch, dataset.num_classes, config.seed))
    generator = torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED))
    loop = image_loop(model, dataset.splits, dataset.meta["channel_mean"], dataset.meta["channel_std"],
                      objective, config, generator, placement, cache)
    result = run_epochs(loop, config.epochs, out_dir, fingerprint, on_epoch_end)
    arch = {"family": "image", "name": config.arch, "num_classes": dataset.num_classes}
    return save_run(out_dir, arch, variants, fingerprint, result, dataset, objective.class_weights, tags)


def _objective(variant: Variant, teacher: str | Path | None, live: bool, num_classes: int,
               config: ImageTrainConfig, placement: Placement) -> NetworkObjective:
    """The variant's loss: with the teacher network if it runs (`live`), with its class vectors (the
    sim targets') in any case."""
    if teacher is None:
        return NetworkObjective(variant, None, None, num_classes, config.tau_squared)
    model = placement.prepare(load_image_teacher(teacher, num_classes))
    return NetworkObjective(variant, model if live else None, classifier(model).weight.float(), num_classes,
                            config.tau_squared)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train_images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (data.pt)")
    parser.add_argument("--arch", required=True, help="network, e.g. resnet20 (partialkd.models.vision)")
    parser.add_argument("--grid", required=True, type=json.loads, help=GRID_HELP)
    parser.add_argument("--teacher", help="a teacher run's model.pt")
    parser.add_argument("--teacher-cache", help="the teacher's logits of every augmented view "
                                                "(`python -m partialkd.cache_teacher`), read instead of running it")
    add_run_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parse_run_args(parser, argv)
    config = recipe_config(parser, ImageTrainConfig, args, arch=args.arch)
    run(args.data, args.grid, config, args.out_dir, args.teacher, dict(args.tag),
        teacher_cache=args.teacher_cache)


if __name__ == "__main__":
    main()
