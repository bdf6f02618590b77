"""The ImageNet track end to end through Snakemake on the CPU, at tiny size: a generated
ImageFolder (JPEG and PNG files in ImageNet's layout), a ResNet-34 teacher given as a plain
state-dict file, ResNet-18 students at a tiny crop for one epoch; down to the analyses, the
claims and the report. A malformed folder is refused naming `imagenet.data.root`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.image_folder import write_image_folder
from helpers.workflow_copy import copy_workflow, snakemake

from partialkd.models.vision import build_image_model

METHODS = {"ce": {}, "ls": {"lam": [0.1, 0.2], "tau": [1]}, "kd": {"lam": [0.9], "tau": [4]},
           "kd_pt": {"lam": [0.9], "tau": [4]}, "kd_sim": {"lam": [0.9], "tau": [4], "alpha": [0.2]},
           "kd_pt_sim": {"lam": [0.9], "tau": [4], "alpha": [0.2]},
           "kd_topk": {"lam": [0.9], "tau": [4], "k": [2]}}


def tiny_imagenet(root: Path, teachers: dict) -> dict:
    return {
        "tracks": ["imagenet"],
        "imagenet": {
            "data": {"root": str(root), "valid_per_class": 2},
            "input": {"crop": 16, "resize": 20, "workers": 0},
            "recipe": {"epochs": 1, "batch_size": 8, "lr": 0.05, "milestones": [1]},
            "teachers": teachers,
            "students": {"seeds": [0], "pairs": [{"teacher": next(iter(teachers)), "student": "resnet18"}]},
            "methods": METHODS,
            "analysis": {"max_examples": 8},
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("imagenet_workflow")
    root = write_image_folder(workdir / "imagenet", num_classes=4, train_per_class=5, val_per_class=2, side=24)
    teacher = workdir / "pretrained" / "resnet34.pth"
    teacher.parent.mkdir()
    torch.manual_seed(0)
    torch.save(build_image_model("resnet34", 4).state_dict(), teacher)
    copy_workflow(workdir, tiny_imagenet(root, {"pretrained": {"arch": "resnet34", "file": str(teacher)}}))
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_students_of_a_teacher_file_train_down_to_the_report(finished: Path) -> None:
    summary = pd.read_csv(finished / "results/imagenet/summary.csv")
    assert set(summary["role"]) == {"student"}  # the teacher is a file: no teacher run
    assert set(summary["method"]) == set(METHODS) and len(summary) == len(METHODS) + 1  # one seed; ls: two ε
    assert set(summary.loc[summary["method"] == "kd", "teacher"]) == {"pretrained"}
    assert not (finished / "results/imagenet/teachers").exists()
    report = (finished / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## ImageNet")
    assert "### pretrained → resnet18" in report and "test accuracy (%)" in report
    claims = json.loads((finished / "results/imagenet/claims.json").read_text())
    assert claims["metric"] == "acc"
    assert [claim["id"] for claim in claims["claims"]] == ["C1", "C2", "C3", "C4", "C8", "C10", "C11"]
    for kind in ("rescaling", "geometry", "geometry_bars"):
        assert (finished / f"paper/figures/imagenet/teacher_seed0/pretrained_resnet18_{kind}.png").stat().st_size > 1000


def test_a_teacher_without_a_file_is_trained_by_the_workflow(finished: Path, tmp_path: Path) -> None:
    copy_workflow(tmp_path, tiny_imagenet(finished / "imagenet", {"resnet34": {"arch": "resnet34",
                                                                               "target": {"ce": {}}}}))
    result = snakemake(tmp_path, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^network_teacher\s+1$", result.stdout, flags=re.MULTILINE), result.stdout[-3000:]


def test_a_malformed_root_is_refused_naming_the_parameter(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "imagenet", num_classes=2, train_per_class=3, val_per_class=1, side=16)
    for path in (root / "val").rglob("*"):
        if path.is_file():
            path.unlink()
    for folder in sorted((root / "val").iterdir()):
        folder.rmdir()
    (root / "val").rmdir()
    copy_workflow(tmp_path, tiny_imagenet(root, {"resnet34": {"arch": "resnet34", "target": {"ce": {}}}}))
    result = snakemake(tmp_path, "imagenet_data_phase", "--configfile", "tiny.yaml")
    assert result.returncode != 0
    log = (tmp_path / "logs/imagenet/index.log").read_text()
    assert "imagenet.data.root" in log and "val/" in log
    assert not (tmp_path / "results/imagenet/data/index.pt").exists()


def test_second_run_has_nothing_to_do(finished: Path) -> None:
    result = snakemake(finished, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
