"""Shared fixtures: a tiny synthetic world on disk, a tiny training configuration and teacher.

Everything is small enough that a whole training run takes a fraction of a second on one CPU
core; the expensive pieces (data file, trained teacher, a full student stack) are built once
per test session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from partialkd.data.synthetic import synthetic_dataset
from partialkd.train import run
from partialkd.training.stacked import TrainConfig
from helpers.runs import TINY_WORLD, TINY_GAMMA, FULL_GRID, tiny_config, student_config, saved_dataset


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """One intra-op thread, as `python -m partialkd.train` uses by default (--threads 1): for
    these tiny matrices it is faster, and it does not stall when other jobs share the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def cpu_only():
    """For a module's `pytest.mark.usefixtures("cpu_only")`: keep the trainers on the CPU even
    where a GPU is present, for exact float32 results (a GPU trains under bf16 autocast, not
    bit-reproducibly)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        yield


@pytest.fixture(scope="session")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic dataset (K = 6 in 2 groups, d = 10) with the Bayes posterior."""
    return saved_dataset(synthetic_dataset(gamma=TINY_GAMMA, **TINY_WORLD), tmp_path_factory, "data")


@pytest.fixture
def config() -> TrainConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def teacher_run(data_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of a trained single-variant teacher (grid {"ce": {}})."""
    out = tmp_path_factory.mktemp("teacher")
    run(data_path, {"ce": {}}, tiny_config(hidden=(16,), epochs=5), out,
        tags={"role": "teacher"})
    return out


@pytest.fixture(scope="session")
def teacher_path(teacher_run: Path) -> Path:
    return teacher_run / "model.pt"


@pytest.fixture(scope="session")
def student_run(data_path: Path, teacher_path: Path,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A student stack of every method (FULL_GRID) distilled from the trained teacher."""
    out = tmp_path_factory.mktemp("students")
    metrics = run(data_path, FULL_GRID, student_config(), out, teacher=teacher_path,
                  tags={"role": "student", "teacher": "mlp"})
    return out, metrics
