"""`python -m partialkd.analyse` on real tiny runs, and the claims C10 and C11 it feeds."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.runs import FULL_GRID, student_config
from helpers.rescaling_views import planted_views

from partialkd.analyse import GEOMETRY_METHODS, RESCALING_METHODS, analysed_students, main, rescaling_rows
from partialkd.claims import FAILS, HOLDS, NOT_RUN, Inference, claim_c10, claim_c11
from partialkd.core.grid import Variant
from partialkd.data.prepared import Split
from partialkd.reporting.summary import summarise, write_csv
from partialkd.train import run
from partialkd.training.read_runs import Network


@pytest.fixture(scope="module")
def summary_path(data_path: Path, teacher_path: Path, student_run,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The summary of two seeds' student stacks (every method) of the trained teacher."""
    second = tmp_path_factory.mktemp("seed1")
    run(data_path, FULL_GRID, student_config(seed=1), second, teacher=teacher_path,
        tags={"role": "student", "teacher": "mlp"})
    path = tmp_path_factory.mktemp("summary") / "summary.csv"
    write_csv(summarise([student_run[0] / "metrics.json", second / "metrics.json"]), path)
    return path


@pytest.fixture(scope="module")
def analysis(data_path: Path, teacher_path: Path, summary_path: Path,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("analysis")
    main(["--data", str(data_path), "--teacher", str(teacher_path), "--teacher-name", "mlp",
          "--summary", str(summary_path), "--gamma", "0.5", "--out-json", str(out / "analysis.json"),
          "--figure-stem", str(out / "gamma0.5_mlp")])
    return json.loads((out / "analysis.json").read_text()), out


def test_every_seed_and_method_is_analysed_with_formula_and_autograd_agreeing(analysis) -> None:
    """Each method's w_t at its own student's q ("self"), at the same seed's ce student's ("ce")
    and at its student at initialisation's ("init"), the formula agreeing with autograd in all."""
    result, _ = analysis
    rescaling = {(row["seed"], row["method"], row["q_from"]): row for row in result["rescaling"]}
    assert set(rescaling) == {(seed, method, q_from) for seed in (0, 1)
                              for method in RESCALING_METHODS for q_from in ("self", "ce", "init")}
    assert [row["q_from"] for row in result["rescaling"]][:3] == ["self", "ce", "init"]
    for row in rescaling.values():
        assert set(row) == {"seed", "method", "q_from", "variant", "spearman", "max_gap",
                            "dropped", "examples"}
        assert row["max_gap"] < 1e-6
        assert row["examples"] + row["dropped"] == 300  # the validation split
        assert -1 <= row["spearman"] <= 1
    assert all(math.isfinite(rescaling[seed, "kd", "ce"]["spearman"]) for seed in (0, 1))
    # the student at initialisation is a third q, one that has not learnt the teacher's confidence
    assert all(rescaling[seed, "kd", "init"]["spearman"] > 0.5 for seed in (0, 1))
    assert any(rescaling[seed, "kd", "init"]["spearman"] != rescaling[seed, "kd", "ce"]["spearman"]
               for seed in (0, 1))
    geometry = {(row["seed"], row["method"]) for row in result["geometry"]}
    assert geometry == {(seed, method) for seed in (0, 1) for method in GEOMETRY_METHODS}
    assert all(-1 <= row["correlation"] <= 1 for row in result["geometry"])
    assert result["meta"]["condition"] == 0.5 and result["meta"]["split"] == "valid"


def planted_network(logits: torch.Tensor, variant: Variant | None) -> Network:
    return Network(variant, {"tau_squared": True}, torch.eye(logits.shape[1]), lambda split: logits)


def true_class_q(logits: torch.Tensor, labels: torch.Tensor, frame: pd.DataFrame) -> np.ndarray:
    """q_t of `logits` at the examples `frame` kept."""
    return logits.softmax(1)[torch.arange(len(labels)), labels].numpy()[frame.index]


def test_reference_rows_use_the_ce_and_initial_students_q_and_own_rows_the_methods() -> None:
    """Planted (issue 12): kd's own student 1.3·v + noise gives a negative Spearman, the same
    w_t at a ce student independent of the teacher a strongly positive one, and at a student at
    initialisation (small logits, independent of the teacher) too."""
    teacher, labels, reference, own = planted_views()
    kd = Variant("kd", 0.9, 4.0)
    students = {"ce": planted_network(reference, Variant("ce", 0.0, 1.0)),
                "kd": planted_network(own, kd), "kd_pt": planted_network(own, Variant("kd_pt", 0.9, 4.0))}
    initial = planted_network(0.1 * reference.flip(0), Variant("ce", 0.0, 1.0))
    split = Split(torch.zeros(len(labels), 1), labels)
    rows, frames = rescaling_rows(3, students, initial, planted_network(teacher, None), teacher, split)
    by_view = {(row["method"], row["q_from"]): row for row in rows}
    assert set(by_view) == {(method, q_from) for method in ("kd", "kd_pt") for q_from in ("self", "ce", "init")}
    assert by_view["kd", "ce"]["spearman"] > 0.6 and by_view["kd", "self"]["spearman"] < -0.4
    assert by_view["kd", "init"]["spearman"] > 0.9
    assert all(row["seed"] == 3 and row["variant"] == students[row["method"]].variant.label
               and row["max_gap"] < 1e-8 for row in rows)
    assert (frames["ce"]["kd"]["q_t"] == true_class_q(reference, labels, frames["ce"]["kd"])).all()
    assert (frames["init"]["kd"]["q_t"] == true_class_q(0.1 * reference.flip(0), labels,
                                                          frames["init"]["kd"])).all()
    without_ce = {"kd": students["kd"]}
    rows, frames = rescaling_rows(3, without_ce, initial, planted_network(teacher, None), teacher, split)
    assert [row["q_from"] for row in rows] == ["self", "init"] and set(frames) == {"self", "init"}


def test_selected_variants_are_analysed(analysis, student_run) -> None:
    result, _ = analysis
    metrics = student_run[1]
    for row in result["rescaling"] + result["geometry"]:
        if row["seed"] == 0:
            assert row["variant"] == metrics["variants"][metrics["selected"][row["method"]]]["label"]


def test_figures_are_written_with_dotted_stems(analysis) -> None:
    _, out = analysis
    for kind in ("rescaling", "geometry", "geometry_bars"):
        for suffix in ("png", "pdf"):
            assert (out / f"gamma0.5_mlp_{kind}.{suffix}").stat().st_size > 1000


def test_students_of_another_condition_are_refused_by_name(summary_path: Path) -> None:
    summary = pd.read_csv(summary_path)
    assert len(analysed_students(summary, "mlp", gamma=0.5)) == 2 * len(set(RESCALING_METHODS + GEOMETRY_METHODS))
    with pytest.raises(ValueError, match="no selected students of teacher 'oracle'"):
        analysed_students(summary, "oracle")
    with pytest.raises(ValueError, match="γ = 0.9"):
        analysed_students(summary, "mlp", gamma=0.9)


def planted(gamma: float, spearman: list[float], correlations: dict[str, list[float]],
            own: list[float] | None = None) -> dict:
    """An analysis JSON: kd's Spearman at the ce student's q per seed (C10's), and at kd's own
    student's q (`own`, context only; default: the opposite sign)."""
    own = [-v for v in spearman] if own is None else own
    return {"meta": {"condition": gamma},
            "rescaling": [{"seed": s, "method": "kd", "q_from": q_from, "spearman": v}
                          for q_from, values in (("ce", spearman), ("self", own))
                          for s, v in enumerate(values)],
            "geometry": [{"seed": s, "method": m, "correlation": v}
                         for m, values in correlations.items() for s, v in enumerate(values)]}


INFERENCE = Inference(0.95, "bonferroni", 0.5)


def test_c10_and_c11_verdicts_from_planted_analyses() -> None:
    rising = planted(0.0, [0.6, 0.7, 0.65], {"kd": [0.8, 0.7, 0.75], "ce": [0.2, 0.1, 0.15],
                                             "ls": [0.1, 0.05, 0.0]})
    assert claim_c10([rising], INFERENCE).verdict == HOLDS  # the own-student rows fall: unused
    assert claim_c11([rising], INFERENCE).verdict == HOLDS
    falling = planted(0.9, [-0.5, -0.6, -0.55], {"kd": [0.1, 0.0, 0.05], "ce": [0.5, 0.4, 0.45],
                                                 "ls": [0.5, 0.5, 0.4]})
    assert claim_c10([rising, falling], INFERENCE).verdict == FAILS
    assert claim_c11([rising, falling], INFERENCE).verdict == FAILS
    evidence = claim_c10([falling], INFERENCE).evidence
    assert evidence[0].startswith("γ = 0.9: Spearman(w_t of kd at the ce student's q, p_t) = -0.550")
    assert evidence[1] == "γ = 0.9: context, w_t at the kd student's own q: Spearman mean +0.550 over 3 students"
    with_init = {**falling, "rescaling": falling["rescaling"] + [
        {"seed": 0, "method": "kd", "q_from": "init", "spearman": 0.9}]}
    assert claim_c10([with_init], INFERENCE).evidence[1:] == [
        "γ = 0.9: context, w_t at the q of the student at initialisation: Spearman mean +0.900 over 1 student",
        evidence[1]]
    own_only = {**rising, "rescaling": [r for r in rising["rescaling"] if r["q_from"] == "self"]}
    assert claim_c10([own_only], INFERENCE).verdict == NOT_RUN  # an analysis without the reference
    flat = planted(0.0, [math.nan, math.nan], {"kd": [0.5, 0.5]})
    assert claim_c10([flat], INFERENCE).verdict == NOT_RUN
    assert claim_c11([flat], INFERENCE).verdict == NOT_RUN
