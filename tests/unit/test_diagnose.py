"""`python -m partialkd.diagnose`: teacher confidence statistics with known answers, the size
pairs of C12, the students of C9, and the command on synthetic and image teachers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.runs import TINY_GAMMA, read_json
from helpers.image_runs import image_config, make_dataset

from partialkd import diagnose as diagnose_module
from partialkd.analysis.geometry import teacher_probability_correlation
from partialkd.claims import HOLDS, NOT_RUN, Inference, claim_c12, claim_c9
from partialkd.core.metrics import accuracy
from partialkd.data.prepared import load_dataset, save_dataset
from partialkd.diagnose import (FILE_TEACHER, checkpoint_identity, confidence_stats, load_teacher, main,
                                parse_teachers, size_pairs, taught_students, top_class_correlation,
                                true_class_probability)
from partialkd.models.lstm import build_lm
from partialkd.models.vision import build_image_model
from partialkd.train_images import run as run_image
from partialkd.training.read_runs import Network, teacher_network

INFERENCE = Inference(0.95, "bonferroni", 0.5)

# ------------------------------------------------------------- statistics of p_t


def logits_of(p_true: list[float]) -> torch.Tensor:
    """Two-class logits [log(p/(1−p)), 0]: the true class 0 has probability p."""
    p = torch.tensor(p_true, dtype=torch.float64)
    return torch.stack([torch.log(p / (1 - p)), torch.zeros_like(p)], dim=1)


def test_confidence_stats_of_known_probabilities():
    p = [0.5, 0.8, 0.95, 0.995]
    stats = confidence_stats(logits_of(p), torch.zeros(4, dtype=torch.long))
    entropy = np.mean([-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in p])
    assert stats == pytest.approx({
        "p_t_mean": np.mean(p), "p_t_median": (0.8 + 0.95) / 2,  # linear interpolation
        "p_t_q10": 0.5 + 0.3 * 0.3, "p_t_q90": 0.95 + 0.7 * 0.045,
        "p_t_ge_0.9": 0.5, "p_t_ge_0.99": 0.25, "entropy": entropy})


def test_constant_logits_give_p_t_of_one_over_k():
    k = 7
    logits = torch.full((50, k), 3.0)
    labels = torch.arange(50) % k
    uniform = torch.full((50,), 1 / k, dtype=torch.float64)
    assert torch.allclose(true_class_probability(logits, labels), uniform)
    stats = confidence_stats(logits, labels)
    for key in ("p_t_mean", "p_t_median", "p_t_q10", "p_t_q90"):
        assert stats[key] == pytest.approx(1 / k)
    assert stats["p_t_ge_0.9"] == stats["p_t_ge_0.99"] == 0
    assert stats["entropy"] == pytest.approx(math.log(k))


def confident_logits(n: int = 400, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits whose largest entry is the true class."""
    logits = torch.randn(n, k, generator=torch.Generator().manual_seed(0))
    return logits, logits.argmax(1)


def test_scaled_up_logits_shift_p_t_toward_one_and_make_a_positive_size_pair():
    logits, labels = confident_logits()
    mild, sharp = confidence_stats(logits, labels), confidence_stats(4 * logits, labels)
    for key in ("p_t_mean", "p_t_median", "p_t_q10", "p_t_q90"):
        assert sharp[key] > mild[key]
    assert sharp["p_t_ge_0.9"] > mild["p_t_ge_0.9"] and sharp["entropy"] < mild["entropy"]
    rows = [{"name": "sharp", "method": "ce", "parameters": 2000},
            {"name": "mild", "method": "ce", "parameters": 100}]
    p_t = {"mild": true_class_probability(logits, labels),
           "sharp": true_class_probability(4 * logits, labels)}
    [pair] = size_pairs(rows, p_t)
    assert (pair["smaller"], pair["larger"], pair["n"]) == ("mild", "sharp", 400)
    assert pair["mean"] == pytest.approx(sharp["p_t_mean"] - mild["p_t_mean"])
    assert pair["mean"] - 2 * pair["se"] > 0
    assert claim_c12([{"meta": {"condition": 0.0}, "teachers": [{**r, **confidence_stats(
        s * logits, labels)} for r, s in zip(rows, (4, 1))], "size_pairs": [pair]}], INFERENCE).verdict == HOLDS


def test_size_pairs_order_plain_teachers_by_size_and_skip_others():
    p_t = {name: torch.tensor(values, dtype=torch.float64) for name, values in {
        "small": [0.1, 0.2, 0.3], "mid": [0.2, 0.4, 0.3], "big": [0.5, 0.5, 0.5],
        "twin": [0.9, 0.9, 0.9], "smooth": [0.0, 0.0, 0.0], "oracle": [1.0, 1.0, 1.0]}.items()}
    rows = [{"name": "big", "method": "ce", "parameters": 1000},
            {"name": "smooth", "method": "ls", "parameters": 500},
            {"name": "small", "method": "ce", "parameters": 100},
            {"name": "oracle", "method": "oracle", "parameters": None},
            {"name": "mid", "method": "ce", "parameters": 500},
            {"name": "twin", "method": "ce", "parameters": 500}]  # same size as mid: no pair
    pairs = size_pairs(rows, p_t)
    assert [(p["smaller"], p["larger"]) for p in pairs] == [("small", "mid"), ("twin", "big")]
    first = pairs[0]
    assert first["mean"] == pytest.approx(0.1)  # differences 0.1, 0.2, 0.0
    assert first["se"] == pytest.approx(0.1 / math.sqrt(3))
    assert (first["n"], first["smaller_parameters"], first["larger_parameters"]) == (3, 100, 500)
    without_mid = [row for row in rows if row["name"] not in ("mid", "twin")]
    assert size_pairs(without_mid, p_t) == [{
        "smaller": "small", "larger": "big", "smaller_parameters": 100, "larger_parameters": 1000,
        "mean": pytest.approx(0.3), "se": pytest.approx(0.1 / math.sqrt(3)), "n": 3}]


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_top_class_correlation_is_the_block_of_the_full_matrix(tau):
    logits = 3 * torch.randn(60, 9, generator=torch.Generator().manual_seed(1))
    full = teacher_probability_correlation(logits, tau)
    assert torch.allclose(top_class_correlation(logits, tau, 4), full[:4, :4], atol=1e-12)
    assert torch.equal(top_class_correlation(logits, tau, 9), full)
    renormalised = teacher_probability_correlation(logits[:, :4], tau)  # softmax over 4 classes only
    assert not torch.allclose(renormalised, full[:4, :4], atol=1e-3)


# ------------------------------------------------------------------ the students


def student_rows(**overrides) -> dict:
    return {"track": "cifar100", "role": "student", "teacher": "resnet56", "student": "resnet20",
            "gamma": np.nan, "seed": 0, "method": "kd", "best_test_acc": 0.7, "selected": True,
            **overrides}


def test_taught_students_of_an_image_track():
    summary = pd.DataFrame([
        student_rows(), student_rows(seed=1, best_test_acc=0.71),
        student_rows(teacher="resnet56_ls", best_test_acc=0.68),
        student_rows(teacher="none", method="ce", best_test_acc=0.66),
        student_rows(teacher="none", method="ls", best_test_acc=0.67),       # not kd nor ce
        student_rows(teacher="resnet56", method="kd_pt"),                    # another method
        student_rows(student="resnet32", best_test_acc=0.1),                # another student
        student_rows(teacher="resnet110", best_test_acc=0.1),               # teacher not listed
        student_rows(best_test_acc=0.1, selected=False),                    # not selected
        student_rows(role="teacher", teacher="resnet56", best_test_acc=0.1),
    ])
    rows = taught_students(summary, ["resnet56", "resnet56_ls"], student="resnet20")
    assert rows == [{"teacher": "none", "method": "ce", "seed": 0, "test_acc": 0.66},
                    {"teacher": "resnet56", "method": "kd", "seed": 0, "test_acc": 0.7},
                    {"teacher": "resnet56", "method": "kd", "seed": 1, "test_acc": 0.71},
                    {"teacher": "resnet56_ls", "method": "kd", "seed": 0, "test_acc": 0.68}]


def test_taught_students_of_the_synthetic_track_by_gamma():
    summary = pd.DataFrame([student_rows(track="synthetic", teacher=t, student=np.nan, gamma=g,
                                         method=m, best_test_acc=0.5 + g / 10)
                            for t in ("mlp", "oracle") for g in (0.0, 0.5) for m in ("ce", "kd")])
    rows = taught_students(summary, ["mlp"], gamma=0.5)
    assert [(r["teacher"], r["method"], r["test_acc"]) for r in rows] == [("mlp", "ce", 0.55),
                                                                         ("mlp", "kd", 0.55)]
    with pytest.raises(ValueError, match=r"no selected kd student of the teachers \['mlp'\], γ = 0.9"):
        taught_students(summary, ["mlp"], gamma=0.9)


# -------------------------------------------------------------------- arguments


@pytest.mark.parametrize(("items", "message"), [
    (["resnet56"], "expected NAME=MODEL.pt or NAME=oracle, got 'resnet56'"),
    (["=a.pt"], "got '=a.pt'"),
    (["a="], "got 'a='"),
    (["a=x.pt", "b=y.pt", "a=z.pt"], "the name 'a' is given twice"),
])
def test_bad_teacher_arguments(items, message, capsys):
    with pytest.raises(ValueError, match=message):
        parse_teachers(items)
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", "d.pt", "--teachers", *items, "--out-json", "j", "--figure-stem", "s"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_teachers_parse_in_order_with_paths_holding_equal_signs():
    assert parse_teachers(["b=run/x=1/model.pt", "oracle=oracle"]) == {"b": "run/x=1/model.pt",
                                                                      "oracle": "oracle"}


def test_summary_and_condition_go_together(capsys):
    for extra in (["--summary", "s.csv"], ["--student", "resnet20"], ["--gamma", "0.5"]):
        with pytest.raises(SystemExit):
            main(["--data", "d.pt", "--teachers", "a=oracle", "--out-json", "j", "--figure-stem", "s",
                  *extra])
        assert "--summary goes with --student" in capsys.readouterr().err


BASE_ARGS = ["--data", "d.pt", "--teachers", "a=a.pth", "b=b/model.pt", "--out-json", "j", "--figure-stem", "s"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--teacher-arch", "c=resnet34", "--crop", "24", "--resize", "32"], "--teacher-arch: c not among the --teachers"),
    (["--teacher-arch", "a=resnet34", "--crop", "24"], "--teacher-arch needs --crop and --resize"),
    (["--teacher-arch", "resnet34"], "--teacher-arch: expected NAME=ARCH, got 'resnet34'"),
    (["--top-classes", "0"], "must be at least 1, got 0"),
    (["--replicate", "seed=1"], "--replicate: expected world=N or teacher_seed=N, got 'seed=1'"),
])
def test_bad_bounds_and_teacher_files_are_refused(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*BASE_ARGS, *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_command_passes_bounds_and_teacher_files_on(monkeypatch):
    calls = []
    monkeypatch.setattr(diagnose_module, "diagnose", lambda *args: calls.append(args) or {})
    monkeypatch.setattr(diagnose_module, "save_json", lambda result, path: None)
    main([*BASE_ARGS, "--teacher-arch", "a=resnet34", "--crop", "24", "--resize", "32",
          "--top-classes", "100", "--max-examples", "20000", "--replicate", "teacher_seed=2"])
    [(data, teachers, students, _, _, student, top, most, files, replicate)] = calls
    assert (data, teachers, students, student) == ("d.pt", {"a": "a.pth", "b": "b/model.pt"}, [], None)
    assert (top, most, replicate) == (100, 20000, ("teacher_seed", 2))
    assert files == {"a": {"arch": "resnet34", "crop": 24, "resize": 32}}


def test_a_teacher_file_is_read_with_its_architecture_and_input_size(data_path, monkeypatch):
    calls = []

    def file_teacher(source, dataset, arch, crop, resize):
        calls.append((source, dataset.num_classes, arch, crop, resize))
        return Network(None, {}, torch.ones(6, 4), lambda split: torch.zeros(len(split), 6))

    monkeypatch.setattr(diagnose_module, "file_teacher_network", file_teacher)
    _, identity = load_teacher("r.pth", load_dataset(data_path), {"arch": "resnet8", "crop": 24, "resize": 32})
    assert calls == [("r.pth", 6, "resnet8", 24, 32)]
    parameters = sum(p.numel() for p in build_image_model("resnet8", 6).parameters())
    assert identity == {"method": FILE_TEACHER, "architecture": "resnet8", "parameters": parameters,
                        "epochs": None}


@pytest.mark.parametrize(("family", "name", "build"), [("imagenet", "resnet8", build_image_model),  # fast
                                                       ("lm", "tiny", build_lm)])
def test_checkpoint_identity_of_imagenet_and_language_model_runs(family, name, build, tmp_path):
    torch.save({"arch": {"family": family, "name": name, "num_classes": 12},
                "fingerprint": {"config": {"epochs": 7}}}, tmp_path / "model.pt")
    parameters = sum(p.numel() for p in build(name, 12).parameters())
    assert checkpoint_identity(tmp_path / "model.pt") == (name, parameters, 7)


def test_a_missing_or_foreign_teacher_is_refused(data_path, tmp_path, image_teacher):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        main(["--data", str(data_path), "--teachers", f"a={tmp_path / 'absent.pt'}",
              "--out-json", str(tmp_path / "j.json"), "--figure-stem", str(tmp_path / "s")])
    with pytest.raises(ValueError, match="trained for 10 classes but the dataset has 6"):
        main(["--data", str(data_path), "--teachers", f"a={image_teacher[1]['plain']}",
              "--out-json", str(tmp_path / "j.json"), "--figure-stem", str(tmp_path / "s")])


# ------------------------------------------------------------------ the command


def assert_figures(stem: Path) -> None:
    for kind in ("confidence", "tau"):
        for suffix in ("png", "pdf"):
            assert (stem.parent / f"{stem.name}_{kind}.{suffix}").stat().st_size > 5000


def test_command_on_a_synthetic_teacher_and_the_oracle(data_path, teacher_run, tmp_path):
    summary = pd.DataFrame([student_rows(track="synthetic", teacher=t, student=np.nan, gamma=g, seed=s,
                                         method=m, best_test_acc=0.6 + s / 100)
                            for t in ("mlp", "oracle") for g in (TINY_GAMMA, 0.0) for s in (0, 1)
                            for m in ("ce", "kd")])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    stem = tmp_path / "figures" / "gamma0.5"
    main(["--data", str(data_path), "--teachers", f"mlp={teacher_run / 'model.pt'}", "oracle=oracle",
          "--summary", str(tmp_path / "summary.csv"), "--gamma", str(TINY_GAMMA), "--taus", "1", "8",
          "--top-classes", "4", "--max-examples", "200",
          "--out-json", str(tmp_path / "d.json"), "--figure-stem", str(stem)])
    result = read_json(tmp_path / "d.json")
    assert result["meta"] == {"split": "valid", "examples": 200, "taus": [1.0, 8.0], "num_classes": 6,
                              "classes": 4, "gamma": TINY_GAMMA, "student": None, "condition": TINY_GAMMA,
                              "replicate": 0, "unit": "seed"}
    mlp, oracle = result["teachers"]
    assert (mlp["name"], mlp["method"], mlp["architecture"]) == ("mlp", "ce", "mlp-16")
    assert mlp["parameters"] == 10 * 16 + 16 + 16 * 6 + 6
    dataset = load_dataset(data_path)
    valid = dataset["valid"]
    first = teacher_network(teacher_run / "model.pt", dataset).logits(valid)[:200]
    assert mlp["accuracy"] == pytest.approx(float(accuracy(first, valid.posterior[:200])), abs=1e-6)
    posterior_p_t = valid.posterior[:200].gather(1, valid.labels[:200, None]).squeeze(1).double()
    assert (oracle["method"], oracle["architecture"], oracle["parameters"]) == ("oracle", None, None)
    assert oracle["p_t_mean"] == pytest.approx(float(posterior_p_t.mean()), abs=1e-6)
    assert oracle["p_t_ge_0.9"] == pytest.approx(float((posterior_p_t >= 0.9).double().mean()), abs=0.01)
    assert result["size_pairs"] == []  # one plain teacher
    assert len(result["students"]) == 2 * 2 * 2  # two teachers' ce and kd at γ = 0.5, two seeds
    assert {row["teacher"] for row in result["students"]} == {"mlp", "oracle"}
    assert_figures(stem)
    assert claim_c12([result], INFERENCE).verdict == NOT_RUN and claim_c9([result], INFERENCE).verdict == NOT_RUN


@pytest.fixture(scope="module")
def image_teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A tiny 10-class image dataset and three one-epoch teachers: resnet8 plain and
    label-smoothed, and a larger resnet14 (CPU, float32)."""
    root = tmp_path_factory.mktemp("image-teachers")
    save_dataset(make_dataset(), root / "data.pt")
    runs = {"plain": ("resnet8", {"ce": {}}), "smooth": ("resnet8", {"ls": {"lam": [0.3], "tau": [1]}}),
            "large": ("resnet14", {"ce": {}})}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        for name, (arch, grid) in runs.items():
            run_image(root / "data.pt", grid, image_config(arch=arch, epochs=1), root / name,
                      tags={"role": "teacher"})
    return root / "data.pt", {name: root / name / "model.pt" for name in runs}


def test_command_on_image_teachers_feeds_c9_and_c12(image_teacher, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data, models = image_teacher
    accuracy = {"plain": 0.72, "smooth": 0.70, "large": 0.73, "none": 0.65}
    summary = pd.DataFrame([student_rows(teacher=t, seed=s, method="ce" if t == "none" else "kd",
                                         best_test_acc=acc + s / 100 + (s % 2) / 1000)
                            for t, acc in accuracy.items() for s in range(3)])
    summary.to_csv(tmp_path / "summary.csv", index=False)
    stem = tmp_path / "resnet20"
    main(["--data", str(data), "--teachers", *(f"{name}={path}" for name, path in models.items()),
          "--summary", str(tmp_path / "summary.csv"), "--student", "resnet20",
          "--out-json", str(tmp_path / "d.json"), "--figure-stem", str(stem)])
    result = json.loads((tmp_path / "d.json").read_text())
    assert result["meta"]["condition"] == "teachers→resnet20" and result["meta"]["student"] == "resnet20"
    rows = {row["name"]: row for row in result["teachers"]}
    assert [rows[n]["method"] for n in models] == ["ce", "ls", "ce"]
    for name, arch in (("plain", "resnet8"), ("large", "resnet14")):
        assert rows[name]["architecture"] == arch
        assert rows[name]["parameters"] == sum(p.numel() for p in build_image_model(arch, 10).parameters())
    for row in rows.values():
        assert 0 <= row["p_t_q10"] <= row["p_t_median"] <= row["p_t_q90"] <= 1
        assert 0 < row["entropy"] <= math.log(10) + 1e-9
    [pair] = result["size_pairs"]
    assert (pair["smaller"], pair["larger"], pair["n"]) == ("plain", "large", 60)
    assert pair["mean"] == pytest.approx(rows["large"]["p_t_mean"] - rows["plain"]["p_t_mean"])
    assert len(result["students"]) == 12
    assert_figures(stem)
    c9 = claim_c9([result], INFERENCE)
    assert c9.verdict == HOLDS
    assert "kd students of plain − of smooth (resnet8) = +2.00 pts" in c9.evidence[0]
    assert claim_c12([result], INFERENCE).verdict != NOT_RUN
