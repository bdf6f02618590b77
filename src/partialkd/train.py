"""Train a teacher or a stack of student variants: `python -m partialkd.train ...`.

A teacher is a run with the grid {"ce": {}} and no teacher; students get `--teacher` (a
teacher run's model.pt, or 'oracle') and a grid of methods, trained together as one stacked
model. Outputs in `--out-dir`: the run directory (`partialkd.training.run_directory`: `model.pt` and
`metrics.json`) and, while running, its resume state (`resume-<digest>.pt`, training.engine).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from partialkd.common.seeds import derived_seed
from partialkd.core.grid import Variant, expand_grid
from partialkd.data.prepared import Dataset, Split, as_features, load_dataset
from partialkd.models.mlp import seeded_stack
from partialkd.training.cli import add_run_options, parse_run_args, recipe_config
from partialkd.training.read_runs import Network, teacher_network
from partialkd.training.run_directory import ORDER_SEED, require_teacher, save_run, sha256
from partialkd.training.stacked import Objective, TrainConfig, fit

# The purpose of the seed derived from a run's seed for its training subset (ORDER_SEED, the data
# order's, is in partialkd.training.run_directory; INIT_SEED, the initial weights', in partialkd.models.mlp).
SUBSET_SEED = 101


def run(data: str | Path, grid: dict[str, dict[str, list]], config: TrainConfig,
        out_dir: str | Path, teacher: str | Path | None = None, tags: dict[str, str] | None = None,
        on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train every variant of `grid` on `data` and write the run directory; returns metrics.

    `tags` are recorded in metrics.json (e.g. role=student, teacher=mlp) for the summary table.
    """
    out_dir = Path(out_dir)
    variants = expand_grid(grid)
    dataset = load_dataset(data)
    splits = {**dataset.splits, "train": _train_subset(dataset, config)}
    teacher_model = _load_teacher(teacher, variants, dataset)
    objective = _objective(variants, teacher_model, splits["train"], dataset.num_classes)
    splits = {name: as_features(split, dataset.meta) for name, split in splits.items()}
    model = seeded_stack(len(variants), splits["train"].x.shape[1], config.hidden, dataset.num_classes,
                         config.seed)
    fingerprint = {"config": asdict(config), "variants": [v.to_dict() for v in variants],
                   "data": sha256(data), "teacher": None if teacher is None else _teacher_id(teacher)}
    result = fit(model, splits, dataset.num_classes, objective, config, out_dir,
                 fingerprint, torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED)),
                 on_epoch_end)
    arch = {"num_models": len(variants), "in_dim": splits["train"].x.shape[1],
            "hidden": list(config.hidden), "num_classes": dataset.num_classes}
    class_weights = None if teacher_model is None else teacher_model.class_weights
    return save_run(out_dir, arch, variants, fingerprint, result, dataset, class_weights, tags)


def _train_subset(dataset: Dataset, config: TrainConfig) -> Split:
    train = dataset["train"]
    if config.train_size is None:
        return train
    if config.train_size > len(train):
        raise ValueError(f"train_size {config.train_size} exceeds the {len(train)} training examples")
    generator = torch.Generator().manual_seed(derived_seed(config.seed, SUBSET_SEED))
    return train.subset(torch.randperm(len(train), generator=generator)[:config.train_size])


def _load_teacher(teacher: str | Path | None, variants: list[Variant], dataset: Dataset) -> Network | None:
    require_teacher(variants, teacher)
    return None if teacher is None else teacher_network(teacher, dataset)


def _objective(variants: list[Variant], teacher: Network | None, train: Split,
               num_classes: int) -> Objective:
    """Each variant's target over the whole training set (NOTES §2), built once."""
    teacher_logits = None if teacher is None else teacher.logits(train)
    class_weights = None if teacher is None else teacher.class_weights
    targets = [variant.target(teacher_logits, train.labels, num_classes, class_weights).float()
               for variant in variants]
    return Objective(torch.stack(targets), torch.tensor([v.lam for v in variants]),
                     torch.tensor([v.tau for v in variants]), [v.label for v in variants])


def _teacher_id(teacher: str | Path) -> str:
    return "oracle" if str(teacher) == "oracle" else sha256(teacher)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (data.pt)")
    parser.add_argument("--grid", required=True, type=json.loads,
                        help='JSON: method -> {param: [values]}, e.g. \'{"kd": {"lam": [0.9], "tau": [4]}}\'')
    parser.add_argument("--teacher", help="a teacher run's model.pt, or 'oracle'")
    add_run_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parse_run_args(parser, argv)
    config = recipe_config(parser, TrainConfig, args)
    run(args.data, args.grid, config, args.out_dir, args.teacher, dict(args.tag))


if __name__ == "__main__":
    main()
