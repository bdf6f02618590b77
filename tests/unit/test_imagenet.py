"""The ImageNet track on a tiny generated ImageFolder (tests/helpers/image_folder.py): `prepare imagenet`
(index contents, seeding, every malformed-root error), the file-fed input pipeline (transforms,
per-image seeds, workers, a corrupt file), and `train_imagenet` (a resnet18 teacher and a kd
student on the CPU, exact resume, metrics for `aggregate`, teachers given as files, reloading
through `training.read_runs.checkpoint_networks`)."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.runs import (assert_same_run, assert_same_tensors, interrupt_after, load_checkpoint, read_json,
                          resume_file)
from helpers.image_folder import truncate, wnids, write_image_folder

from partialkd import prepare

from partialkd import train_imagenet
from partialkd.common.devices import Placement
from partialkd.core.metrics import classification_metrics
from partialkd.data.imagenet import MEAN, STD, FolderImages, InputSize, decode_path, prepare_imagenet
from partialkd.data.prepared import load_dataset
from partialkd.reporting.summary import summarise
from partialkd.training.engine import resume_files
from partialkd.training.images import ImageTrainConfig
from partialkd.training.loader import scores
from partialkd.training.read_runs import checkpoint_networks

K, TRAIN_PER_CLASS, VAL_PER_CLASS, VALID_PER_CLASS = 4, 6, 2, 1
SIZE = InputSize(crop=24, resize=32)
CPU = Placement(torch.device("cpu"), bf16=False)
pytestmark = pytest.mark.usefixtures("cpu_only")  # exact float32 runs: the trainer stays on the CPU
KD = {"kd": {"lam": [0.9], "tau": [4]}}
SIZE_ARGS = ["--crop", "24", "--resize", "32"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("imagenet") / "root", K, TRAIN_PER_CLASS, VAL_PER_CLASS)


@pytest.fixture(scope="module")
def index(folder: Path) -> Path:
    out = folder.parent / "index.pt"
    prepare.main(["imagenet", "--root", str(folder), "--valid-per-class", str(VALID_PER_CLASS),
                  "--split-seed", "0", "--out", str(out)])
    return out


def config(**overrides: Any) -> ImageTrainConfig:
    values: dict[str, Any] = dict(arch="resnet18", epochs=2, batch_size=8, lr=0.01, momentum=0.9,
                                  weight_decay=1e-4, milestones=(1,), lr_decay=0.1, seed=0)
    return ImageTrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def teacher_run(index: Path) -> Path:
    """A resnet18 teacher, 2 epochs, trained through the command line."""
    out = index.parent / "teacher"
    train_imagenet.main(["--data", str(index), "--arch", "resnet18", "--grid", '{"ce": {}}',
                         "--recipe", json.dumps({"epochs": 2, "batch_size": 8, "lr": 0.01, "momentum": 0.9,
                                                 "weight_decay": 1e-4, "milestones": [1], "lr_decay": 0.1}),
                         *SIZE_ARGS, "--seed", "0", "--tag", "role=teacher", "--out-dir", str(out)])
    return out


@pytest.fixture(scope="module")
def student_run(index: Path, teacher_run: Path) -> Path:
    out = index.parent / "student"
    train_imagenet.run(index, KD, config(), out, SIZE, teacher=teacher_run / "model.pt",
                       tags={"role": "student", "teacher": "resnet18"})
    return out


def paths(split) -> list[str]:
    return [decode_path(row) for row in split.x.numpy()]


# ----------------------------------------------------------------------------- the index


def test_the_index_lists_every_image_once_with_its_class(folder, index):
    dataset = load_dataset(index)
    classes = wnids(K)
    assert dataset.num_classes == K and dataset.meta["class_names"] == classes
    assert dataset.meta["root"] == str(folder) and dataset.meta["track"] == "imagenet"
    assert dataset.meta["sizes"] == {"train": K * (TRAIN_PER_CLASS - VALID_PER_CLASS),
                                     "valid": K * VALID_PER_CLASS, "test": K * VAL_PER_CLASS}
    on_disk = {folder_name: {str(path.relative_to(folder)) for path in (folder / folder_name).rglob("*.*")}
               for folder_name in ("train", "val")}
    train, valid, test = (paths(dataset[name]) for name in ("train", "valid", "test"))
    assert set(train).isdisjoint(valid) and sorted(train + valid) == sorted(on_disk["train"])
    assert sorted(test) == sorted(on_disk["val"])
    for name in ("train", "valid", "test"):
        split = dataset[name]
        assert split.x.dtype == torch.uint8 and split.labels.dtype == torch.long
        assert [classes[label] for label in split.labels.tolist()] == [p.split("/")[1] for p in paths(split)]
    assert torch.bincount(dataset["valid"].labels, minlength=K).tolist() == [VALID_PER_CLASS] * K


def test_the_held_out_images_are_fixed_by_the_seed_class_by_class(folder, index, tmp_path):
    valid = paths(load_dataset(index)["valid"])
    assert paths(prepare_imagenet(folder, VALID_PER_CLASS, 0)["valid"]) == valid
    assert paths(prepare_imagenet(folder, VALID_PER_CLASS, 1)["valid"]) != valid
    grown = shutil.copytree(folder, tmp_path / "root")  # one more image in the last class
    last = grown / "train" / wnids(K)[-1]
    shutil.copy(last / f"{wnids(K)[-1]}_0.JPEG", last / "extra.JPEG")
    again = paths(prepare_imagenet(grown, VALID_PER_CLASS, 0)["valid"])
    assert again[:-1] == valid[:-1]  # the other classes' choices do not move


# ---------------------------------------------------------------------- malformed folders


def _remove(relative: str) -> Callable[[Path], None]:
    return lambda root: shutil.rmtree(root / relative)


def _extra_class(root: Path) -> None:
    shutil.copytree(root / "train" / wnids(K)[0], root / "train" / "n99999999")


def _empty_class(root: Path) -> None:
    for path in (root / "val" / wnids(K)[1]).iterdir():
        path.unlink()


def _write(relative: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / relative).write_bytes(data)


def _subfolder(root: Path) -> None:
    (root / "train" / wnids(K)[2] / "nested").mkdir()


BROKEN: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "missing root": (_remove("."), ["is not a directory"]),
    "missing val": (_remove("val"), ["has no val/ folder", "ROOT/val/<wnid>"]),
    "no class folders": (lambda root: [_remove(f"train/{wnid}")(root) for wnid in wnids(K)],
                         ["holds no class folders"]),
    "class sets differ": (_extra_class, ["differ", "n99999999 only in train", "none only in val"]),
    "empty class": (_empty_class, ["1 class folders", "val/n00000001", "hold no images"]),
    "not an image": (_write(f"train/{wnids(K)[0]}/notes.txt", b"hello"),
                     ["1 files without an image extension", "notes.txt"]),
    "empty file": (_write(f"val/{wnids(K)[3]}/blank.JPEG", b""), ["1 empty files", "blank.JPEG"]),
    "a folder in a class": (_subfolder, ["1 entries that are not files", "nested"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_malformed_folder_is_refused_naming_the_parameter_and_the_problem(folder, tmp_path, case):
    root = shutil.copytree(folder, tmp_path / "root")
    breaker, phrases = BROKEN[case]
    breaker(root)
    with pytest.raises(ValueError, match="^imagenet.data.root: ") as error:
        prepare_imagenet(root, VALID_PER_CLASS, 0)
    for phrase in phrases:
        assert phrase in str(error.value)


def test_the_header_check_finds_a_file_that_is_no_image(folder, tmp_path):
    root = shutil.copytree(folder, tmp_path / "root")
    fake = root / "train" / wnids(K)[1] / "fake.JPEG"
    fake.write_bytes(b"<html>not found</html>")
    prepare_imagenet(root, VALID_PER_CLASS, 0)  # the cheap checks pass it
    with pytest.raises(ValueError, match="1 files whose header PIL cannot read") as error:
        prepare_imagenet(root, VALID_PER_CLASS, 0, check_headers=True)
    assert str(fake) in str(error.value) and "imagenet.data.root" in str(error.value)


def test_the_command_line_reports_a_bad_folder_and_a_bad_valid_size(folder, tmp_path):
    args = ["imagenet", "--root", str(tmp_path / "nowhere"), "--valid-per-class", "1",
            "--split-seed", "0", "--out", str(tmp_path / "index.pt")]
    with pytest.raises(SystemExit, match="^prepare imagenet: imagenet.data.root: .*nowhere is not a dir"):
        prepare.main(args)
    args[2] = str(folder)
    for count in ("0", str(TRAIN_PER_CLASS)):
        args[4] = count
        with pytest.raises(SystemExit, match=f"valid_per_class .* got {count}; the smallest class"):
            prepare.main(args)
    assert not (tmp_path / "index.pt").exists()


# ---------------------------------------------------------------------------- the pipeline


def test_evaluation_batches_are_the_centre_crops_in_order(index):
    dataset = load_dataset(index)
    images = FolderImages(dataset["test"], dataset.meta["root"], SIZE, CPU, workers=0)
    batches = list(images.in_order(3))
    assert [len(labels) for _, labels in batches] == [3, 3, 2]
    x = torch.cat([x for x, _ in batches])
    assert x.shape == (K * VAL_PER_CLASS, 3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(torch.cat([y for _, y in batches]), dataset["test"].labels)
    pixels = x * torch.tensor(STD).view(1, 3, 1, 1) * 255 + torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    assert (pixels - pixels.round()).abs().max() < 1e-3 and pixels.min() > -0.5 and pixels.max() < 255.5
    assert torch.equal(torch.cat([x for x, _ in images.in_order(8)]), x)


def test_an_epoch_is_fixed_by_the_generator_whatever_the_workers(index):
    dataset = load_dataset(index)
    train = dataset["train"]

    def epoch(workers: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = FolderImages(train, dataset.meta["root"], SIZE, CPU, workers)
        batches = list(images.augmented_epoch(8, torch.Generator().manual_seed(seed)))
        assert [len(y) for _, y in batches] == [8, 8, 4]
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    torch.manual_seed(123)
    state = torch.get_rng_state()
    x, y = epoch(0, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the per-image seeds leave the global RNG alone
    assert sorted(y.tolist()) == sorted(train.labels.tolist()) and y.tolist() != train.labels.tolist()
    x2, y2 = epoch(2, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = epoch(0, seed=6)
    assert not torch.equal(x, x3)


@pytest.mark.parametrize("workers", [0, 1])
def test_an_image_that_does_not_decode_stops_the_loader_naming_the_file(folder, tmp_path, workers):
    root = shutil.copytree(folder, tmp_path / "root")
    bad = root / "val" / wnids(K)[2] / f"{wnids(K)[2]}_0.JPEG"
    truncate(bad)
    dataset = prepare_imagenet(root, VALID_PER_CLASS, 0, check_headers=True)  # its header still reads
    images = FolderImages(dataset["test"], root, SIZE, CPU, workers)
    with pytest.raises(ValueError, match="imagenet.data.root: image .* cannot be read") as error:
        list(images.in_order(4))
    assert str(bad) in str(error.value)


def test_a_moved_folder_is_named_before_any_image_is_read(index, tmp_path):
    dataset = load_dataset(index)
    with pytest.raises(FileNotFoundError, match="imagenet.data.root: .*gone.* is not there"):
        FolderImages(dataset["test"], tmp_path / "gone", SIZE, CPU, workers=0)


def test_scores_add_top5_accuracy():
    logits = torch.arange(10.0).repeat(4, 1)  # every row ranks class 9 first, 5 fifth
    labels = torch.tensor([9, 5, 4, 0])
    result = scores(logits, labels, 10)
    assert result["top5_acc"].tolist() == [0.5]
    assert result["acc"].tolist() == [0.25]
    assert set(result) == {"acc", "nll", "ece", "top5_acc"}


# ---------------------------------------------------------------------------- training


def test_a_run_writes_metrics_that_aggregate_reads(teacher_run, student_run):
    metrics = read_json(teacher_run / "metrics.json")
    variant = metrics["variants"][0]
    for when in ("best", "last"):
        for split in ("valid", "test"):
            assert set(variant[when][split]) == {"acc", "nll", "ece", "top5_acc"}
    assert metrics["dataset"]["track"] == "imagenet"
    assert metrics["config"]["input"] == {"crop": 24, "resize": 32}
    assert load_checkpoint(teacher_run / "model.pt")["arch"] == {
        "family": "imagenet", "name": "resnet18", "num_classes": K, "crop": 24, "resize": 32}
    assert not resume_files(teacher_run)
    table = summarise([teacher_run / "metrics.json", student_run / "metrics.json"])
    assert table["method"].tolist() == ["ce", "kd"] and table["track"].tolist() == ["imagenet"] * 2
    assert table["best_test_top5_acc"].notna().all() and table["selected"].all()


def test_the_checkpoint_scores_its_recorded_best_validation_accuracy(index, student_run):
    dataset = load_dataset(index)
    network = next(iter(checkpoint_networks(student_run / "model.pt", dataset).values()))
    split = dataset["valid"]
    acc = classification_metrics(network.logits(split), split.truth(K))["acc"]
    recorded = read_json(student_run / "metrics.json")["variants"][0]["best"]["valid"]["acc"]
    assert float(acc) == pytest.approx(recorded, abs=1e-6)
    assert network.class_weights.shape == (K, 512) and network.variant.method == "kd"


def test_a_resumed_run_equals_an_uninterrupted_one(index, teacher_run, student_run, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train_imagenet.run(index, KD, config(), out, SIZE, teacher=teacher_run / "model.pt",
                           tags={"role": "student", "teacher": "resnet18"}, on_epoch_end=interrupt_after(1))
    assert load_checkpoint(resume_file(out))["epoch"] == 1
    train_imagenet.run(index, KD, config(), out, SIZE, teacher=teacher_run / "model.pt",
                       tags={"role": "student", "teacher": "resnet18"})
    assert_same_run(student_run, out)


def test_a_plain_state_dict_teacher_loads_as_the_run_it_came_from(teacher_run, tmp_path):
    run_teacher = train_imagenet.load_teacher(teacher_run / "model.pt", K)
    best = load_checkpoint(teacher_run / "model.pt")["best_state"]
    plain, wrapped = tmp_path / "resnet18.pth", tmp_path / "checkpoint.pth.tar"
    torch.save(best, plain)
    torch.save({"epoch": 2, "arch": "resnet18",  # pytorch/examples' layout, saved from DataParallel
                "state_dict": {f"module.{name}": value for name, value in best.items()}}, wrapped)
    for source in (plain, wrapped):
        teacher = train_imagenet.load_teacher(source, K, "resnet18")
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        assert_same_tensors(teacher.state_dict(), run_teacher.state_dict())


def test_a_student_distils_from_a_plain_state_dict_teacher(index, teacher_run, tmp_path):
    plain = tmp_path / "resnet18.pth"
    torch.save(load_checkpoint(teacher_run / "model.pt")["best_state"], plain)
    metrics = train_imagenet.run(index, KD, config(epochs=1), tmp_path / "run", SIZE, teacher=plain,
                                 teacher_arch="resnet18")
    assert metrics["config"]["teacher"]["arch"] == "resnet18"
    assert metrics["variants"][0]["method"] == "kd"


def test_teacher_files_that_do_not_fit_are_refused(index, teacher_run, tmp_path):
    best = load_checkpoint(teacher_run / "model.pt")["best_state"]
    torch.save(best, tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match=r"does not fit torchvision's resnet34: it lacks 80 of its "
                                         r"tensors \(layer1.2.conv1.weight, .* and 75 more\) and has "
                                         r"0 others \(none\)"):
        train_imagenet.load_teacher(tmp_path / "resnet18.pth", K, "resnet34")
    torch.save({**best, "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, tmp_path / "ten.pth")
    with pytest.raises(ValueError, match=r"has 10 classes \(fc.weight \[10, 512\]\) but the index has 4"):
        train_imagenet.load_teacher(tmp_path / "ten.pth", K, "resnet18")
    with pytest.raises(ValueError, match="not a state dict"):
        train_imagenet.load_teacher(teacher_run / "model.pt", K, "resnet18")
    with pytest.raises(ValueError, match="not a training run's model.pt .*--teacher-arch"):
        train_imagenet.load_teacher(tmp_path / "resnet18.pth", K)
    with pytest.raises(ValueError, match="was trained for .* but this run needs"):
        train_imagenet.load_teacher(teacher_run / "model.pt", K + 1)


def test_a_distilling_grid_without_a_teacher_and_a_foreign_index_are_refused(index, data_path, tmp_path):
    with pytest.raises(ValueError, match="distil from a teacher: pass --teacher"):
        train_imagenet.run(index, KD, config(), tmp_path / "a", SIZE)
    with pytest.raises(ValueError, match="is not an ImageNet index"):
        train_imagenet.run(data_path, {"ce": {}}, config(), tmp_path / "b", SIZE)
