"""The Fashion-MNIST track end to end through Snakemake on the CPU, at tiny size: IDX files in the
real format in a user folder, tiny teachers (plain, label-smoothed, larger), MLP students; down
to the analyses, the teachers' diagnoses, the claims and the report."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers.idx_files import checksums, fake_fashion_mnist, write_files
from helpers.workflow_copy import check_code_edits, copy_workflow, data_phase, snakemake

from partialkd.data.fashion_mnist import locate, prepare_fashion_mnist
from partialkd.data.prepared import load_dataset

METHODS = {"ce": {}, "ls": {"lam": [0.1, 0.2], "tau": [1]}, "kd": {"lam": [0.9], "tau": [4]},
           "kd_pt": {"lam": [0.9], "tau": [4]}, "kd_sim": {"lam": [0.9], "tau": [4], "alpha": [0.3]},
           "kd_pt_sim": {"lam": [0.9], "tau": [4], "alpha": [0.3]},
           "kd_topk": {"lam": [0.9], "tau": [4], "k": [2, 5]}}


def tiny_fashion_mnist(folder: Path, md5: dict[str, str], workdir: Path) -> dict:
    return {
        "tracks": ["fashion_mnist"],
        "fashion_mnist": {
            "data": {"dir": str(folder), "debian_dir": str(workdir / "no-debian"),
                     "download_dir": str(workdir / "downloads"),
                     "url": "http://127.0.0.1:9/unreachable/", "md5": md5, "valid_size": 40},
            "recipe": {"epochs": 1, "batch_size": 50, "milestones": [1]},
            "teachers": {"cnn": {"arch": "cnn_16_32", "target": {"ce": {}}},
                         "cnn_ls": {"arch": "cnn_16_32", "target": {"ls": {"lam": [0.1], "tau": [1]}}},
                         "cnn_wide": {"arch": "cnn_32_64", "target": {"ce": {}},
                                      "recipe": {"epochs": 2, "milestones": [2]}}},
            "teacher_seeds": [0, 1],
            "students": {"seeds": [0], "architectures": {"mlp8": {"hidden": [8]}},
                         "training": {"train_size": 100, "epochs": 2, "batch_size": 50},
                         "pairs": [{"teacher": "cnn", "student": "mlp8"},
                                   {"teacher": "cnn_ls", "student": "mlp8", "methods": ["kd"]},
                                   {"teacher": "cnn_wide", "student": "mlp8", "methods": ["kd"]}]},
            "methods": METHODS,
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("fashion_mnist_workflow")
    files = fake_fashion_mnist(train=200, test=40)
    folder = write_files(workdir / "idx", files)
    md5 = {name: value for name, value in checksums(files).items() if name.endswith(".gz")}
    copy_workflow(workdir, tiny_fashion_mnist(folder, md5, workdir))
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_every_pair_and_seed_trains_down_to_the_report(finished: Path) -> None:
    summary = pd.read_csv(finished / "results/fashion_mnist/summary.csv")
    teachers = summary[summary["role"] == "teacher"]
    assert set(teachers["teacher"]) == {"cnn", "cnn_ls", "cnn_wide"}
    assert teachers.groupby("teacher")["teacher_seed"].nunique().eq(2).all()  # one teacher per seed
    students = summary[summary["role"] == "student"]
    assert set(students["student"]) == {"mlp8"}
    # the full pair's stack trains every method's grid; the diagnosis pairs kd alone
    assert set(students.loc[students["teacher"] == "cnn", "method"]) == set(METHODS)
    assert set(students.loc[students["teacher"] != "cnn", "method"]) == {"kd"}
    # each teacher seed's teachers teach their own students
    assert students.groupby("teacher")["teacher_seed"].nunique().eq(2).all()
    report = (finished / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## Fashion-MNIST")
    assert "### cnn → mlp8" in report and "### cnn_ls → mlp8" in report


def test_analyses_and_diagnoses_feed_claims_c9_to_c12(finished: Path) -> None:
    claims = json.loads((finished / "results/fashion_mnist/claims.json").read_text())
    ids = [claim["id"] for claim in claims["claims"]]
    assert ids == ["C1", "C2", "C3", "C4", "C8", "C9", "C10", "C11", "C12"]
    by_id = {claim["id"]: claim for claim in claims["claims"]}
    assert "cnn_ls" in " ".join(by_id["C9"]["evidence"])  # the LS teacher against the plain one
    assert "cnn_wide" in " ".join(by_id["C12"]["evidence"])  # the larger teacher against the smaller
    # C9 and C12 over the two teacher seeds, not over students or examples
    assert "(teacher seed sd " in by_id["C9"]["evidence"][0] and ", n = 2)" in by_id["C9"]["evidence"][0]
    assert "mean p_t difference per teacher seed" in by_id["C12"]["evidence"][0]
    assert "trained 2 vs 1 epochs: the step confounds size with training length" in by_id["C12"]["evidence"][0]
    for seed in (0, 1):
        diagnosis = json.loads((finished / f"results/fashion_mnist/diagnoses/teacher_seed{seed}/mlp8.json").read_text())
        assert [t["name"] for t in diagnosis["teachers"]] == ["cnn", "cnn_ls", "cnn_wide"]
        assert diagnosis["meta"]["replicate"] == seed and diagnosis["meta"]["unit"] == "teacher seed"
    figures = finished / "paper/figures/fashion_mnist/teacher_seed0"
    for kind in ("rescaling", "geometry", "geometry_bars"):
        assert (figures / f"cnn_mlp8_{kind}.pdf").stat().st_size > 1000
    for kind in ("confidence", "tau"):
        assert (figures / f"mlp8_{kind}.png").stat().st_size > 1000


def test_a_corrupt_file_is_refused_by_its_checksum(tmp_path: Path) -> None:
    files = fake_fashion_mnist(train=200, test=40)
    folder = write_files(tmp_path / "idx", files)
    md5 = {name: value for name, value in checksums(files).items() if name.endswith(".gz")}
    target = folder / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-7])
    copy_workflow(tmp_path, tiny_fashion_mnist(folder, md5, tmp_path))
    result = snakemake(tmp_path, "fashion_mnist_data_phase", "--configfile", "tiny.yaml")
    assert result.returncode != 0
    log = (tmp_path / "logs/fashion_mnist/data.log").read_text()
    assert "train-labels-idx1-ubyte.gz" in log and "MD5" in log
    assert not (tmp_path / "results/fashion_mnist/data/data.pt").exists()


def test_a_code_edit_reruns_exactly_the_jobs_that_run_the_code(finished: Path) -> None:
    """Issue 14: no Fashion-MNIST job runs the LSTM code; the CNN code reaches the stacked students
    through their teachers' logits; every training job runs the loss."""
    check_code_edits(finished, ("training/lm.py", "models/lstm.py", "data/synthetic.py"),
                     {"network_teacher_replicate", "network_student_stack"}, related=("training/images.py",))


def test_second_run_has_nothing_to_do(finished: Path) -> None:
    result = snakemake(finished, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_data_step_reads_a_torchvision_root(tmp_path: Path) -> None:
    """`fashion_mnist.data.torchvision_root` (FashionMNIST/raw/ with each NAME.gz and NAME, as
    torchvision leaves them): the dataset of the same files in a folder, with no other source."""
    files = fake_fashion_mnist(train=200, test=40)
    md5s = checksums(files)
    raw = tmp_path / "torchvision" / "FashionMNIST" / "raw"
    write_files(write_files(raw, files), files, "plain")
    config = tiny_fashion_mnist(write_files(tmp_path / "idx", files), md5s, tmp_path)
    config["fashion_mnist"]["data"] |= {"dir": None, "torchvision_root": str(tmp_path / "torchvision")}
    assert "using the torchvision source" in data_phase(tmp_path, config, "fashion_mnist")
    assert not (tmp_path / "downloads").exists()
    dataset = load_dataset(tmp_path / "results/fashion_mnist/data/data.pt")
    source = locate(tmp_path / "unused", tmp_path / "idx", None, md5s=md5s, download=False)
    expected = prepare_fashion_mnist(source, valid_size=40, split_seed=0, md5s=md5s)
    assert dataset.meta == expected.meta
    for name in ("train", "valid", "test"):
        assert torch.equal(dataset[name].x, expected[name].x)
        assert torch.equal(dataset[name].labels, expected[name].labels)
