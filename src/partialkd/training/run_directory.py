"""The run directory every trainer writes (`python -m partialkd.train`, `train_images`, `train_lm`,
`train_imagenet`), which `partialkd.training.read_runs` reads back: `model.pt` (final and best-on-validation
weights of every variant) and `metrics.json` (per variant its metrics at the best-on-validation
and the last epoch, and, from the trainers that record the test accuracy after every epoch (the
image tracks'), `peak`: {"epoch": E, "test": {"acc": a}}, the best test accuracy over the epochs,
never used for selection; the validation-selected variant of each method; the configuration and
provenance). Also what the trainers share before they train: the teacher requirement, the
data-order seed and file hashes.
"""
from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from partialkd.common.io import save_json
from partialkd.common.provenance import provenance
from partialkd.common.torch_files import save_torch
from partialkd.core.grid import Variant
from partialkd.core.methods import SIMILARITY_TARGETS
from partialkd.core.targets import distils, similarity_entropy
from partialkd.data.prepared import Dataset
from partialkd.training.engine import FitResult, peak_test, resume_path

# The purpose of the seed derived from a run's seed for its data order (each trainer's).
ORDER_SEED = 102


def save_run(out_dir: Path, arch: dict[str, Any], variants: list[Variant], fingerprint: dict[str, Any],
             result: FitResult, dataset: Dataset, class_weights: Tensor | None,
             tags: dict[str, str] | None) -> dict[str, Any]:
    """Write a finished run's model.pt and metrics.json, drop its resume state; the metrics.
    `class_weights`: the teacher's class vectors (None without a teacher), for `sim_entropy`."""
    save_torch({"arch": arch, "variants": fingerprint["variants"], "final_state": result.final_state,
                "best_state": result.best_state, "fingerprint": fingerprint}, out_dir / "model.pt")
    metrics = {"tags": tags or {}, **_metrics(variants, result, fingerprint, dataset, class_weights)}
    save_json(metrics, out_dir / "metrics.json")
    resume_path(out_dir, fingerprint).unlink(missing_ok=True)
    return metrics


def require_teacher(variants: list[Variant], teacher: str | Path | None) -> None:
    """Refuse a grid with methods that distil (teacher logits or class vectors) but no teacher."""
    needing = sorted({v.method for v in variants if distils(v.method)})
    if needing and teacher is None:
        raise ValueError(f"methods {', '.join(needing)} distil from a teacher: pass --teacher")


def _metrics(variants: list[Variant], result: FitResult, fingerprint: dict[str, Any],
             dataset: Dataset, class_weights: Tensor | None) -> dict[str, Any]:
    rows = [{**variant.to_dict(), "label": variant.label,
             "sim_entropy": sim_entropy(variant, class_weights),
             "last": {"epoch": fingerprint["config"]["epochs"], **_pick(result.last, i)},
             "best": {"epoch": int(result.best_epoch[i]), **_pick(result.best, i)}}
            for i, variant in enumerate(variants)]
    for i, row in enumerate(rows):
        if (peak := peak_test(result.history, i)) is not None:  # the loops that record it
            row["peak"] = peak
    return {"variants": rows, "selected": _select_per_method(rows),
            "config": fingerprint, "dataset": dataset.meta,
            "provenance": {**run_provenance(), "seconds_per_epoch": result.seconds_per_epoch}}


def run_provenance() -> dict[str, Any]:
    """`provenance.provenance()` and the device the run trained on."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    return {**provenance(), "device": device, "torch_threads": torch.get_num_threads()}


def sim_entropy(variant: Variant, class_weights: Tensor | None) -> float | None:
    """How close to uniform the similarity rows of a kd_sim or kd_pt_sim variant are
    (`targets.similarity_entropy`, 1 = uniform); None for the other methods."""
    if variant.method not in SIMILARITY_TARGETS:
        return None
    assert class_weights is not None, "guaranteed by require_teacher"
    return similarity_entropy(class_weights, dict(variant.params)["alpha"],
                              exclude_true=SIMILARITY_TARGETS[variant.method])


def _pick(metrics: dict[str, dict[str, Tensor]], index: int) -> dict[str, dict[str, float]]:
    return {split: {name: float(values[index]) for name, values in by_name.items()}
            for split, by_name in metrics.items()}


def _select_per_method(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Index of each method's variant with the best best-epoch validation accuracy."""
    selected: dict[str, int] = {}
    for index, row in enumerate(rows):
        current = selected.get(row["method"])
        if current is None or row["best"]["valid"]["acc"] > rows[current]["best"]["valid"]["acc"]:
            selected[row["method"]] = index
    return selected


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
