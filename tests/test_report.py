"""Report pieces computed from a hand-made summary table."""
from __future__ import annotations

import pandas as pd

from partialkd.report import accuracy_table, edge_selections, markdown_table


def summary(rows: list[dict]) -> pd.DataFrame:
    base = {"role": "student", "teacher": "mlp", "bayes_test_acc": 0.7}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_edge_selections_flag_majority_choices_at_a_grid_edge_but_not_hard_limits() -> None:
    rows = [{"gamma": 0.0, "seed": s, "method": "kd", "lam": 1.0, "tau": 4.0 if s < 2 else 2.0}
            for s in range(3)]
    grids = {"kd": {"lam": [0.5, 1.0], "tau": [1, 2, 4]}, "ce": {}}
    notes = edge_selections(summary(rows), "mlp", grids)
    assert notes == ["kd tau = 4 (the grid's highest value) at γ = 0: 2 of 3 seeds"]


def test_accuracy_table_reports_mean_and_sd_in_percent() -> None:
    rows = [{"gamma": 0.5, "seed": s, "method": m, "best_test_acc": acc}
            for s, (ce, kd) in enumerate([(0.50, 0.60), (0.52, 0.64)])
            for m, acc in (("ce", ce), ("kd", kd))]
    rows.append({"gamma": 0.5, "seed": 0, "method": "ce", "role": "teacher", "best_test_acc": 0.66})
    table = accuracy_table(summary(rows), "mlp")
    assert table.to_dict("records") == [{"γ": "0.5", "Bayes": "70.00", "teacher": "66.00",
                                         "ce": "51.00 ± 1.41", "kd": "62.00 ± 2.83"}]
    assert markdown_table(table).splitlines()[1] == "|---|---|---|---|---|"
