"""Train one LSTM language model, a teacher or a student: `python -m partialkd.train_lm ...`.

The Penn Treebank track (NOTES §4): a teacher is a run without `--teacher` (grid {"ce": {}}, e.g.
`--arch medium`); a student (e.g. `--arch small`) gets a teacher run's model.pt. The grid holds
exactly one variant, every target applying per token. The run directory gets the same files as
the other trainers': model.pt, metrics.json (accuracy, NLL, ECE and perplexity `ppl` per split
at the best-on-validation and the last epoch) and, while running, its resume state (resume-<digest>.pt).
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
from partialkd.core.targets import TARGETS
from partialkd.data.prepared import load_dataset
from partialkd.models.lstm import ARCHITECTURES, seeded_lm
from partialkd.training.cli import GRID_HELP, add_run_options, parse_run_args, recipe_config
from partialkd.training.engine import run_epochs
from partialkd.training.lm import LMTrainConfig, lm_loop, load_lm_teacher
from partialkd.training.objective import NetworkObjective
from partialkd.training.run_directory import ORDER_SEED, require_teacher, save_run, sha256


def run(data: str | Path, grid: dict[str, dict[str, list]], config: LMTrainConfig,
        out_dir: str | Path, teacher: str | Path | None = None, tags: dict[str, str] | None = None,
        on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the single variant of `grid` on the token streams of `data` and write the run
    directory; returns the metrics."""
    variants = expand_grid(grid)
    if len(variants) != 1:
        raise ValueError(f"a language-model run trains one variant, but the grid gives "
                         f"{len(variants)}: give one method with one value per parameter")
    require_teacher(variants, teacher)
    dataset = load_dataset(data)
    placement = Placement.choose(config.precision)
    teacher_model = None if teacher is None else placement.prepare(
        load_lm_teacher(teacher, dataset.num_classes))
    # The teacher reads the windows only for targets built from its logits (not ce, ls, kd_sim).
    reads = teacher_model is not None and TARGETS[variants[0].method].needs_teacher
    objective = NetworkObjective(variants[0], teacher_model if reads else None,
                               None if teacher_model is None else teacher_model.decoder.weight.float(),
                               dataset.num_classes, config.tau_squared)
    model = placement.prepare(seeded_lm(config.arch, dataset.num_classes, config.seed))
    fingerprint = {"config": asdict(config), "variants": [v.to_dict() for v in variants],
                   "data": sha256(data), "teacher": None if teacher is None else sha256(teacher)}
    generator = torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED))
    loop = lm_loop(model, dataset.splits, objective, config, generator, placement)
    result = run_epochs(loop, config.epochs, out_dir, fingerprint, on_epoch_end)
    arch = {"family": "lm", "name": config.arch, "num_classes": dataset.num_classes}
    return save_run(Path(out_dir), arch, variants, fingerprint, result, dataset, objective.class_weights, tags)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train_lm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared Penn Treebank dataset (data.pt)")
    parser.add_argument("--arch", required=True, choices=ARCHITECTURES, help="LSTM size")
    parser.add_argument("--grid", required=True, type=json.loads, help=GRID_HELP)
    parser.add_argument("--teacher", help="a teacher run's model.pt")
    add_run_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parse_run_args(parser, argv)
    config = recipe_config(parser, LMTrainConfig, args, arch=args.arch)
    run(args.data, args.grid, config, args.out_dir, args.teacher, dict(args.tag))


if __name__ == "__main__":
    main()
