"""`python -m partialkd.analyse` on real tiny runs, and the claims C10 and C11 it feeds."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import FULL_GRID, student_config

from partialkd.aggregate import summarise, write_csv
from partialkd.analyse import GEOMETRY_METHODS, RESCALING_METHODS, analysed_students, main
from partialkd.claims import FAILS, HOLDS, NOT_RUN, claim_c10, claim_c11
from partialkd.train import run


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
    result, _ = analysis
    rescaling = {(row["seed"], row["method"]): row for row in result["rescaling"]}
    assert set(rescaling) == {(seed, method) for seed in (0, 1) for method in RESCALING_METHODS}
    for row in rescaling.values():
        assert row["max_gap"] < 1e-6
        assert row["examples"] + row["dropped"] == 300  # the validation split
        assert -1 <= row["spearman"] <= 1
    geometry = {(row["seed"], row["method"]) for row in result["geometry"]}
    assert geometry == {(seed, method) for seed in (0, 1) for method in GEOMETRY_METHODS}
    assert all(-1 <= row["correlation"] <= 1 for row in result["geometry"])
    assert result["meta"]["condition"] == 0.5 and result["meta"]["split"] == "valid"


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


def planted(gamma: float, spearman: list[float], correlations: dict[str, list[float]]) -> dict:
    return {"meta": {"condition": gamma},
            "rescaling": [{"seed": s, "method": "kd", "spearman": v} for s, v in enumerate(spearman)],
            "geometry": [{"seed": s, "method": m, "correlation": v}
                         for m, values in correlations.items() for s, v in enumerate(values)]}


def test_c10_and_c11_verdicts_from_planted_analyses() -> None:
    rising = planted(0.0, [0.6, 0.7, 0.65], {"kd": [0.8, 0.7, 0.75], "ce": [0.2, 0.1, 0.15],
                                             "ls": [0.1, 0.05, 0.0]})
    assert claim_c10([rising], 2.0).verdict == HOLDS
    assert claim_c11([rising], 2.0).verdict == HOLDS
    falling = planted(0.9, [-0.5, -0.6, -0.55], {"kd": [0.1, 0.0, 0.05], "ce": [0.5, 0.4, 0.45],
                                                 "ls": [0.5, 0.5, 0.4]})
    assert claim_c10([rising, falling], 2.0).verdict == FAILS
    assert claim_c11([rising, falling], 2.0).verdict == FAILS
    assert "γ = 0.9: Spearman(w_t, p_t) of kd = -0.55" in claim_c10([falling], 2.0).evidence[0]
    flat = planted(0.0, [math.nan, math.nan], {"kd": [0.5, 0.5]})
    assert claim_c10([flat], 2.0).verdict == NOT_RUN
    assert claim_c11([flat], 2.0).verdict == NOT_RUN
