"""Tests for the image trainer (partialkd.training.images, partialkd.train_images).

Mirrors tests/unit/test_training.py for the image tracks: on-device augmentation (crop and flip,
shuffled epochs, normalisation), determinism, paired initialisation, per-batch teacher logits,
every method end to end, refusal of foreign grids / teachers / checkpoints, exact resume (in
process and after a real SIGKILL of the CLI), the non-finite-loss guard, the contents of
metrics.json and model.pt, and the command line. Everything runs on the CPU on a tiny prepared
dataset (10 classes of coloured noise, 32x32) with the small "resnet8".
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers.runs import (assert_same_run, assert_same_tensors, interrupt_after, kill_after_first_checkpoint,
                          assert_scores_in_range, load_checkpoint, read_json, resume_file,
                          saved_dataset)

import partialkd.core.grid as grid_module
import partialkd.training.images as image_training
import partialkd.training.objective as objective_module
import partialkd.train_images as train_images
from partialkd.core.grid import expand_grid
from partialkd.core.metrics import classification_metrics
from partialkd.core.targets import similarity_entropy
from partialkd.data.prepared import Split, load_dataset, save_dataset
from partialkd.models.vision import build_image_model, classifier
from partialkd.reporting.summary import summarise
from partialkd.train_images import run, seeded_model
from partialkd.training.engine import resume_files
from partialkd.training.images import (PAD, DeviceImages, ImageTrainConfig, NetworkObjective, Placement,
                                       crop_and_flip, load_image_teacher, predict)
from helpers.image_runs import K, SIZES, MEAN, STD, ARCH, make_dataset, image_config

CPU = Placement(torch.device("cpu"), bf16=False)
pytestmark = pytest.mark.usefixtures("cpu_only")  # exact float32 runs: the trainer stays on the CPU

# One variant per distillation method (and the two teacher-free ones).
STUDENT_GRIDS: dict[str, dict[str, list]] = {
    "ce": {},
    "ls": {"lam": [0.5], "tau": [1]},
    "kd": {"lam": [0.5], "tau": [4]},
    "kd_pt": {"lam": [0.5], "tau": [4]},
    "kd_sim": {"lam": [0.5], "tau": [1], "alpha": [0.5]},
    "kd_pt_sim": {"lam": [0.5], "tau": [4], "alpha": [0.5]},
    "kd_topk": {"lam": [0.5], "tau": [4], "k": [3]},
}
KD_GRID = {"kd": STUDENT_GRIDS["kd"]}
DISTILLING = ("kd", "kd_pt", "kd_sim", "kd_pt_sim", "kd_topk")


# ----------------------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_crop(image: torch.Tensor, row: int, col: int, flip: bool) -> torch.Tensor:
    """The 32x32 window at (row, col) of `image` [C, 32, 32] zero-padded by 4, then mirrored."""
    channels, height, width = image.shape
    padded = torch.zeros(channels, height + 8, width + 8, dtype=image.dtype)
    padded[:, 4:4 + height, 4:4 + width] = image
    window = padded[:, row:row + height, col:col + width]
    return window.flip(-1) if flip else window


def all_augmentations(image: torch.Tensor) -> torch.Tensor:
    """Every crop (81 shifts) and flip (2) of one image, [162, C, 32, 32]."""
    return torch.stack([reference_crop(image, row, col, flip) for row in range(9)
                        for col in range(9) for flip in (False, True)])


def random_images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (count, 3, 32, 32), generator=generator).to(torch.uint8)


def denormalise(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Undo (x / 255 − mean) / std in float64, [N, C, H, W]."""
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    return (x.double() * s + m) * 255


# ------------------------------------------------------------------------------ fixtures


CPU_ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the same for the CLI subprocesses


@pytest.fixture(scope="module")
def image_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_dataset(make_dataset(), tmp_path_factory, "image-data")


@pytest.fixture(scope="module")
def image_teacher(image_data: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, dict[str, Any]]:
    """A trained resnet8 teacher run (grid {"ce": {}}, seed 0, 2 epochs)."""
    out = tmp_path_factory.mktemp("image-teacher")
    metrics = run(image_data, {"ce": {}}, image_config(), out, tags={"role": "teacher"})
    return out, metrics


@pytest.fixture(scope="module")
def teacher_file(image_teacher: tuple[Path, dict[str, Any]]) -> Path:
    return image_teacher[0] / "model.pt"


# ------------------------------------------------------------------------ crop and flip


def _batch(images: torch.Tensor, shifts: list[tuple[int, int]], flips: list[bool]) -> torch.Tensor:
    return crop_and_flip(images, torch.tensor(shifts, dtype=torch.long), torch.tensor(flips))


def test_crop_at_the_centre_without_flip_is_the_identity():
    images = random_images(3)
    out = _batch(images, [(PAD, PAD)] * 3, [False] * 3)
    assert PAD == 4
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, images)


def test_crop_at_the_origin_moves_content_down_and_right_with_zero_padding():
    images = random_images(2)  # values 1..255: a zero can only be padding
    out = _batch(images, [(0, 0), (0, 0)], [False, False])
    assert torch.equal(out[:, :, 4:, 4:], images[:, :, :28, :28])
    assert (out[:, :, :4, :] == 0).all() and (out[:, :, :, :4] == 0).all()
    assert out[1, 2, 4, 4] == images[1, 2, 0, 0] and out[0, 1, 31, 31] == images[0, 1, 27, 27]

    # The opposite corner: content moves up and left, padding at the bottom-right.
    out = _batch(images, [(8, 8), (8, 8)], [False, False])
    assert torch.equal(out[:, :, :28, :28], images[:, :, 4:, 4:])
    assert (out[:, :, 28:, :] == 0).all() and (out[:, :, :, 28:] == 0).all()

    # The first shift is the row, the second the column.
    out = _batch(images, [(0, 4), (4, 0)], [False, False])
    assert torch.equal(out[0, :, 4:, :], images[0, :, :28, :]) and (out[0, :, :4, :] == 0).all()
    assert torch.equal(out[1, :, :, 4:], images[1, :, :, :28]) and (out[1, :, :, :4] == 0).all()


def test_flip_mirrors_the_width_axis_after_the_crop():
    images = random_images(2)
    out = _batch(images, [(4, 4), (4, 4)], [True, False])
    assert torch.equal(out[0], images[0].flip(-1))  # width only: rows and channels stay
    assert out[0, 1, 3, 0] == images[0, 1, 3, 31]
    assert torch.equal(out[1], images[1])

    out = _batch(images, [(0, 0), (0, 0)], [True, True])  # cropped first, then mirrored
    assert torch.equal(out[:, :, 4:, :28], images[:, :, :28, :28].flip(-1))
    assert (out[:, :, :4, :] == 0).all() and (out[:, :, :, 28:] == 0).all()


def test_each_image_of_a_batch_gets_its_own_shift_and_flip():
    combos = [(row, col, flip) for row in range(9) for col in range(9) for flip in (False, True)]
    images = random_images(len(combos), seed=1)
    out = _batch(images, [(r, c) for r, c, _ in combos], [f for _, _, f in combos])
    for index, (row, col, flip) in enumerate(combos):
        assert torch.equal(out[index], reference_crop(images[index], row, col, flip)), (row, col, flip)
    # Float images work the same way.
    floats = _batch(images.float(), [(r, c) for r, c, _ in combos], [f for _, _, f in combos])
    assert torch.equal(floats, out.float())


# ------------------------------------------------------------------------- DeviceImages


def _split(count: int, seed: int = 0) -> Split:
    """Noise images whose label is their index, so each one can be traced through an epoch."""
    return Split(random_images(count, seed), torch.arange(count))


@pytest.mark.parametrize("cuda", [False, True])
def test_placement_follows_the_device_and_precision(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    for precision in ("auto", "fp32"):
        placement = Placement.choose(precision)
        assert placement.device.type == ("cuda" if cuda else "cpu")
        assert placement.bf16 == (cuda and precision == "auto")  # bf16 only on a GPU, only if auto
    with CPU.autocast():
        assert not torch.is_autocast_enabled()


def test_convolutions_and_images_use_channels_last_on_the_cpu_too():
    weight = CPU.prepare(torch.nn.Conv2d(2, 3, 3)).weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    images, _ = next(DeviceImages(_split(4), MEAN, STD, CPU).in_order(4))
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert not images.is_contiguous()  # the default layout, which is slower on a CPU


def test_augmented_epoch_is_fixed_by_the_generator_state():
    images = DeviceImages(_split(23), MEAN, STD, CPU)

    def epoch(generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(images.augmented_epoch(10, generator))

    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    first = epoch(generator)
    second = epoch(generator)  # the generator moved on: another order and other crops
    generator.set_state(state)
    again = epoch(generator)
    assert [len(labels) for _, labels in first] == [10, 10, 3]
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in second]))
    other = epoch(torch.Generator().manual_seed(6))
    assert not torch.equal(torch.cat([x for x, _ in first]), torch.cat([x for x, _ in other]))


def test_every_image_appears_once_per_epoch_as_one_of_its_crops_and_flips():
    count = 60
    split = _split(count, seed=2)
    images = DeviceImages(split, MEAN, STD, CPU)
    generator = torch.Generator().manual_seed(0)
    rows, cols, flips = [], [], []
    for _ in range(2):
        batches = list(images.augmented_epoch(25, generator))
        assert [len(y) for _, y in batches] == [25, 25, 10]
        labels = torch.cat([y for _, y in batches])
        assert labels.dtype == torch.long
        assert sorted(labels.tolist()) == list(range(count))  # each image exactly once
        assert labels.tolist() != list(range(count))  # shuffled
        for x, y in batches:
            assert x.dtype == torch.float32 and x.shape == (len(y), 3, 32, 32)
            pixels = denormalise(x, MEAN, STD)
            assert (pixels - pixels.round()).abs().max() < 1e-3  # normalised with MEAN / STD
            pixels = pixels.round().to(torch.uint8)
            for image, label in zip(pixels, y.tolist()):
                candidates = all_augmentations(split.x[label])
                matches = (candidates == image).flatten(1).all(1).nonzero().flatten().tolist()
                assert len(matches) == 1, f"image {label} is no crop/flip of its source"
                rows.append(matches[0] // 18)
                cols.append(matches[0] // 2 % 9)
                flips.append(matches[0] % 2)
    # 120 draws: every shift 0..2*PAD occurs on both axes, and about half the images are flipped.
    assert set(rows) == set(cols) == set(range(9))
    assert 30 < sum(flips) < 90


def test_in_order_batches_are_normalised_with_the_given_mean_and_std():
    split = _split(23, seed=3)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]  # distinct per channel: catches a mix-up
    images = DeviceImages(split, mean, std, CPU)
    batches = list(images.in_order(10))
    assert [len(y) for _, y in batches] == [10, 10, 3]
    x = torch.cat([x for x, _ in batches])
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    for channel in range(3):
        expected = (split.x[:, channel].double() / 255 - mean[channel]) / std[channel]
        torch.testing.assert_close(x[:, channel].double(), expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_runs_and_another_seed_differs(tmp_path, image_data, image_teacher):
    first, _ = image_teacher  # seed 0, {"ce": {}}, image_config()
    torch.manual_seed(12345)  # the global RNG plays no part
    run(image_data, {"ce": {}}, image_config(), tmp_path / "again", tags={"role": "teacher"})
    assert_same_run(first, tmp_path / "again")

    other = run(image_data, {"ce": {}}, image_config(seed=1), tmp_path / "other")
    reference = read_json(first / "metrics.json")
    assert other["variants"][0]["last"] != reference["variants"][0]["last"]
    final_a = load_checkpoint(first / "model.pt")["final_state"]
    final_c = load_checkpoint(tmp_path / "other" / "model.pt")["final_state"]
    floating = [name for name, value in final_a.items() if value.is_floating_point()]
    assert len(floating) > 20
    assert all(not torch.equal(final_a[name], final_c[name]) for name in floating)


# ------------------------------------------------------------------------- paired init


def test_every_method_starts_from_the_seeds_initial_weights(tmp_path, image_data, teacher_file,
                                                            monkeypatch):
    initial: list[dict[str, torch.Tensor]] = []
    real_seeded_model = train_images.seeded_model

    def recording(arch: str, num_classes: int, seed: int) -> torch.nn.Module:
        model = real_seeded_model(arch, num_classes, seed)
        initial.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(train_images, "seeded_model", recording)
    config = image_config(epochs=1, seed=5)
    run(image_data, {"ce": {}}, config, tmp_path / "ce")
    run(image_data, KD_GRID, config, tmp_path / "kd", teacher=teacher_file)
    run(image_data, {"ls": {"lam": [0.3], "tau": [1]}}, image_config(epochs=1, seed=5, lr=0.01),
        tmp_path / "ls")
    assert len(initial) == 3

    expected = seeded_model(ARCH, K, 5).state_dict()
    for state in initial:
        assert_same_tensors(state, expected)
    trained = load_checkpoint(tmp_path / "kd" / "model.pt")["final_state"]
    assert not torch.equal(trained["fc.weight"], expected["fc.weight"])  # recorded before training
    other = seeded_model(ARCH, K, 6).state_dict()
    assert not torch.equal(other["conv1.weight"], expected["conv1.weight"])
    assert not torch.equal(other["fc.weight"], expected["fc.weight"])


def test_seeded_model_neither_uses_nor_changes_the_global_rng():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = seeded_model(ARCH, K, 3).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    second = seeded_model(ARCH, K, 3).state_dict()
    assert_same_tensors(first, second)
    torch.manual_seed(99)
    assert not torch.equal(build_image_model(ARCH, K).state_dict()["fc.weight"], first["fc.weight"])


# ------------------------------------------------------------------------- distillation


def test_student_distils_from_the_teachers_logits_on_each_augmented_batch(
        tmp_path, image_data, teacher_file, monkeypatch):
    batches: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen: list[tuple[NetworkObjective, torch.Tensor | None, torch.Tensor]] = []
    loss_options: list[dict[str, Any]] = []
    real_epoch, real_loss = DeviceImages.augmented_epoch, NetworkObjective.loss
    real_distillation_loss = objective_module.distillation_loss

    def recording_epoch(self, batch_size, generator):
        for images, labels in real_epoch(self, batch_size, generator):
            batches.append((images.clone(), labels.clone()))
            yield images, labels

    def recording_loss(self, logits, teacher_logits, labels):
        seen.append((self, None if teacher_logits is None else teacher_logits.clone(), labels.clone()))
        return real_loss(self, logits, teacher_logits, labels)

    def recording_distillation_loss(*args, **kwargs):
        loss_options.append(kwargs)
        return real_distillation_loss(*args, **kwargs)

    monkeypatch.setattr(DeviceImages, "augmented_epoch", recording_epoch)
    monkeypatch.setattr(NetworkObjective, "loss", recording_loss)
    monkeypatch.setattr(objective_module, "distillation_loss", recording_distillation_loss)
    run(image_data, {"kd": {"lam": [0.9], "tau": [3]}}, image_config(epochs=2, tau_squared=False),
        tmp_path / "kd", teacher=teacher_file)

    assert len(batches) == len(seen) == 2 * math.ceil(SIZES["train"] / 50)
    teacher = load_image_teacher(teacher_file, K)
    assert not teacher.training
    expected_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        for (images, labels), (_, teacher_logits, seen_labels) in zip(batches, seen, strict=True):
            assert torch.equal(labels, seen_labels)
            assert teacher_logits is not None and teacher_logits.dtype == torch.float32
            torch.testing.assert_close(teacher_logits, teacher(images), rtol=1e-5, atol=1e-5)
    assert not torch.equal(seen[0][1], seen[1][1])
    # The teacher the trainer used is frozen and stayed in eval mode (BN statistics untouched).
    used = seen[0][0].teacher
    assert used is not None and not used.training
    assert not any(p.requires_grad for p in used.parameters())
    assert_same_tensors(used.state_dict(), expected_state)
    assert all(options == {"lam": 0.9, "tau": 3.0, "tau_squared": False} for options in loss_options)


def test_kd_sim_gets_the_teachers_class_vectors(tmp_path, image_data, teacher_file, monkeypatch):
    calls: list[tuple[str, dict[str, Any]]] = []
    real_build_target = grid_module.build_target

    def recording(method, teacher_logits, labels, **kwargs):
        calls.append((method, kwargs))
        return real_build_target(method, teacher_logits, labels, **kwargs)

    monkeypatch.setattr(grid_module, "build_target", recording)
    metrics = run(image_data, {"kd_sim": {"lam": [0.5], "tau": [2], "alpha": [0.25]}},
                  image_config(epochs=1), tmp_path / "sim", teacher=teacher_file)
    expected = classifier(load_image_teacher(teacher_file, K)).weight
    assert metrics["variants"][0]["sim_entropy"] == pytest.approx(
        similarity_entropy(expected, 0.25, exclude_true=False), abs=1e-12)
    assert expected.shape[0] == K
    assert len(calls) == math.ceil(SIZES["train"] / 50)
    for method, kwargs in calls:
        assert method == "kd_sim"
        assert kwargs["alpha"] == 0.25 and kwargs["tau"] == 2.0 and kwargs["num_classes"] == K
        torch.testing.assert_close(kwargs["class_weights"], expected, rtol=0, atol=0)


# -------------------------------------------------------------- every method, refusals


@pytest.mark.parametrize("method", list(STUDENT_GRIDS))
def test_every_method_trains_a_student_end_to_end(tmp_path, image_data, teacher_file, method):
    grid = {method: STUDENT_GRIDS[method]}
    metrics = run(image_data, grid, image_config(), tmp_path / method, teacher=teacher_file,
                  tags={"role": "student"})
    (variant,) = expand_grid(grid)
    assert [v["label"] for v in metrics["variants"]] == [variant.label]
    assert metrics["variants"][0]["method"] == method
    assert metrics["selected"] == {method: 0}
    assert metrics["config"]["teacher"] == sha256(teacher_file)
    best = metrics["variants"][0]["best"]
    assert best["valid"]["acc"] > 2 / K, "the student learned next to nothing"
    assert math.isfinite(best["test"]["nll"])
    assert (tmp_path / method / "model.pt").is_file() and not resume_files(tmp_path / method)


@pytest.mark.parametrize("method", DISTILLING)
def test_distillation_without_a_teacher_is_refused(tmp_path, image_data, method):
    with pytest.raises(ValueError, match="--teacher"):
        run(image_data, {method: STUDENT_GRIDS[method]}, image_config(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("grid", [
    {"kd": {"lam": [0.5, 0.9], "tau": [4]}},
    {"ce": {}, "ls": {"lam": [0.5], "tau": [1]}},
    {},
], ids=["two-values", "two-methods", "empty"])
def test_a_grid_without_exactly_one_variant_is_refused(tmp_path, image_data, teacher_file, grid):
    with pytest.raises(ValueError, match="one variant"):
        run(image_data, grid, image_config(), tmp_path / "out", teacher=teacher_file)
    assert not (tmp_path / "out").exists()


def test_teacher_for_another_number_of_classes_is_refused(tmp_path, teacher_file):
    five = tmp_path / "five.pt"
    save_dataset(make_dataset(num_classes=5), five)
    with pytest.raises(ValueError, match="another configuration") as error:
        run(five, KD_GRID, image_config(), tmp_path / "out", teacher=teacher_file)
    assert str(teacher_file) in str(error.value) and "retrain the teacher" in str(error.value)
    with pytest.raises(ValueError, match="another configuration"):
        load_image_teacher(teacher_file, 5)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_synthetic_mlp_teacher_is_refused(tmp_path, image_data, teacher_path):
    """`teacher_path` (conftest) is a synthetic-track MLP teacher."""
    with pytest.raises(ValueError, match="another configuration") as error:
        run(image_data, KD_GRID, image_config(), tmp_path / "out", teacher=teacher_path)
    assert str(teacher_path) in str(error.value)
    assert not (tmp_path / "out" / "metrics.json").exists()

    # Refused for being an MLP, not only for its number of classes.
    saved = load_checkpoint(teacher_path)
    saved["arch"] = {**saved["arch"], "num_classes": K}
    torch.save(saved, tmp_path / "mlp10.pt")
    with pytest.raises(ValueError, match="another configuration"):
        run(image_data, KD_GRID, image_config(), tmp_path / "out", teacher=tmp_path / "mlp10.pt")


# ------------------------------------------------------------------------------ resume


def test_resume_in_process_matches_an_uninterrupted_run(tmp_path, image_data, teacher_file):
    config = image_config(epochs=3, milestones=(2,))  # the schedule's decay falls after the resume
    reference = tmp_path / "reference"
    run(image_data, KD_GRID, config, reference, teacher=teacher_file)
    assert not resume_files(reference)

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(image_data, KD_GRID, config, out, teacher=teacher_file, on_epoch_end=interrupt_after(1))
    assert load_checkpoint(resume_file(out))["epoch"] == 1
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()

    epochs_run: list[int] = []
    run(image_data, KD_GRID, config, out, teacher=teacher_file, on_epoch_end=epochs_run.append)
    assert epochs_run == [2, 3]  # resumed, not restarted
    assert not resume_files(out)
    assert_same_run(reference, out)


def test_best_and_peak_epochs_survive_a_resume_and_ties_keep_the_first(tmp_path, image_data, monkeypatch):
    """Scripted validation accuracies 0.9, 0.5, 0.9 and test accuracies 0.8, 0.4, 0.8: the best
    epoch and the peak test epoch are 1 (a tie later does not replace them), also when the run is
    interrupted after epoch 1 and resumed."""
    scripted = iter([0.9, 0.8, 0.5, 0.4, 0.9, 0.8])  # per epoch: validation, then test
    monkeypatch.setattr(image_training, "accuracy", lambda logits, truth: torch.tensor([next(scripted)]))
    config = image_config(epochs=3)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(image_data, {"ce": {}}, config, out, on_epoch_end=interrupt_after(1))
    after_first = load_checkpoint(resume_file(out))["model"]
    metrics = run(image_data, {"ce": {}}, config, out)
    (variant,) = metrics["variants"]
    assert variant["best"]["epoch"] == 1 and variant["last"]["epoch"] == 3
    assert variant["peak"] == {"epoch": 1, "test": {"acc": pytest.approx(0.8)}}
    saved = load_checkpoint(out / "model.pt")
    assert_same_tensors(saved["best_state"], after_first)
    assert not torch.equal(saved["final_state"]["fc.weight"], after_first["fc.weight"])
    # The best metrics are those of the epoch-1 weights.
    model = build_image_model(ARCH, K)
    model.load_state_dict(after_first)
    valid = load_dataset(image_data)["valid"]
    scored = classification_metrics(_eval_logits(model, valid), F.one_hot(valid.labels, K).float())
    assert variant["best"]["valid"]["acc"] == pytest.approx(scored["acc"].item(), abs=1e-6)


@pytest.mark.parametrize(("scripted", "passes"), [([0.5, 0.4, 0.9, 0.8], 4), ([0.9, 0.8, 0.5, 0.4], 6)],
                         ids=["best-is-last", "best-is-earlier"])
def test_the_final_evaluation_reuses_the_last_epoch_s_passes(tmp_path, image_data, monkeypatch, scripted,
                                                              passes):
    """Each of 2 epochs scores valid and test once; the final evaluation of the last weights reuses
    those passes, and the best epoch's weights are scored anew only when they are another epoch's."""
    accuracies = iter(scripted)  # per epoch: validation, then test
    monkeypatch.setattr(image_training, "accuracy", lambda logits, truth: torch.tensor([next(accuracies)]))
    scored = []
    real_predict = image_training.predict
    monkeypatch.setattr(image_training, "predict", lambda *args: scored.append(1) or real_predict(*args))
    metrics = run(image_data, {"ce": {}}, image_config(epochs=2), tmp_path / "run")
    assert len(scored) == passes
    (variant,) = metrics["variants"]
    model = build_image_model(ARCH, K)
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "model.pt")["final_state"])
    valid = load_dataset(image_data)["valid"]
    rescored = classification_metrics(_eval_logits(model, valid), F.one_hot(valid.labels, K).float())
    assert variant["last"]["valid"]["acc"] == pytest.approx(rescored["acc"].item(), abs=1e-6)
    assert variant["last"]["valid"]["nll"] == pytest.approx(rescored["nll"].item(), rel=1e-5)

def test_a_changed_setting_after_a_crash_starts_afresh_and_ends_as_an_uninterrupted_run(
        tmp_path, image_data, teacher_file, caplog):
    """Issue 16: crash, change the learning rate, rerun: no manual cleaning; the run names the
    changed setting, leaves the other configuration's state alone and ends as an uninterrupted run
    with the new learning rate."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(image_data, KD_GRID, image_config(epochs=2), out, teacher=teacher_file, on_epoch_end=interrupt_after(1))
    resume = resume_file(out)
    saved = resume.read_bytes()
    changed = image_config(epochs=2, lr=0.02)
    with caplog.at_level(logging.WARNING):
        run(image_data, KD_GRID, changed, out, teacher=teacher_file)
    assert f"{resume} holds the state of another configuration (differs in: config.lr: 0.05 -> 0.02)" in caplog.text
    assert resume_files(out) == [resume] and resume.read_bytes() == saved
    run(image_data, KD_GRID, changed, tmp_path / "reference", teacher=teacher_file)
    assert_same_run(out, tmp_path / "reference")


def _cli_command(data: Path, teacher: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "partialkd.train_images", "--data", str(data), "--arch", ARCH,
            "--grid", json.dumps({"kd": {"lam": [0.7], "tau": [2]}}), "--teacher", str(teacher),
            "--recipe", json.dumps({"epochs": CLI_EPOCHS, "batch_size": 50, "lr": 0.03, "momentum": 0.8,
                                    "weight_decay": 1e-4, "milestones": [2, 3], "lr_decay": 0.2,
                                    "tau_squared": False, "precision": "fp32"}),
            "--seed", "7", "--threads", "1",
            "--tag", "role=student", "--tag", "teacher=resnet8", "--out-dir", str(out)]


CLI_EPOCHS = 4
# What _cli_command should amount to.
CLI_CONFIG = ImageTrainConfig(ARCH, CLI_EPOCHS, 50, 0.03, 0.8, 1e-4, (2, 3), 0.2, 7,
                              tau_squared=False, precision="fp32")


@pytest.fixture(scope="module")
def cli_run(image_data: Path, teacher_file: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cli") / "run"
    completed = subprocess.run(_cli_command(image_data, teacher_file, out), cwd=out.parent, env=CPU_ENV,
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    return out, completed


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, image_data, teacher_file, cli_run):
    """A real `python -m partialkd.train_images` killed with SIGKILL mid-run, then re-run."""
    reference, _ = cli_run
    killed = tmp_path / "killed"
    killed_after = kill_after_first_checkpoint(_cli_command(image_data, teacher_file, killed), killed,
                                               cwd=tmp_path, env=CPU_ENV)
    assert 1 <= killed_after < CLI_EPOCHS

    rerun = subprocess.run(_cli_command(image_data, teacher_file, killed), cwd=tmp_path, env=CPU_ENV,
                           capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"after epoch {killed_after}" in rerun.stderr  # it resumed rather than restarted
    assert not resume_files(killed)
    assert_same_run(reference, killed)


# ------------------------------------------------------------------------ non-finite loss


def test_divergent_learning_rate_raises_floating_point_error(tmp_path, image_data):
    with pytest.raises(FloatingPointError) as error:
        run(image_data, {"ce": {}}, image_config(lr=1e10, milestones=()), tmp_path / "out")
    message = str(error.value)
    assert "epoch 1" in message and "ce(lam=0, tau=1)" in message
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert not (tmp_path / "out" / "model.pt").exists()


def test_non_finite_loss_in_a_later_epoch_names_it_and_keeps_the_last_good_one(
        tmp_path, image_data, teacher_file, monkeypatch):
    real_loss = NetworkObjective.loss
    calls = {"n": 0}
    steps_per_epoch = math.ceil(SIZES["train"] / 50)

    def poisoned(self, logits, teacher_logits, labels):
        loss = real_loss(self, logits, teacher_logits, labels)
        calls["n"] += 1
        return loss * math.nan if calls["n"] == steps_per_epoch + 2 else loss

    monkeypatch.setattr(NetworkObjective, "loss", poisoned)
    out = tmp_path / "out"
    with pytest.raises(FloatingPointError) as error:
        run(image_data, KD_GRID, image_config(epochs=3), out, teacher=teacher_file)
    message = str(error.value)
    assert "epoch 2" in message and "kd(lam=0.5, tau=4)" in message
    assert str(resume_file(out)) in message
    assert load_checkpoint(resume_file(out))["epoch"] == 1
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()


# ------------------------------------------------------------------ metrics.json / model.pt


@pytest.fixture(scope="module")
def student_run(image_data: Path, teacher_file: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """A kd student (3 epochs, lr decays after epoch 2) with its resume state read after each epoch."""
    out = tmp_path_factory.mktemp("image-student")
    snapshots: list[dict[str, Any]] = []

    def read_resume(epoch: int) -> None:
        saved = load_checkpoint(resume_file(out))
        snapshots.append({"hook_epoch": epoch, "epoch": saved["epoch"], "history": saved["history"],
                          "param_groups": saved["optimizer"]["param_groups"]})

    metrics = run(image_data, KD_GRID, image_config(epochs=3, milestones=(2,), lr_decay=0.2),
                  out, teacher=teacher_file, tags={"role": "student", "teacher": ARCH},
                  on_epoch_end=read_resume)
    return out, metrics, snapshots


def test_metrics_json_contents(student_run, image_data, teacher_file):
    out, returned, _ = student_run
    metrics = read_json(out / "metrics.json")
    assert metrics == json.loads(json.dumps(returned))  # what run() returns is what it wrote
    assert metrics["tags"] == {"role": "student", "teacher": ARCH}
    assert metrics["selected"] == {"kd": 0}
    (variant,) = metrics["variants"]
    assert variant["label"] == "kd(lam=0.5, tau=4)"
    assert {k: variant[k] for k in ("method", "lam", "tau")} == {"method": "kd", "lam": 0.5, "tau": 4.0}
    assert variant["last"]["epoch"] == 3
    assert 1 <= variant["best"]["epoch"] <= 3
    assert_scores_in_range(variant)
    assert variant["best"]["valid"]["acc"] >= variant["last"]["valid"]["acc"]
    if variant["best"]["epoch"] == 3:
        assert variant["best"] == {**variant["last"], "epoch": 3}

    fingerprint = metrics["config"]
    assert fingerprint["config"] == json.loads(json.dumps(asdict(
        image_config(epochs=3, milestones=(2,), lr_decay=0.2))))
    assert fingerprint["variants"] == [{"method": "kd", "lam": 0.5, "tau": 4.0}]
    assert fingerprint["data"] == sha256(image_data) and fingerprint["teacher"] == sha256(teacher_file)
    assert metrics["dataset"] == {"channel_mean": MEAN, "channel_std": STD, "track": "tiny-images"}
    provenance = metrics["provenance"]
    assert provenance["device"].startswith("cpu")
    assert provenance["seconds_per_epoch"] > 0


def test_history_records_images_per_second_and_the_schedule(student_run):
    _, metrics, snapshots = student_run
    assert [s["hook_epoch"] for s in snapshots] == [s["epoch"] for s in snapshots] == [1, 2, 3]
    for snapshot in snapshots:
        history = snapshot["history"]
        assert [entry["epoch"] for entry in history] == list(range(1, snapshot["epoch"] + 1))
        entry = history[-1]
        assert set(entry) == {"epoch", "seconds", "loss", "valid_acc", "test_acc", "images_per_second"}
        assert entry["seconds"] > 0 and len(entry["loss"]) == 1 and math.isfinite(entry["loss"][0])
        assert entry["images_per_second"] == pytest.approx(SIZES["train"] / entry["seconds"])
        (group,) = snapshot["param_groups"]
        assert group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    # Milestone 2, decay 0.2: epochs 1-2 at lr 0.05, epoch 3 at 0.01 (the lr for the next epoch).
    lrs = [s["param_groups"][0]["lr"] for s in snapshots]
    assert lrs == pytest.approx([0.05, 0.01, 0.01])

    history = snapshots[-1]["history"]
    valid = [entry["valid_acc"][0] for entry in history]
    (variant,) = metrics["variants"]
    assert variant["best"]["epoch"] == valid.index(max(valid)) + 1  # the first best epoch
    assert variant["best"]["valid"]["acc"] == pytest.approx(max(valid), abs=1e-7)
    assert variant["last"]["valid"]["acc"] == pytest.approx(valid[-1], abs=1e-7)
    seconds = [entry["seconds"] for entry in history]
    assert metrics["provenance"]["seconds_per_epoch"] == pytest.approx(sum(seconds) / len(seconds))


def test_peak_is_the_best_per_epoch_test_accuracy_and_the_summary_carries_it(student_run, tmp_path):
    out, metrics, snapshots = student_run
    test = [entry["test_acc"][0] for entry in snapshots[-1]["history"]]
    (variant,) = metrics["variants"]
    assert variant["peak"] == {"epoch": test.index(max(test)) + 1, "test": {"acc": max(test)}}
    assert variant["peak"]["test"]["acc"] >= variant["best"]["test"]["acc"]
    # Each epoch's number is the test split's accuracy of that epoch's weights.
    for when in ("best", "last"):
        assert test[variant[when]["epoch"] - 1] == pytest.approx(variant[when]["test"]["acc"], abs=1e-7)

    (row,) = summarise([out / "metrics.json"]).to_dict("records")
    assert row["peak_test_acc"] == variant["peak"]["test"]["acc"]
    assert row["peak_epoch"] == variant["peak"]["epoch"]
    unrecorded = read_json(out / "metrics.json")  # a trainer that records no per-epoch test accuracy
    del unrecorded["variants"][0]["peak"]
    (tmp_path / "metrics.json").write_text(json.dumps(unrecorded))
    (row,) = summarise([tmp_path / "metrics.json"]).to_dict("records")
    assert pd.isna(row["peak_test_acc"]) and pd.isna(row["peak_epoch"])


def _eval_logits(model: torch.nn.Module, split: Split) -> torch.Tensor:
    """Logits of a whole split in one eval-mode pass, normalised independently of the trainer."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    model.eval()
    with torch.no_grad():
        return model((split.x.float() / 255 - mean) / std)


def test_saved_weights_reproduce_the_reported_metrics(student_run, image_data):
    out, metrics, _ = student_run
    saved = load_checkpoint(out / "model.pt")
    assert saved["arch"] == {"family": "image", "name": ARCH, "num_classes": K}
    assert saved["variants"] == [{"method": "kd", "lam": 0.5, "tau": 4.0}]
    assert json.loads(json.dumps(saved["fingerprint"])) == read_json(out / "metrics.json")["config"]
    dataset = load_dataset(image_data)
    model = build_image_model(saved["arch"]["name"], saved["arch"]["num_classes"])
    (variant,) = metrics["variants"]
    for state, when in (("best_state", "best"), ("final_state", "last")):
        model.load_state_dict(saved[state])
        for split in ("valid", "test"):
            logits = _eval_logits(model, dataset[split])
            truth = F.one_hot(dataset[split].labels, K).float()
            scored = classification_metrics(logits, truth)
            assert scored["acc"].item() == pytest.approx(variant[when][split]["acc"], abs=1e-6)
            assert scored["nll"].item() == pytest.approx(variant[when][split]["nll"], abs=1e-5)
            assert scored["ece"].item() == pytest.approx(variant[when][split]["ece"], abs=1e-5)


def test_predict_scores_a_split_in_eval_mode_in_order(student_run, image_data):
    out, _, _ = student_run
    model = build_image_model(ARCH, K)
    model.load_state_dict(load_checkpoint(out / "model.pt")["final_state"])
    split = load_dataset(image_data)["valid"]
    expected = _eval_logits(model, split)
    model.train()
    running_mean = model.bn1.running_mean.clone()
    logits = predict(model, DeviceImages(split, MEAN, STD, CPU), 7, CPU)  # 60 = 8 x 7 + 4
    assert not model.training and torch.equal(model.bn1.running_mean, running_mean)
    assert logits.dtype == torch.float32 and logits.shape == (len(split), K)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_teacher_is_loaded_frozen_with_its_best_weights(image_teacher, image_data, tmp_path):
    out, metrics = image_teacher
    teacher = load_image_teacher(out / "model.pt", K)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    saved = load_checkpoint(out / "model.pt")
    assert_same_tensors(teacher.state_dict(), saved["best_state"])
    split = load_dataset(image_data)["valid"]
    acc = (_eval_logits(teacher, split).argmax(1) == split.labels).float().mean().item()
    assert acc == pytest.approx(metrics["variants"][0]["best"]["valid"]["acc"], abs=1e-6)
    assert acc > 0.5, "the teacher fixture should be a usable teacher"

    # best_state, not final_state, even where the two differ.
    saved["final_state"] = seeded_model(ARCH, K, 1).state_dict()
    torch.save(saved, tmp_path / "model.pt")
    assert_same_tensors(load_image_teacher(tmp_path / "model.pt", K).state_dict(), saved["best_state"])
    saved["best_state"], saved["final_state"] = saved["final_state"], saved["best_state"]
    torch.save(saved, tmp_path / "model.pt")
    assert_same_tensors(load_image_teacher(tmp_path / "model.pt", K).state_dict(), saved["best_state"])


# ---------------------------------------------------------------------------------- CLI


def test_cli_writes_the_run_directory_and_matches_the_api(tmp_path, cli_run, image_data, teacher_file):
    out, completed = cli_run
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()
    assert not resume_files(out)
    assert "epoch 4/4" in completed.stderr and "images/s" in completed.stderr
    metrics = read_json(out / "metrics.json")
    assert metrics["tags"] == {"role": "student", "teacher": ARCH}
    assert metrics["config"]["config"] == json.loads(json.dumps(asdict(CLI_CONFIG)))
    assert metrics["config"]["config"]["precision"] == "fp32"
    assert metrics["config"]["teacher"] == sha256(teacher_file)
    assert metrics["provenance"]["torch_threads"] == 1
    # The command line means exactly the configuration it records.
    run(image_data, {"kd": {"lam": [0.7], "tau": [2]}}, CLI_CONFIG, tmp_path / "api",
        teacher=teacher_file, tags={"role": "student", "teacher": ARCH})
    assert_same_run(out, tmp_path / "api")


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    recipe = {"epochs": 1, "batch_size": 50, "lr": 0.1, "momentum": 0.9, "weight_decay": 0, "milestones": [],
              "lr_decay": 0.1}
    common = ["--data", str(tmp_path / "absent.pt"), "--arch", ARCH, "--grid", '{"ce": {}}', "--seed", "0",
              "--out-dir", str(tmp_path / "o")]
    # The recipe is checked before anything is read: a wrong value, an unknown and a missing key.
    for bad, message in (({"precision": "bf16"}, "precision must be one of"), ({"milestones": [3, 2]}, "milestones"),
                         ({"momentun": 0.9}, "unknown key.* momentun"), ({"lr": None}, "missing key.* lr")):
        wrong = {key: value for key, value in {**recipe, **bad}.items() if value is not None}
        with pytest.raises(SystemExit):
            train_images.main([*common, "--recipe", json.dumps(wrong)])
        assert re.search(message, capsys.readouterr().err), message
    with pytest.raises(FileNotFoundError, match="prepared dataset not found"):
        train_images.main([*common, "--recipe", json.dumps(recipe)])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("overrides", [
    dict(epochs=0), dict(batch_size=0), dict(eval_batch_size=0), dict(lr=0.0), dict(lr=-0.1),
    dict(lr=math.nan), dict(lr_decay=0.0), dict(lr_decay=1.5), dict(momentum=1.0),
    dict(momentum=-0.1), dict(weight_decay=-1e-4), dict(milestones=(3, 2)),
    dict(milestones=(2, 2)), dict(precision="bf16"),
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_image_train_config_rejects_bad_values(overrides):
    with pytest.raises(ValueError, match=next(iter(overrides))):
        image_config(**overrides)


@pytest.mark.parametrize("overrides", [dict(milestones=(0, 2)), dict(milestones=(-1,)),
                                       dict(weight_decay=math.nan), dict(lr=math.inf)],
                         ids=["milestone-0", "milestone-negative", "weight_decay-nan", "lr-inf"])
def test_image_train_config_rejects_non_epochs_and_non_finite_values(overrides):
    with pytest.raises(ValueError, match=next(iter(overrides))):
        image_config(**overrides)


def test_image_train_config_accepts_the_edges():
    config = image_config(lr_decay=1.0, momentum=0.0, weight_decay=0.0, milestones=(),
                          precision="fp32")
    assert config.milestones == () and config.precision == "fp32"
