"""The PDF build of paper/main.tex with the first LaTeX engine found on PATH (the text it
typesets is escaped by `partialkd.reporting.latex_text`).

`python -m partialkd.latex paper/main.tex --out paper/main.pdf --build-dir paper/generated/build`
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Each engine's commands that turn `tex` (a file name in the current folder) into
# `<build>/<stem>.pdf`. pdflatex runs twice to settle references; tectonic comes last because
# it downloads its packages on first use.
ENGINES: dict[str, Callable[[str, str], list[list[str]]]] = {
    "latexmk": lambda tex, build: [["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
                                    f"-outdir={build}", tex]],
    "pdflatex": lambda tex, build: 2 * [["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                                         f"-output-directory={build}", tex]],
    "tectonic": lambda tex, build: [["tectonic", "--outdir", build, tex]],
}
INSTALL_HINT = ("install one to build paper/main.pdf, e.g. `apt-get install latexmk "
                "texlive-latex-recommended` (Debian, Ubuntu) or tectonic")


def find_engine(path: str | None = None) -> str | None:
    """The first of ENGINES on `path` (default: $PATH), or None."""
    return next((name for name in ENGINES if shutil.which(name, path=path)), None)


def build_pdf(tex: Path, out: Path, build: Path, engine: str) -> None:
    """Build `tex` with `engine` in `build` (its logs stay there), then move the PDF to `out`."""
    build = build.resolve()
    build.mkdir(parents=True, exist_ok=True)
    for command in ENGINES[engine](tex.name, str(build)):
        if subprocess.run(command, cwd=tex.parent, check=False).returncode != 0:
            raise SystemExit(f"{engine} failed on {tex}; its log: {build / tex.with_suffix('.log').name}")
    os.replace(build / tex.with_suffix(".pdf").name, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partialkd.latex", description=__doc__)
    parser.add_argument("tex", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--build-dir", required=True, type=Path, help="the engine's working files")
    args = parser.parse_args(argv)
    engine = find_engine()
    if engine is None:
        parser.error(f"no LaTeX engine on PATH ({', '.join(ENGINES)}); {INSTALL_HINT}")
    print(f"building {args.tex} with {engine}", file=sys.stderr)
    build_pdf(args.tex, args.out, args.build_dir, engine)


if __name__ == "__main__":
    main()
