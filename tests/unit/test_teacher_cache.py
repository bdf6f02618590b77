"""Tests for the teacher-logit cache (partialkd.training.teacher_cache, `python -m
partialkd.cache_teacher`, `train_images --teacher-cache`; issue 15): the cached logits are the
live teacher's for any image, crop and flip, and a kd student trained from the cache is the one
trained with the live teacher."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.image_runs import K, MEAN, STD, image_config, make_dataset
from helpers.runs import load_checkpoint, read_json, saved_dataset

from partialkd import cache_teacher
from partialkd.common.devices import Placement
from partialkd.data.prepared import Dataset, Split, load_dataset
from partialkd.train_images import run
from partialkd.training.images import SHIFTS, DeviceImages, Views, crop_and_flip, load_image_teacher
from partialkd.training.run_directory import sha256
from partialkd.training.teacher_cache import load_cache, view_logits

pytestmark = pytest.mark.usefixtures("cpu_only")  # exact float32: the live teacher runs on the CPU
CPU = Placement.choose("fp32")


TRAIN = 40  # training images: 162 teacher passes over each make a cache


def small_dataset(seed: int = 0) -> Dataset:
    dataset = make_dataset(seed=seed)
    train = dataset["train"]
    return dataclasses.replace(dataset, splits={**dataset.splits, "train": Split(train.x[:TRAIN], train.labels[:TRAIN])})


@pytest.fixture(scope="module")
def image_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_dataset(small_dataset(), tmp_path_factory, "image-data")


@pytest.fixture(scope="module")
def teachers(image_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two trained resnet8 teachers (seeds 0 and 1), their model.pt files."""
    files = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"teacher{seed}")
        run(image_data, {"ce": {}}, image_config(seed=seed, epochs=1), out)
        files.append(out / "model.pt")
    return files[0], files[1]


@pytest.fixture(scope="module")
def cache_file(image_data: Path, teachers: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cache") / "logits.pt"
    cache_teacher.main(["--data", str(image_data), "--teacher", str(teachers[0]), "--batch-size", "16",
                        "--out", str(out)])
    return out


def test_cached_logits_are_the_live_teachers_for_random_images_crops_and_flips(
        image_data: Path, teachers: tuple[Path, Path], cache_file: Path) -> None:
    dataset = load_dataset(image_data)
    train = DeviceImages(dataset["train"], MEAN, STD, CPU)
    cache = load_cache(cache_file, sha256(teachers[0]), sha256(image_data), CPU)
    assert cache.logits.shape == (len(train), SHIFTS, SHIFTS, 2, K) and cache.logits.dtype == torch.float32
    teacher = load_image_teacher(teachers[0], K)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        views = Views(torch.randint(0, len(train), (30,), generator=generator),
                      torch.randint(0, SHIFTS, (30, 2), generator=generator),
                      torch.rand(30, generator=generator) < 0.5)
        with torch.no_grad():
            live = teacher(train.normalise(crop_and_flip(train.images[views.index], views.shifts, views.flips)))
        torch.testing.assert_close(cache(views), live, rtol=1e-5, atol=1e-5)


def test_every_view_is_cached_in_its_own_slot(image_data: Path, teachers: tuple[Path, Path],
                                              cache_file: Path) -> None:
    """Row shift, column shift and flip each index their own axis."""
    train = DeviceImages(load_dataset(image_data)["train"], MEAN, STD, CPU)
    teacher = load_image_teacher(teachers[0], K)
    logits = load_cache(cache_file, sha256(teachers[0]), sha256(image_data), CPU).logits
    index = torch.arange(5)
    for row, col, flip in [(0, 0, False), (0, SHIFTS - 1, False), (SHIFTS - 1, 0, True), (4, 4, True)]:
        views = Views(index, torch.tensor([[row, col]]).expand(5, 2), torch.full((5,), flip))
        with torch.no_grad():
            live = teacher(train.normalise(crop_and_flip(train.images[index], views.shifts, views.flips)))
        torch.testing.assert_close(logits[index, row, col, int(flip)], live, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits[:5, 0, 0, 0], logits[:5, 0, SHIFTS - 1, 0])


def test_a_bf16_cache_holds_the_logits_rounded_to_bf16(image_data: Path, teachers: tuple[Path, Path],
                                                       cache_file: Path) -> None:
    train = DeviceImages(load_dataset(image_data)["train"], MEAN, STD, CPU)
    exact = load_cache(cache_file, sha256(teachers[0]), sha256(image_data), CPU).logits
    rounded = view_logits(load_image_teacher(teachers[0], K), train, CPU, batch_size=TRAIN, dtype="bf16")
    assert rounded.dtype == torch.bfloat16
    torch.testing.assert_close(rounded, exact.to(torch.bfloat16), rtol=0, atol=0)


def _student(image_data: Path, teacher: Path, out: Path, **options: Any) -> dict[str, Any]:
    return run(image_data, {"kd": {"lam": [0.9], "tau": [4]}}, image_config(epochs=3), out, teacher=teacher,
               **options)


def test_a_kd_student_from_the_cache_is_the_one_trained_with_the_live_teacher(
        tmp_path: Path, image_data: Path, teachers: tuple[Path, Path], cache_file: Path) -> None:
    live = _student(image_data, teachers[0], tmp_path / "live")
    cached = _student(image_data, teachers[0], tmp_path / "cached", teacher_cache=cache_file)
    for a, b in zip(live["variants"], cached["variants"], strict=True):
        for when in ("last", "best"):
            for split in ("valid", "test"):
                for name, value in a[when][split].items():
                    assert b[when][split][name] == pytest.approx(value, abs=1e-4), (when, split, name)
    states = [load_checkpoint(tmp_path / name / "model.pt")["final_state"] for name in ("live", "cached")]
    for key, tensor in states[0].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(states[1][key], tensor, rtol=1e-4, atol=1e-5)
    assert read_json(tmp_path / "cached/metrics.json")["config"]["teacher_cache"] == "float32"
    assert "teacher_cache" not in read_json(tmp_path / "live/metrics.json")["config"]


def test_a_cache_of_another_teacher_is_refused_naming_both_hashes(
        tmp_path: Path, image_data: Path, teachers: tuple[Path, Path], cache_file: Path) -> None:
    with pytest.raises(ValueError, match="another teacher") as error:
        _student(image_data, teachers[1], tmp_path / "other", teacher_cache=cache_file)
    assert sha256(teachers[0]) in str(error.value) and sha256(teachers[1]) in str(error.value)
    assert not (tmp_path / "other").exists()


def test_a_cache_of_other_data_is_refused(tmp_path: Path, teachers: tuple[Path, Path], cache_file: Path,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    other = saved_dataset(small_dataset(seed=1), tmp_path_factory, "other-data")
    with pytest.raises(ValueError, match="another data"):
        _student(other, teachers[0], tmp_path / "other", teacher_cache=cache_file)


def test_a_cache_needs_its_teacher(tmp_path: Path, image_data: Path, cache_file: Path) -> None:
    with pytest.raises(ValueError, match="give --teacher"):
        run(image_data, {"ce": {}}, image_config(), tmp_path / "ce", teacher_cache=cache_file)
