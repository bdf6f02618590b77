"""Collect runs' metrics.json into one table: `python -m partialkd.aggregate RUN... --out summary.csv`.

One row per method of each run: the validation-selected variant's hyperparameters and its
metrics at the best-on-validation epoch (`best_*`) and at the last epoch (`last_*`); accuracies
are fractions, NLL in nats.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from partialkd.io import atomic_write, save_json

HYPERPARAMETERS = ("lam", "tau", "alpha", "k", "renormalize")


def summarise(metrics_paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = [row for path in metrics_paths for row in _rows(Path(path))]
    return pd.DataFrame(rows)


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read run metrics {path} ({error}); re-run that training job") from error
    run = {**metrics["tags"], "track": metrics["dataset"].get("track"),
           "gamma": metrics["dataset"].get("gamma"),
           "bayes_test_acc": metrics["dataset"].get("bayes_test_accuracy"),
           "seed": metrics["config"]["config"]["seed"],
           "epochs": metrics["config"]["config"]["epochs"],
           "seconds_per_epoch": metrics["provenance"]["seconds_per_epoch"],
           "device": metrics["provenance"]["device"], "git_commit": metrics["provenance"]["git_commit"],
           "run": str(path.parent)}
    return [{**run, **_variant_row(metrics["variants"][index])}
            for index in metrics["selected"].values()]


def _variant_row(variant: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": variant["method"], "variant": variant["label"]}
    row.update({name: variant.get(name) for name in HYPERPARAMETERS})
    row["best_epoch"] = variant["best"]["epoch"]
    for when in ("best", "last"):
        for split in ("valid", "test"):
            for name, value in variant[when][split].items():
                row[f"{when}_{split}_{name}"] = value
    return row


def headline_metrics(table: pd.DataFrame) -> dict[str, Any]:
    """Mean test accuracy (%, best-on-validation checkpoint) per teacher, γ and student method:
    the numbers `dvc metrics diff` compares. Keys avoid '.', which DVC uses as a separator."""
    students = table[table["role"] == "student"]
    means = students.groupby(["teacher", "gamma", "method"])["best_test_acc"].mean() * 100
    metrics: dict[str, Any] = {}
    for (teacher, gamma, method), value in means.items():
        gamma_key = f"gamma_{gamma:g}".replace(".", "_")
        metrics.setdefault(teacher, {}).setdefault(gamma_key, {})[method] = round(float(value), 3)
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.aggregate", description=__doc__)
    parser.add_argument("metrics", nargs="+", help="metrics.json of each run")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--metrics-out", help="JSON of mean student accuracies, for DVC metrics")
    args = parser.parse_args(argv)
    table = summarise(args.metrics)
    atomic_write(args.out, lambda handle: handle.write(table.to_csv(index=False).encode()))
    if args.metrics_out:
        save_json(headline_metrics(table), args.metrics_out)


if __name__ == "__main__":
    main()
