"""Tiny synthetic runs and the checks that compare runs: shared by the unit tests and conftest's fixtures."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
import pytest
import torch
from partialkd.data.prepared import Dataset, save_dataset
from partialkd.training.engine import resume_files
from partialkd.training.stacked import TrainConfig


TINY_WORLD: dict[str, Any] = dict(
    num_classes=6,
    num_groups=2,
    dim=10,
    beta=12.0,
    link_a=(0.5, 1.0),
    link_b=(0.0, 1.0),
    world_seed=0,
    sizes={"train": 600, "valid": 300, "test": 300},
)


TINY_GAMMA = 0.5


# Every method with one or two grid points; the grid the student-stack fixture trains.
FULL_GRID: dict[str, dict[str, list]] = {
    "ce": {},
    "ls": {"lam": [0.1, 0.5], "tau": [1]},
    "kd": {"lam": [0.5], "tau": [1, 4]},
    "kd_pt": {"lam": [0.5], "tau": [1]},
    "kd_sim": {"lam": [0.5], "tau": [1], "alpha": [0.3]},
    "kd_pt_sim": {"lam": [0.5], "tau": [1], "alpha": [0.3]},
    "kd_topk": {"lam": [0.5], "tau": [1], "k": [2]},
}


def tiny_config(**overrides: Any) -> TrainConfig:
    """A configuration that trains the tiny world in well under a second."""
    values: dict[str, Any] = dict(hidden=(8,), epochs=4, batch_size=64, lr=0.01,
                                  weight_decay=0.0, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def student_config(**overrides: Any) -> TrainConfig:
    """The student stack's configuration: tiny_config on a seed-chosen 400-example subset."""
    return tiny_config(**{"train_size": 400, **overrides})


def saved_dataset(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory, folder: str) -> Path:
    """The path of `dataset` written as data.pt in a new temporary folder named after `folder`."""
    path = tmp_path_factory.mktemp(folder) / "data.pt"
    save_dataset(dataset, path)
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), f"tensor {name} differs"


def assert_scores_in_range(variant: dict[str, Any]) -> None:
    """A metrics.json variant's best and last scores on valid and test: accuracy, NLL and ECE, each
    in its range."""
    for when in ("best", "last"):
        for split in ("valid", "test"):
            values = variant[when][split]
            assert set(values) == {"acc", "nll", "ece"}
            assert 0 <= values["acc"] <= 1 and 0 <= values["ece"] <= 1 and values["nll"] > 0


def assert_same_run(a: Path, b: Path) -> None:
    """Two run directories hold identical results (metrics per variant, selection, weights)."""
    metrics_a, metrics_b = read_json(a / "metrics.json"), read_json(b / "metrics.json")
    assert metrics_a["variants"] == metrics_b["variants"]
    assert metrics_a["selected"] == metrics_b["selected"]
    model_a, model_b = load_checkpoint(a / "model.pt"), load_checkpoint(b / "model.pt")
    assert_same_tensors(model_a["final_state"], model_b["final_state"])
    assert_same_tensors(model_a["best_state"], model_b["best_state"])


def resume_file(out: Path) -> Path:
    """The one resume state in the run directory `out` (resume-<digest>.pt)."""
    (path,) = resume_files(out)
    return path


def kill_after_first_checkpoint(command: list[str], out: Path, **popen: Any) -> int:
    """Run `command`, SIGKILL it as soon as it has written its resume state in `out`, and return
    the epoch saved there (the run must not have finished)."""
    victim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    try:
        deadline = time.monotonic() + 120
        while not resume_files(out):
            assert victim.poll() is None, f"training ended before writing its resume state: {victim.communicate()}"
            assert time.monotonic() < deadline, "no resume state after 120 s"
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    return load_checkpoint(resume_file(out))["epoch"]


def interrupt_after(epoch_to_stop: int):
    """An on_epoch_end callback that interrupts the run after `epoch_to_stop`."""
    def callback(epoch: int) -> None:
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt

    return callback
