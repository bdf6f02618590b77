"""Train a teacher or a stack of student variants: `python -m partialkd.train ...`.

A teacher is a run with the grid {"ce": {}} and no teacher; students get `--teacher` (a
teacher run's model.pt, or 'oracle') and a grid of methods. Outputs in `--out-dir`:
`model.pt` (final and best-on-validation weights of every variant), `metrics.json` (per variant
its metrics at the best-on-validation and the last epoch, and, from the trainers that record the
test accuracy after every epoch (the image tracks'), `peak`: {"epoch": E, "test": {"acc": a}},
the best test accuracy over the epochs, never used for selection; the validation-selected
variant of each method; the configuration and provenance) and, while running, `resume.pt`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from partialkd.datasets import Dataset, Split, as_features, load_dataset
from partialkd.grid import Variant, expand_grid
from partialkd.io import save_json
from partialkd.models import seeded_stack
from partialkd.seeds import derived_seed
from partialkd.provenance import provenance
from partialkd.methods import SIMILARITY_TARGETS
from partialkd.targets import distils, similarity_entropy
from partialkd.torch_files import save_torch
from partialkd.trained import Network, teacher_network
from partialkd.training import FitResult, Objective, TrainConfig, fit, peak_test

# Purposes of the seeds derived from a run's seed (the data splits use their own keys; INIT_SEED,
# the initial weights', lives with the seeded construction in partialkd.models).
SUBSET_SEED, ORDER_SEED = 101, 102


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
    result = fit(model, splits, dataset.num_classes, objective, config, out_dir / "resume.pt",
                 fingerprint, torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED)),
                 on_epoch_end)
    arch = {"num_models": len(variants), "in_dim": splits["train"].x.shape[1],
            "hidden": list(config.hidden), "num_classes": dataset.num_classes}
    class_weights = None if teacher_model is None else teacher_model.class_weights
    return save_run(out_dir, arch, variants, fingerprint, result, dataset, class_weights, tags)


def save_run(out_dir: Path, arch: dict[str, Any], variants: list[Variant], fingerprint: dict[str, Any],
             result: FitResult, dataset: Dataset, class_weights: Tensor | None,
             tags: dict[str, str] | None) -> dict[str, Any]:
    """Write a finished run's model.pt and metrics.json, drop its resume checkpoint; the metrics.
    `class_weights`: the teacher's class vectors (None without a teacher), for `sim_entropy`."""
    save_torch({"arch": arch, "variants": fingerprint["variants"], "final_state": result.final_state,
                "best_state": result.best_state, "fingerprint": fingerprint}, out_dir / "model.pt")
    metrics = {"tags": tags or {}, **_metrics(variants, result, fingerprint, dataset, class_weights)}
    save_json(metrics, out_dir / "metrics.json")
    (out_dir / "resume.pt").unlink(missing_ok=True)
    return metrics


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


def require_teacher(variants: list[Variant], teacher: str | Path | None) -> None:
    """Refuse a grid with methods that distil (teacher logits or class vectors) but no teacher."""
    needing = sorted({v.method for v in variants if distils(v.method)})
    if needing and teacher is None:
        raise ValueError(f"methods {', '.join(needing)} distil from a teacher: pass --teacher")


def _objective(variants: list[Variant], teacher: Network | None, train: Split,
               num_classes: int) -> Objective:
    """Each variant's target over the whole training set (NOTES §2), built once."""
    teacher_logits = None if teacher is None else teacher.logits(train)
    class_weights = None if teacher is None else teacher.class_weights
    targets = [variant.target(teacher_logits, train.labels, num_classes, class_weights).float()
               for variant in variants]
    return Objective(torch.stack(targets), torch.tensor([v.lam for v in variants]),
                     torch.tensor([v.tau for v in variants]), [v.label for v in variants])


def _metrics(variants: list[Variant], result: FitResult, fingerprint: dict[str, Any],
             dataset: Dataset, class_weights: Tensor | None) -> dict[str, Any]:
    rows = [{**variant.to_dict(), "label": variant.label,
             "sim_entropy": sim_entropy(variant, class_weights),
             "last": {"epoch": fingerprint["config"]["epochs"], **_pick(result.last, i)},
             "best": {"epoch": int(result.best_epoch[i]), **_pick(result.best, i)}}
            for i, variant in enumerate(variants)]
    for i, row in enumerate(rows):
        if (peak := peak_test(result.history, i)) is not None:  # the loops that record it
            row["peak"] = peak
    return {"variants": rows, "selected": _select_per_method(rows),
            "config": fingerprint, "dataset": dataset.meta,
            "provenance": {**run_provenance(), "seconds_per_epoch": result.seconds_per_epoch}}


def run_provenance() -> dict[str, Any]:
    """`provenance.provenance()` and the device the run trained on."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    return {**provenance(), "device": device, "torch_threads": torch.get_num_threads()}


def sim_entropy(variant: Variant, class_weights: Tensor | None) -> float | None:
    """How close to uniform the similarity rows of a kd_sim or kd_pt_sim variant are
    (`targets.similarity_entropy`, 1 = uniform); None for the other methods."""
    if variant.method not in SIMILARITY_TARGETS:
        return None
    assert class_weights is not None, "guaranteed by require_teacher"
    return similarity_entropy(class_weights, dict(variant.params)["alpha"],
                              exclude_true=SIMILARITY_TARGETS[variant.method])


def _pick(metrics: dict[str, dict[str, Tensor]], index: int) -> dict[str, dict[str, float]]:
    return {split: {name: float(values[index]) for name, values in by_name.items()}
            for split, by_name in metrics.items()}


def _select_per_method(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Index of each method's variant with the best best-epoch validation accuracy."""
    selected: dict[str, int] = {}
    for index, row in enumerate(rows):
        current = selected.get(row["method"])
        if current is None or row["best"]["valid"]["acc"] > rows[current]["best"]["valid"]["acc"]:
            selected[row["method"]] = index
    return selected


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _teacher_id(teacher: str | Path) -> str:
    return "oracle" if str(teacher) == "oracle" else sha256(teacher)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset (data.pt)")
    parser.add_argument("--grid", required=True, type=json.loads,
                        help='JSON: method -> {param: [values]}, e.g. \'{"kd": {"lam": [0.9], "tau": [4]}}\'')
    parser.add_argument("--teacher", help="a teacher run's model.pt, or 'oracle'")
    parser.add_argument("--hidden", type=int, nargs="*", default=[], help="hidden widths (none: linear)")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--train-size", type=int, help="seed-chosen subset of the train split")
    parser.add_argument("--no-tau-squared", action="store_true", help="c(τ) = 1 instead of τ²")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--tag", action="append", default=[], type=parse_tag, metavar="KEY=VALUE",
                        help="a label recorded in metrics.json (repeatable)")
    parser.add_argument("--out-dir", required=True)
    return parser.parse_args(argv)


def parse_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--tag expects KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    config = TrainConfig(tuple(args.hidden), args.epochs, args.batch_size, args.lr,
                         args.weight_decay, args.seed, args.train_size, not args.no_tau_squared)
    run(args.data, args.grid, config, args.out_dir, args.teacher, dict(args.tag))


if __name__ == "__main__":
    main()
