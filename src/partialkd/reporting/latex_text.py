"""Text for LaTeX: the report's Markdown-flavoured text escaped for pdflatex, so that a table or a
paragraph reads the same in paper/REPORT.md and paper/main.pdf."""
from __future__ import annotations

import re

SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
           "<": r"$<$", ">": r"$>$", "|": r"$|$"}  # the last three: OT1 fonts have no such glyphs
# The non-ASCII symbols of our text, in forms every engine typesets without a Unicode font.
SYMBOLS = {"α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "δ": r"$\delta$", "λ": r"$\lambda$",
           "ρ": r"$\rho$", "σ": r"$\sigma$", "τ": r"$\tau$", "Δ": r"$\Delta$", "Σ": r"$\Sigma$", "±": r"$\pm$",
           "×": r"$\times$", "·": r"$\cdot$", "−": r"$-$", "→": r"$\rightarrow$", "≈": r"$\approx$",
           "≥": r"$\geq$", "≤": r"$\leq$", "≠": r"$\neq$", "–": "--", "—": "---", "…": r"\dots{}",
           "§": r"\S{}", "’": "'", "‘": "`", "“": "``", "”": "''"}
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def escape(text: str) -> str:
    """Plain text with LaTeX's special characters and our symbols replaced."""
    return "".join(SPECIAL.get(char) or SYMBOLS.get(char) or char for char in text)


def inline(text: str) -> str:
    """Text with Markdown's inline `code` and **bold** as LaTeX, everything else escaped."""
    parts, last = [], 0
    for match in INLINE.finditer(text):
        parts.append(escape(text[last:match.start()]))
        code, bold = match.groups()
        parts.append(_code(code) if code is not None else rf"\textbf{{{inline(bold)}}}")
        last = match.end()
    return "".join(parts) + escape(text[last:])


def _code(text: str) -> str:
    """Typewriter text that may break after a / (file names are long)."""
    breakable = escape(text).replace("/", r"/\allowbreak{}")
    return rf"\texttt{{{breakable}}}"
