"""The Penn Treebank track end to end through Snakemake on the CPU, at tiny size: ptb.*.txt files
in the real format in a user folder (checked by MD5), tiny LSTMs, one epoch, one seed; down to
the analyses (restricted to the most frequent words), the claims on perplexity and the report."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.ptb_files import checksums, fake_texts, write_files
from helpers.workflow_copy import check_code_edits, copy_workflow, snakemake

METHODS = {"ce": {}, "ls": {"lam": [0.1, 0.2], "tau": [1]}, "kd": {"lam": [0.9], "tau": [2]},
           "kd_pt": {"lam": [0.9], "tau": [2]}, "kd_sim": {"lam": [0.9], "tau": [2], "alpha": [0.3]},
           "kd_pt_sim": {"lam": [0.9], "tau": [2], "alpha": [0.3]},
           "kd_topk": {"lam": [0.9], "tau": [2], "k": [5]}}


def tiny_ptb(folder: Path, md5: dict[str, str], workdir: Path) -> dict:
    return {
        "tracks": ["ptb"],
        "ptb": {
            "data": {"dir": str(folder), "package": False, "download_dir": str(workdir / "downloads"),
                     "url": "http://127.0.0.1:9/unreachable/", "md5": md5},
            "recipe": {"epochs": 1, "batch_size": 4, "bptt": 5, "decay_after": 0},
            "teachers": {"medium": {"arch": "tiny", "target": {"ce": {}}, "recipe": {"epochs": 2}}},
            "students": {"seeds": [0], "pairs": [{"teacher": "medium", "student": "tiny"}]},
            "methods": METHODS,
            "analysis": {"top_classes": 12, "max_examples": 40},
        },
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("ptb_workflow")
    texts = fake_texts()
    folder = write_files(workdir / "ptb", texts)
    copy_workflow(workdir, tiny_ptb(folder, checksums(texts), workdir))
    result = snakemake(workdir, "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_every_method_and_seed_trains_down_to_the_report(finished: Path) -> None:
    summary = pd.read_csv(finished / "results/ptb/summary.csv")
    assert set(summary.loc[summary["role"] == "teacher", "teacher"]) == {"medium"}
    students = summary[summary["role"] == "student"]
    assert set(students["method"]) == set(METHODS) and len(students) == len(METHODS) + 1  # ls: two ε
    assert (students["best_test_ppl"] > 1).all() and (students.groupby("method")["selected"].sum() == 1).all()
    report = (finished / "paper/REPORT.md").read_text()
    assert report.index("## Claims") < report.index("## Penn Treebank")
    assert "### medium → tiny" in report and "test perplexity" in report
    assert "Metric: test perplexity, lower is better" in report


def test_claims_compare_perplexity_and_use_the_analyses(finished: Path) -> None:
    claims = json.loads((finished / "results/ptb/claims.json").read_text())
    assert claims["metric"] == "ppl"
    by_id = {claim["id"]: claim for claim in claims["claims"]}
    assert list(by_id) == ["C1", "C2", "C3", "C4", "C8", "C10", "C11"]
    # kd > ls on perplexity: the difference is ls − kd (positive when kd's perplexity is lower)
    assert by_id["C1"]["evidence"][0].startswith("medium→tiny: ls − kd = ") and " ppl [" in by_id["C1"]["evidence"][0]
    summary = pd.read_csv(finished / "results/ptb/summary.csv").query("role == 'student'")
    gain = summary[summary["selected"]].pivot_table(index="seed", columns="method", values="best_test_ppl")
    assert f"{(gain['ls'] - gain['kd']).mean():+.2f} ppl" in by_id["C1"]["evidence"][0]
    analysis = json.loads((finished / "results/ptb/analyses/teacher_seed0/medium/tiny.json").read_text())
    assert analysis["meta"]["classes"] == 12 and analysis["meta"]["examples"] == 40
    for kind in ("rescaling", "geometry", "geometry_bars"):
        assert (finished / f"paper/figures/ptb/teacher_seed0/medium_tiny_{kind}.png").stat().st_size > 1000


def test_a_corrupt_file_is_refused_by_its_checksum(tmp_path: Path) -> None:
    texts = fake_texts()
    folder = write_files(tmp_path / "ptb", texts)
    md5 = checksums(texts)
    (folder / "ptb.valid.txt").write_text(texts["valid"] + " extra \n")
    copy_workflow(tmp_path, tiny_ptb(folder, md5, tmp_path))
    result = snakemake(tmp_path, "ptb_data_phase", "--configfile", "tiny.yaml")
    assert result.returncode != 0
    log = (tmp_path / "logs/ptb/data.log").read_text()
    assert "ptb.valid.txt" in log and "MD5" in log
    assert not (tmp_path / "results/ptb/data/data.pt").exists()


def test_a_code_edit_reruns_exactly_the_jobs_that_run_the_code(finished: Path) -> None:
    """Issue 14: every Penn Treebank training job runs the LSTM code, none the image networks'."""
    check_code_edits(finished, ("models/vision.py", "training/images.py", "data/synthetic.py"),
                     {"network_teacher", "network_student"}, related=("models/lstm.py",))


def test_second_run_has_nothing_to_do(finished: Path) -> None:
    result = snakemake(finished, "--configfile", "tiny.yaml", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
