"""Collect runs' metrics.json into one table: `python -m partialkd.aggregate RUN... --out summary.csv`
(the table: `partialkd.reporting.summary`), with `--metrics-out` the mean test scores DVC compares and
with `--selected-out` the selected students' rows alone."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from partialkd.common.io import save_json
from partialkd.reporting.summary import SCORES, headline_metrics, selected_students, summarise, write_csv


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.aggregate", description=__doc__)
    parser.add_argument("metrics", nargs="+", help="metrics.json of each run")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--metrics-out", help="JSON of mean student accuracies, for DVC metrics")
    parser.add_argument("--selected-out", help="CSV of the selected student rows alone, for DVC plots")
    parser.add_argument("--select-by", choices=sorted(SCORES), default="acc",
                        help="the validation score that selects each method's grid point")
    args = parser.parse_args(argv)
    score = SCORES[args.select_by]
    table = summarise(args.metrics, score)
    write_csv(table, args.out)
    if args.selected_out:
        write_csv(selected_students(table), args.selected_out)
    if args.metrics_out:
        save_json(headline_metrics(table, score), args.metrics_out)


if __name__ == "__main__":
    main()
