"""A document as a list of blocks (heading, paragraph, bullets, table, figure, code), rendered
twice: as Markdown (paper/REPORT.md) and as the LaTeX body that paper/main.tex inputs.

Text uses Markdown's inline `code` and **bold**. Paths (figures, tables) are relative to the
folder both documents live in (paper/).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from partialkd.reporting.latex_text import inline
from partialkd.reporting.tables import Table, to_markdown


@dataclass(frozen=True)
class Heading:
    level: int  # 2: section, 3: subsection, 4: subsubsection (level 1 is the document's title)
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullet:
    text: str
    sub: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bullets:
    items: tuple[Bullet, ...]
    empty: str = "none"  # what an empty list reads as


@dataclass(frozen=True)
class TableBlock:
    table: Table
    folder: str  # the tables folder, relative to the documents' folder


@dataclass(frozen=True)
class Figure:
    png: str  # for Markdown
    graphic: str  # for LaTeX: the PDF beside the PNG, or the PNG itself
    caption: str
    alt: str = ""


@dataclass(frozen=True)
class Code:
    text: str
    language: str


Block = Heading | Paragraph | Bullets | TableBlock | Figure | Code


def render_markdown(title: str, blocks: Sequence[Block]) -> str:
    return "\n\n".join([f"# {title}", *(_markdown(block) for block in blocks)]) + "\n"


def _markdown(block: Block) -> str:
    match block:
        case Heading(level, text):
            return f"{'#' * level} {text}"
        case Paragraph(text):
            return text
        case Bullets(items, empty):
            return "\n".join(line for item in items for line in
                             [f"- {item.text}", *(f"  - {sub}" for sub in item.sub)]) or f"- {empty}"
        case TableBlock(table, _):
            return f"*Table: {table.caption}.*\n\n{to_markdown(table.frame).rstrip()}"
        case Figure(png, _, caption, alt):
            return f"![{alt or caption}]({png})\n\n*Figure: {caption}.*"
        case Code(text, language):
            return f"```{language}\n{text.rstrip()}\n```"
    raise TypeError(f"not a block: {block!r}")


SECTIONS = {2: "section", 3: "subsection", 4: "subsubsection"}


def render_latex(blocks: Sequence[Block]) -> str:
    """The body of paper/main.tex, which defines \\fitwidth (scale down to the line if wider)."""
    return "\n\n".join(_latex(block) for block in blocks) + "\n"


def _latex(block: Block) -> str:
    match block:
        case Heading(level, text):
            return rf"\{SECTIONS[level]}{{{inline(text)}}}"
        case Paragraph(text):
            return inline(text)
        case Bullets(items, empty):
            return _itemize([(inline(item.text), [inline(sub) for sub in item.sub]) for item in items]
                            or [(inline(empty), [])])
        case TableBlock(table, folder):
            body = rf"\input{{{folder}/{table.stem}.tex}}"
            body = body if table.wrap else rf"\fitwidth{{{body}}}"
            return "\n".join([r"\begin{table}[H]", r"\centering", rf"\caption{{{inline(table.caption)}.}}",
                              body, r"\end{table}"])
        case Figure(_, graphic, caption, _):
            return "\n".join([r"\begin{figure}[H]", r"\centering",
                              rf"\fitwidth{{\includegraphics{{{graphic}}}}}",
                              rf"\caption{{{inline(caption)}.}}", r"\end{figure}"])
        case Code(text, _):
            return "\n".join([r"{\scriptsize", r"\begin{verbatim}", text.rstrip(), r"\end{verbatim}", "}"])
    raise TypeError(f"not a block: {block!r}")


def _itemize(items: list[tuple[str, list[str]]]) -> str:
    lines = [r"\begin{itemize}"]
    for text, sub in items:
        lines.append(rf"\item{{}} {text}")  # {}: a text starting with [ is no optional argument
        if sub:
            lines += [r"\begin{itemize}", *(rf"\item{{}} {line}" for line in sub), r"\end{itemize}"]
    return "\n".join([*lines, r"\end{itemize}"])
