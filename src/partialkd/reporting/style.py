"""One figure style for the whole paper: methods always in the same order and colour-blind-safe colour."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import seaborn as sns  # noqa: E402

from partialkd.common.io import atomic_write  # noqa: E402

if TYPE_CHECKING:
    from partialkd.reporting.summary import Score

METHOD_ORDER = ("ce", "ls", "kd", "kd_pt", "kd_sim", "kd_pt_sim", "kd_topk")
METHOD_COLORS = dict(zip(METHOD_ORDER, sns.color_palette("colorblind", len(METHOD_ORDER))))
METHOD_MARKERS = dict(zip(METHOD_ORDER, ("o", "s", "D", "^", "v", "P", "X")))
COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
# How the figures' error bars (params.yaml `figures.error_bars`) are named in captions.
ERROR_BAR_CAPTIONS = {"sd": "mean ± sd", "se": "mean ± standard error",
                      "ci95": "mean with a 95% bootstrap confidence interval"}


class Mark(NamedTuple):
    """How a verdict is drawn: colour, marker and both in words (for captions)."""
    color: str
    marker: str
    words: str


_PALETTE = sns.color_palette("colorblind").as_hex()
# The claims' verdicts (partialkd.claims), told apart by colour and by marker.
VERDICT_MARKS = {"holds": Mark(_PALETTE[0], "o", "blue dot"), "fails": Mark(_PALETTE[3], "X", "vermillion cross"),
                 "inconclusive": Mark(_PALETTE[7], "D", "grey diamond")}
MARGIN_COLOR = _PALETTE[8]  # the equivalence margin's band, drawn pale


def apply_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9,
                  rc={"savefig.dpi": 200, "savefig.bbox": "tight", "pdf.fonttype": 42})


def ordered_methods(methods) -> list[str]:
    """Known methods in the canonical order, then any new ones alphabetically."""
    present = set(methods)
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def save_figure(figure: plt.Figure, stem: str | Path) -> None:
    """Write `stem`.png and `stem`.pdf atomically (the suffix is appended: a stem may hold dots)."""
    for suffix in (".png", ".pdf"):
        atomic_write(Path(f"{stem}{suffix}"),
                     lambda handle, fmt=suffix[1:]: figure.savefig(handle, format=fmt))
    plt.close(figure)


def score_label(score: Score) -> str:
    """The axis label of a score, saying which way is better where lower is."""
    return f"{score.label} (lower is better)" if score.lower_is_better else score.label
