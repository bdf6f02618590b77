"""The CIFAR-100 track end to end through Snakemake on the CPU, at tiny size: a generated archive
in the real format, tiny networks, one epoch; down to the table and claims in the report."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.cifar_archive import write_cifar100_archive
from torchvision.datasets.utils import calculate_md5, extract_archive
from helpers.workflow_copy import check_code_edits, copy_workflow, data_phase, snakemake

from partialkd.data.cifar100 import prepare_cifar100, read_archive
from partialkd.data.prepared import load_dataset

METHODS = {"ce": {}, "ls": {"lam": [0.1, 0.2], "tau": [1]}, "kd": {"lam": [0.9], "tau": [4]},
           "kd_pt": {"lam": [0.9], "tau": [4]}, "kd_sim": {"lam": [0.9], "tau": [4], "alpha": [0.2]},
           "kd_pt_sim": {"lam": [0.9], "tau": [4], "alpha": [0.2]},
           "kd_topk": {"lam": [0.9], "tau": [4], "k": [5, 25]}}


def tiny_cifar(archive: Path, md5: str) -> dict:
    return {
        "tracks": ["cifar100"],
        "cifar100": {
            "data": {"archive": str(archive), "url": "http://127.0.0.1:9/unreachable.tar.gz",
                     "md5": md5, "valid_size": 100},
            "recipe": {"epochs": 2, "batch_size": 50, "milestones": [1]},
            "teachers": {"small": {"arch": "resnet8", "target": {"ce": {}}},
                         "small_ls": {"arch": "resnet8", "target": {"ls": {"lam": [0.1], "tau": [1]}}}},
            "students": {"seeds": [0],  # the matrix's shape, not its statistics (the suite's time)
                         "pairs": [{"teacher": "small", "student": "resnet8"},
                                   {"teacher": "small_ls", "student": "resnet8", "methods": ["kd"]}]},
            "methods": METHODS,
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("cifar_workflow")
    archive = workdir / "downloads" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    md5 = write_cifar100_archive(archive, train_per_class=4, test_per_class=1)
    copy_workflow(workdir, tiny_cifar(archive, md5))
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_the_matrix_runs_down_to_the_report(finished: Path) -> None:
    summary = pd.read_csv(finished / "results/cifar100/summary.csv")
    students = summary[summary["role"] == "student"]
    # ce and ls (two ε) need no teacher: 3 jobs per seed; 6 distilling variants of `small`; kd of small_ls
    assert len(students) == 3 + 6 + 1
    assert set(students.loc[students["teacher"] == "none", "method"]) == {"ce", "ls"}
    assert set(summary.loc[summary["role"] == "teacher", "teacher"]) == {"small", "small_ls"}
    # one kd_topk row per seed is selected (the better k on validation)
    topk = students[students["method"] == "kd_topk"]
    assert sorted(topk["k"].unique()) == [5, 25] and topk["selected"].sum() == 1
    for _, rows in topk.groupby("seed"):
        assert rows.loc[rows["selected"], "best_valid_acc"].iloc[0] == rows["best_valid_acc"].max()
    assert summary["best_test_acc"].between(0, 1).all()
    # every image run records its peak test accuracy over the epochs (the peers' protocol number)
    assert (summary["peak_test_acc"] >= summary["best_test_acc"]).all()
    assert summary["peak_epoch"].between(1, summary["epochs"]).all()
    selected = pd.read_csv(finished / "results/cifar100/selected.csv")
    assert len(selected) == 8 and selected["selected"].all()
    report = (finished / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## CIFAR-100")
    for claim in ("C1", "C2", "C3", "C4", "C8"):
        assert f"**{claim}**" in report
    assert "Compared: per teacher→student pair: small→resnet8." in report
    assert "### small → resnet8" in report and "### small_ls → resnet8" in report
    assert "| Δ (ours) | peak test over epochs | Δ (peers' protocol) |" in report
    assert "## Synthetic study" not in report
    # the distilling students read their teacher's logits from its cache (teacher_cache: auto, float32
    # on a CPU), which Snakemake deleted once they were trained; ce and ls need none
    for teacher, variant in (("small", "kd-lam0.9-tau4"), ("small_ls", "kd-lam0.9-tau4"), ("none", "ce-lam0-tau1")):
        config = json.loads((finished / f"results/cifar100/students/resnet8/{teacher}/{variant}/seed0/metrics.json"
                             ).read_text())["config"]
        assert config.get("teacher_cache") == (None if teacher == "none" else "float32"), teacher
    assert sorted(path.name for path in (finished / "logs/cifar100/teacher_caches").iterdir()) == [
        "small.log", "small_ls.log"]
    assert not list(finished.glob("results/cifar100/teachers/*/view_logits.pt"))


def test_runs_record_their_device_and_speed(finished: Path) -> None:
    summary = pd.read_csv(finished / "results/cifar100/summary.csv")
    assert (summary["device"].str.startswith("cpu")).all()
    assert (summary["seconds_per_epoch"] > 0).all()
    log = (finished / "logs/cifar100/teachers/small.log").read_text()
    assert "epoch 2/2" in log and "images/s" in log


def test_a_code_edit_reruns_exactly_the_jobs_that_run_the_code(finished: Path) -> None:
    """Issue 14: no CIFAR-100 job runs the LSTM or synthetic code; every training job runs the loss."""
    check_code_edits(finished, ("training/lm.py", "models/lstm.py", "data/synthetic.py", "training/stacked.py"),
                     {"network_teacher", "network_teacher_cache", "network_student"})


def test_second_run_has_nothing_to_do(finished: Path) -> None:
    result = snakemake(finished, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_data_step_reads_a_torchvision_root(tmp_path: Path) -> None:
    """`cifar100.data.torchvision_root` (its cifar-100-python/ unpacked from a generated archive as
    torchvision unpacks it): the archive's dataset, with no archive and no network."""
    archive = tmp_path / "generated" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    md5 = write_cifar100_archive(archive, train_per_class=4, test_per_class=1)
    root = tmp_path / "torchvision"
    extract_archive(archive, root)
    config = tiny_cifar(tmp_path / "downloads" / "cifar-100-python.tar.gz", md5)
    file_md5 = {name: calculate_md5(root / "cifar-100-python" / name) for name in ("train", "test", "meta")}
    config["cifar100"]["data"] |= {"torchvision_root": str(root), "file_md5": file_md5}
    assert "using the torchvision root" in data_phase(tmp_path, config, "cifar100")
    assert not (tmp_path / "downloads").exists()
    dataset = load_dataset(tmp_path / "results/cifar100/data/data.pt")
    expected = prepare_cifar100(read_archive(archive, md5), valid_size=100, split_seed=0)
    assert dataset.meta == expected.meta
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)
