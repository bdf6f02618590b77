"""Train one ImageNet network, a teacher or a student: `python -m partialkd.train_imagenet ...`.

The index comes from `python -m partialkd.prepare imagenet`; the images are read from the folder
it records, through DataLoader workers (`--workers`). A teacher is a run without `--teacher`
(grid {"ce": {}}); a student gets a teacher given as a file: a teacher run's model.pt, or a plain
state dict of a torchvision network (e.g. a user's pretrained resnet34 .pth; also pytorch/examples'
{"state_dict": ...} checkpoints, with or without DataParallel's "module." prefix), whose
architecture `--teacher-arch` names. One grid point per run, as on the other image tracks. The
run directory gets model.pt, metrics.json (with top-5 accuracy as `top5_acc`) and, while
running, its resume state (resume-<digest>.pt); a killed run restarted with the same arguments resumes where it stopped.
The recipe comes in as one JSON object, `--recipe` (params.yaml's `imagenet.recipe`; the common
one: SGD with momentum 0.9, lr 0.1 per 256 images, weight decay 1e-4, ×0.1 at epochs 30 and 60
of 90); its lr is used as given.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from partialkd.common.devices import Placement
from partialkd.common.seeds import derived_seed
from partialkd.core.grid import Variant, expand_grid
from partialkd.data.imagenet import FAMILY, FolderImages, InputSize, few
from partialkd.data.prepared import load_dataset
from partialkd.models.vision import IMAGENET_ARCHITECTURES, build_image_model, classifier, seeded_model
from partialkd.training.cli import GRID_HELP, add_run_options, parse_run_args, recipe_config
from partialkd.training.engine import run_epochs
from partialkd.training.images import ImageTrainConfig
from partialkd.training.loader import loader_loop
from partialkd.training.objective import NetworkObjective
from partialkd.training.run_directory import ORDER_SEED, require_teacher, save_run, sha256
from partialkd.training.teachers import plain_state_dict, teacher_checkpoint



def run(index: str | Path, grid: dict[str, dict[str, list]], config: ImageTrainConfig,
        out_dir: str | Path, size: InputSize = InputSize(), workers: int = 0,
        teacher: str | Path | None = None, teacher_arch: str | None = None,
        tags: dict[str, str] | None = None,
        on_epoch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the single variant of `grid` on the images of `index`; write the run directory and
    return its metrics. `workers` decode images in parallel and do not change the result."""
    out_dir = Path(out_dir)
    variants = expand_grid(grid)
    _check_teacher(variants, teacher, teacher_arch)
    dataset = load_dataset(index)
    if dataset.meta.get("track") != FAMILY:
        raise ValueError(f"{index} is not an ImageNet index: write one with "
                         "`python -m partialkd.prepare imagenet`")
    placement = Placement.choose(config.precision)
    torch.backends.cudnn.benchmark = placement.device.type == "cuda"  # one input size: tune once
    objective = _objective(variants[0], teacher, teacher_arch, dataset.num_classes, config, placement)
    model = placement.prepare(seeded_model(config.arch, dataset.num_classes, config.seed))
    fingerprint = {"config": asdict(config), "input": asdict(size),
                   "variants": [v.to_dict() for v in variants], "data": sha256(index),
                   "teacher": None if teacher is None else {"sha256": sha256(teacher), "arch": teacher_arch}}
    data = {name: FolderImages(split, dataset.meta["root"], size, placement, workers)
            for name, split in dataset.splits.items()}
    generator = torch.Generator().manual_seed(derived_seed(config.seed, ORDER_SEED))
    loop = loader_loop(model, data, objective, config, generator, placement)
    result = run_epochs(loop, config.epochs, out_dir, fingerprint, on_epoch_end)
    arch = {"family": FAMILY, "name": config.arch, "num_classes": dataset.num_classes, **asdict(size)}
    return save_run(out_dir, arch, variants, fingerprint, result, dataset, objective.class_weights, tags)


def _check_teacher(variants: list[Variant], teacher: str | Path | None, teacher_arch: str | None) -> None:
    """One variant, a teacher if it distils, and --teacher-arch only with a teacher file."""
    if len(variants) != 1:
        raise ValueError(f"an ImageNet run trains one variant, but the grid gives {len(variants)}: "
                         "give one method with one value per parameter")
    require_teacher(variants, teacher)
    if teacher_arch is not None and teacher is None:
        raise ValueError("--teacher-arch names the architecture of a --teacher file: give --teacher too")


def _objective(variant: Variant, teacher: str | Path | None, teacher_arch: str | None, num_classes: int,
               config: ImageTrainConfig, placement: Placement) -> NetworkObjective:
    """The variant's loss, with the frozen teacher on the device when there is one."""
    if teacher is None:
        return NetworkObjective(variant, None, None, num_classes, config.tau_squared)
    model = placement.prepare(load_teacher(teacher, num_classes, teacher_arch))
    return NetworkObjective(variant, model, classifier(model).weight.float(), num_classes, config.tau_squared)


def load_teacher(source: str | Path, num_classes: int, arch: str | None = None) -> nn.Module:
    """The frozen teacher network (eval mode) in `source`: with `arch` None, an ImageNet run's
    model.pt (its best-on-validation weights); else a plain state dict of torchvision's `arch`."""
    if arch is None:
        try:
            saved = teacher_checkpoint(source, {"family": FAMILY, "num_classes": num_classes})
        except KeyError as error:
            raise ValueError(f"teacher {source} is not a training run's model.pt (it lacks {error}); "
                             "for a plain state dict, name its architecture with --teacher-arch") from error
        arch, state = saved["arch"]["name"], saved["best_state"]
    else:
        state = plain_state_dict(source)
    model = build_image_model(arch, num_classes)
    _load_weights(model, state, source, arch, num_classes)
    return model.requires_grad_(False).eval()


def _load_weights(model: nn.Module, state: dict[str, Tensor], source: str | Path, arch: str,
                  num_classes: int) -> None:
    """Load `state` into `model`, or refuse it naming what does not fit."""
    names = {id(module): name for name, module in model.named_modules()}
    key = f"{names[id(classifier(model))]}.weight"
    if key in state and state[key].shape[0] != num_classes:
        raise ValueError(f"teacher {source} has {state[key].shape[0]} classes ({key} "
                         f"{list(state[key].shape)}) but the index has {num_classes}")
    try:
        keys = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensors of other shapes
        raise ValueError(f"teacher {source} does not fit torchvision's {arch}: {error}") from error
    if keys.missing_keys or keys.unexpected_keys:
        raise ValueError(f"teacher {source} does not fit torchvision's {arch}: it lacks "
                         f"{len(keys.missing_keys)} of its tensors ({few(keys.missing_keys)}) and has "
                         f"{len(keys.unexpected_keys)} others ({few(keys.unexpected_keys)})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m partialkd.train_imagenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the index of image files from `prepare imagenet`")
    parser.add_argument("--arch", required=True, choices=IMAGENET_ARCHITECTURES)
    parser.add_argument("--grid", required=True, type=json.loads, help=GRID_HELP)
    parser.add_argument("--teacher", help="a teacher run's model.pt, or a state dict (with --teacher-arch)")
    parser.add_argument("--teacher-arch", choices=IMAGENET_ARCHITECTURES,
                        help="the architecture of a plain state-dict --teacher file")
    parser.add_argument("--crop", type=int, default=InputSize.crop, help="training and evaluation crop (px)")
    parser.add_argument("--resize", type=int, default=InputSize.resize,
                        help="evaluation: short side resized to this before the centre crop (px)")
    parser.add_argument("--eval-batch-size", type=int, default=250)
    parser.add_argument("--workers", type=int, default=0, help="image-decoding processes (0: in this one)")
    add_run_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parse_run_args(parser, argv)
    config = recipe_config(parser, ImageTrainConfig, args, arch=args.arch, eval_batch_size=args.eval_batch_size)
    run(args.data, args.grid, config, args.out_dir, InputSize(args.crop, args.resize), args.workers,
        args.teacher, args.teacher_arch, dict(args.tag))


if __name__ == "__main__":
    main()
