"""Training throughput of the CIFAR-100 track, and the GPU time of a params.yaml matrix.

Not a test: it prints figures (docs/benchmarks.md records them with the device). It runs the
real training epoch of `partialkd.training.images` (on-device augmentation, teacher forward or
teacher-logit cache lookup, per-batch target, loss, SGD step) on random 32x32 images, so that no
dataset is needed. Each pair is timed three ways in one run: the ce student, the kd student with
the live teacher, and the kd student reading a teacher-logit cache (issue 15; random logits of
the cache's shape: the lookup costs the same whatever they are); and the cache's own cost, the
teacher's inference over views.

    python bench/kd_throughput.py                                   # resnet56 -> resnet20
    python bench/kd_throughput.py --pairs resnet56:resnet20 resnet110:resnet32 --matrix params.yaml
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
from partialkd.training.images import SHIFTS, DeviceImages, ImageTrainConfig, image_loop
from partialkd.training.objective import NetworkObjective
from partialkd.training.teacher_cache import TeacherCache, view_logits

NUM_CLASSES = 100
VIEWS = SHIFTS * SHIFTS * 2  # of each training image: the cache holds the teacher's logits of all
SOURCES = ("ce", "live", "cache")  # the student's targets: none, the live teacher's, the cache's


def images_per_second(student: str, teacher: str, source: str, images: int, epochs: int, batch_size: int,
                      precision: str) -> float:
    """Training images per second of `student` (ce, or kd from `teacher` run live or read from a
    cache, as `source` says), after one warm-up epoch."""
    placement = Placement.choose(precision)
    generator = torch.Generator().manual_seed(0)
    split = _random_split(images, generator)
    teacher_model = None if source == "ce" else placement.prepare(
        build_image_model(teacher, NUM_CLASSES).eval().requires_grad_(False))
    grid = {"ce": {}} if teacher_model is None else {"kd": {"lam": [0.9], "tau": [4]}}
    objective = NetworkObjective(expand_grid(grid)[0], teacher_model if source == "live" else None,
                                 None if teacher_model is None else classifier(teacher_model).weight,
                                 NUM_CLASSES, tau_squared=True)
    cache = None
    if source == "cache":
        dtype = torch.bfloat16 if placement.bf16 else torch.float32  # what "auto" stores
        cache = TeacherCache(torch.randn(images, SHIFTS, SHIFTS, 2, NUM_CLASSES, generator=generator)
                             .to(dtype).to(placement.device))
    config = ImageTrainConfig(student, epochs, batch_size, 0.05, 0.9, 5e-4, (), 0.1, 0,
                              precision=precision)
    model = placement.prepare(build_image_model(student, NUM_CLASSES))
    loop = image_loop(model, {"train": split, "valid": split, "test": split}, [0.5] * 3, [0.25] * 3,
                      objective, config, generator, placement, cache)
    loop.train_epoch()  # warm-up: cuDNN autotuning, allocator
    _synchronize(placement)
    started = time.perf_counter()
    for _ in range(epochs):
        loop.train_epoch()
    _synchronize(placement)
    return images * epochs / (time.perf_counter() - started)


def cache_views_per_second(teacher: str, images: int, batch_size: int, precision: str) -> float:
    """Views per second that building a teacher-logit cache computes (`view_logits`)."""
    placement = Placement.choose(precision)
    train = DeviceImages(_random_split(images, torch.Generator().manual_seed(0)), [0.5] * 3, [0.25] * 3, placement)
    model = placement.prepare(build_image_model(teacher, NUM_CLASSES))
    view_logits(model, train, placement, batch_size)  # warm-up
    started = time.perf_counter()
    view_logits(model, train, placement, batch_size)
    return images * VIEWS / (time.perf_counter() - started)


def _random_split(images: int, generator: torch.Generator) -> Split:
    return Split(torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=generator),
                 torch.randint(0, NUM_CLASSES, (images,), generator=generator))


def _synchronize(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize()


def matrix_hours(params_path: str, speeds: dict[tuple[str, str, str], float], views: dict[str, float],
                 cached: bool) -> tuple[float, int, list[str]]:
    """Device-hours of every teacher and student job of the params file's cifar100 matrix, from
    the measured speeds (`speeds[teacher, student, source]`, the teacher 'none' for teachers and
    teacher-free students), with the teachers run live or, where `cached`, the students reading
    caches that one job per teacher builds (at `views[teacher]` views/s); the jobs whose speed was
    not measured are listed and left out."""
    section = yaml.safe_load(open(params_path))["cifar100"]
    train_images = 50000 - section["data"]["valid_size"]
    epochs = section["recipe"]["epochs"]
    architecture = {name: section["teachers"][name]["arch"] for name in section["teachers"]}
    jobs = [(NO_TEACHER, architecture[name], "ce") for name in matrix.teachers_used(section)]
    jobs += [(NO_TEACHER, run.student, "ce") if run.teacher == NO_TEACHER else
             (architecture[run.teacher], run.student, "cache" if cached else "live")
             for run in matrix.student_runs(section)]
    missing = sorted({f"{t}:{s} ({source})" for t, s, source in jobs if (t, s, source) not in speeds})
    seconds = sum(epochs * train_images / speeds[job] for job in jobs if job in speeds)
    if cached:
        builds = [architecture[name] for name in matrix.teachers_used(section)]
        missing += sorted({f"{t} (cache)" for t in builds if t not in views})
        seconds += sum(train_images * VIEWS / views[t] for t in builds if t in views)
    return seconds / 3600, len(jobs), missing


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["resnet56:resnet20"],
                        help="TEACHER:STUDENT architectures: each student is timed with ce, with kd from "
                             "the live teacher and with kd from a cache ('none' as teacher: ce alone)")
    parser.add_argument("--images", type=int, default=10000, help="images per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache-images", type=int, default=100,
                        help="images whose 162 views a teacher computes when timing a cache's build")
    parser.add_argument("--precision", choices=("auto", "fp32"), default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--matrix", help="params.yaml whose cifar100 matrix to estimate")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    placement = Placement.choose(args.precision)
    device = torch.cuda.get_device_name() if placement.device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"device: {device}; bf16 autocast: {placement.bf16}; batch {args.batch_size}; "
          f"torch {torch.__version__}")
    speeds, views = {}, {}
    for pair in args.pairs:
        teacher, student = pair.split(":")
        for source in ("ce",) if teacher == NO_TEACHER else SOURCES:
            key = (NO_TEACHER if source == "ce" else teacher, student, source)
            if key not in speeds:
                speeds[key] = images_per_second(student, teacher, source, args.images, args.epochs,
                                                args.batch_size, args.precision)
            method = {"ce": "ce", "live": f"kd, {teacher} live", "cache": f"kd, {teacher} cached"}[source]
            print(f"{student:>10} ({method}): {speeds[key]:8.0f} training images/s"
                  + (f" ({speeds[key] / speeds[NO_TEACHER, student, 'ce']:.0%} of ce)" if source != "ce" else ""))
        if teacher != NO_TEACHER and teacher not in views:
            views[teacher] = cache_views_per_second(teacher, args.cache_images, args.batch_size, args.precision)
            print(f"{teacher:>10} cache: {views[teacher]:8.0f} views/s, "
                  f"{45000 * VIEWS / views[teacher] / 60:.1f} min for CIFAR-100's 45,000 training images")
    if args.matrix:
        for cached in (False, True):
            hours, count, missing = matrix_hours(args.matrix, speeds, views, cached)
            print(f"{args.matrix}: {count} CIFAR-100 jobs ≈ {hours:.1f} device-hours, teachers "
                  f"{'cached' if cached else 'live'}" + (f"; not measured, left out: {', '.join(missing)}"
                                                         if missing else ""))


if __name__ == "__main__":
    main()
