"""Train one image network, a teacher or a student: `python -m partialkd.train_images ...`.

A teacher is a run without `--teacher` (grid {"ce": {}}, or {"ls": ...} for a label-smoothed
teacher); a student gets a teacher run's model.pt. The grid holds exactly one variant: on the
image tracks every method and hyperparameter value is its own job. The run directory gets the
same files as the synthetic trainer's: model.pt, metrics.json and, while running, resume.pt.
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
from partialkd.core.grid import expand_grid
from partialkd.data.prepared import load_dataset
from partialkd.models.vision import classifier, seeded_model
from partialkd.training.cli import GRID_HELP, add_run_options, parse_run_args, recipe_config
from partialkd.training.engine import run_epochs
from partialkd.training.images import ImageTrainConfig, image_loop, load_image_teacher
from partialkd.training.objective import NetworkObjective
from partialkd.training.run_directory import ORDER_SEED, require_teacher, save_run, sha256


def run(data: str | Path, grid: dict[str, dict[str, list]], config: ImageTrainConfig,
        out_dir: str | Path, teacher: str | Path | None = None, tags: dict[str, str] | None = None,
        on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the single variant of `grid` on `data` and write the run directory; returns metrics."""
    out_dir = Path(out_dir)
    variants = expand_grid(grid)
    if len(variants) != 1:
        raise ValueError(f"an image run trains one variant, but the grid gives {len(variants)}: "
                         "give one method with one value per parameter")
    require_teacher(variants, teacher)
    dataset = load_dataset(data)
    placement = Placement.choose(config.precision)
    teacher_model = None if teacher is None else placement.prepare(
        load_image_teacher(teacher, dataset.num_classes))
    objective = NetworkObjective(variants[0], teacher_model,
                               None if teacher_model is None else classifier(teacher_model).weight.float(),
                               dataset.num_classes, config.tau_squared)
    model = placement.prepare(seeded_model(config.arch, dataset.num_classes, config.seed))
    fingerprint = {"config": asdict(config), "variants": [v.to_dict() for v in variants],
                   "data": sha256(data), "teacher": None if teacher is None else sha256(teacher)}
    generator = torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED))
    loop = image_loop(model, dataset.splits, dataset.meta["channel_mean"], dataset.meta["channel_std"],
                      objective, config, generator, placement)
    result = run_epochs(loop, config.epochs, out_dir / "resume.pt", fingerprint, on_epoch_end)
    arch = {"family": "image", "name": config.arch, "num_classes": dataset.num_classes}
    return save_run(out_dir, arch, variants, fingerprint, result, dataset, objective.class_weights, tags)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train_images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (data.pt)")
    parser.add_argument("--arch", required=True, help="network, e.g. resnet20 (partialkd.models.vision)")
    parser.add_argument("--grid", required=True, type=json.loads, help=GRID_HELP)
    parser.add_argument("--teacher", help="a teacher run's model.pt")
    add_run_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parse_run_args(parser, argv)
    config = recipe_config(parser, ImageTrainConfig, args, arch=args.arch)
    run(args.data, args.grid, config, args.out_dir, args.teacher, dict(args.tag))


if __name__ == "__main__":
    main()
