"""Training throughput of the CIFAR-100 track, and the GPU time of a params.yaml matrix.

Not a test: it prints figures (docs/benchmarks.md records them with the device). It runs the
real training epoch of `partialkd.training.images` (on-device augmentation, teacher forward,
per-batch target, loss, SGD step) on random 32x32 images, so that no dataset is needed.

    python bench/kd_throughput.py                                   # resnet56 -> resnet20, kd
    python bench/kd_throughput.py --pairs resnet56:resnet20 none:resnet56 --matrix params.yaml
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
import yaml

from partialkd.common.devices import Placement
from partialkd.core.grid import expand_grid
from partialkd.data.prepared import Split
from partialkd.models.vision import build_image_model, classifier
from partialkd.plan import matrix
from partialkd.reporting.summary import NO_TEACHER
from partialkd.training.images import ImageTrainConfig, image_loop
from partialkd.training.objective import NetworkObjective

NUM_CLASSES = 100


def images_per_second(student: str, teacher: str, images: int, epochs: int, batch_size: int,
                      precision: str) -> float:
    """Training images per second of `student` (distilled with kd from `teacher`, or trained
    with ce when teacher is 'none'), after one warm-up epoch."""
    placement = Placement.choose(precision)
    generator = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator),
                  torch.randint(0, NUM_CLASSES, (images,), generator=generator))
    teacher_model = None if teacher == NO_TEACHER else placement.prepare(
        build_image_model(teacher, NUM_CLASSES).eval().requires_grad_(False))
    grid = {"ce": {}} if teacher_model is None else {"kd": {"lam": [0.9], "tau": [4]}}
    objective = NetworkObjective(expand_grid(grid)[0], teacher_model,
                               None if teacher_model is None else classifier(teacher_model).weight,
                               NUM_CLASSES, tau_squared=True)
    config = ImageTrainConfig(student, epochs, batch_size, 0.05, 0.9, 5e-4, (), 0.1, 0,
                              precision=precision)
    model = placement.prepare(build_image_model(student, NUM_CLASSES))
    loop = image_loop(model, {"train": split, "valid": split, "test": split}, [0.5] * 3, [0.25] * 3,
                      objective, config, generator, placement)
    loop.train_epoch()  # warm-up: cuDNN autotuning, allocator
    _synchronize(placement)
    started = time.perf_counter()
    for _ in range(epochs):
        loop.train_epoch()
    _synchronize(placement)
    return images * epochs / (time.perf_counter() - started)


def _synchronize(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize()


def matrix_hours(params_path: str, speeds: dict[tuple[str, str], float]) -> tuple[float, int, list[str]]:
    """Device-hours of every teacher and student job of the params file's cifar100 matrix, from
    the measured speeds; the jobs whose (teacher, student) pair was not measured are listed."""
    section = yaml.safe_load(open(params_path))["cifar100"]
    train_images = 50000 - section["data"]["valid_size"]
    epochs = section["recipe"]["epochs"]
    jobs = [(NO_TEACHER, section["teachers"][name]["arch"]) for name in matrix.teachers_used(section)]
    jobs += [(run.teacher if run.teacher == NO_TEACHER else section["teachers"][run.teacher]["arch"],
              run.student) for run in matrix.student_runs(section)]
    missing = sorted({f"{t}:{s}" for t, s in jobs if (t, s) not in speeds})
    seconds = sum(epochs * train_images / speeds[job] for job in jobs if job in speeds)
    return seconds / 3600, len(jobs), missing


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["resnet56:resnet20"],
                        help="TEACHER:STUDENT architectures ('none' as teacher: ce alone)")
    parser.add_argument("--images", type=int, default=10000, help="images per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", choices=("auto", "fp32"), default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--matrix", help="params.yaml whose cifar100 matrix to estimate")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    placement = Placement.choose(args.precision)
    device = torch.cuda.get_device_name() if placement.device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"device: {device}; bf16 autocast: {placement.bf16}; batch {args.batch_size}; "
          f"torch {torch.__version__}")
    speeds = {}
    for pair in args.pairs:
        teacher, student = pair.split(":")
        speeds[(teacher, student)] = images_per_second(student, teacher, args.images, args.epochs,
                                                       args.batch_size, args.precision)
        method = "ce" if teacher == NO_TEACHER else f"kd from {teacher}"
        print(f"{student:>10} ({method}): {speeds[(teacher, student)]:8.0f} training images/s")
    if args.matrix:
        hours, count, missing = matrix_hours(args.matrix, speeds)
        print(f"{args.matrix}: {count} CIFAR-100 jobs ≈ {hours:.1f} device-hours at these speeds"
              + (f"; not measured, left out: {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    main()
