"""paper/: LaTeX escaping, the table renderers, the document written twice (Markdown and LaTeX
body) by the report's command line, figure captions, the caption files of Snakemake's HTML
report, and the choice and run of a LaTeX engine (with fake engines on a fake PATH)."""
from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from partialkd import report
from partialkd.claims import procedure_text
from partialkd.latex import build_pdf, find_engine
from partialkd.report import (ANALYSIS_CAPTIONS, FOREST_CAPTION, TOPK_CAPTION, condition_label, figure_kind,
                              topk_caption)
from partialkd.reporting.latex_text import escape, inline
from partialkd.reporting.summary import SCORES
from partialkd.reporting.tables import effect_range, to_latex, to_markdown
from helpers.report_rows import CIFAR, cifar_rows
from helpers.latex_check import latex_problems

REPO = Path(__file__).resolve().parents[2]


def test_latex_escapes_specials_and_symbols_and_converts_inline_markup() -> None:
    assert escape("kd_pt 50% & #1 {x} ~ ^ \\") == (r"kd\_pt 50\% \& \#1 \{x\} \textasciitilde{} "
                                                   r"\textasciicircum{} \textbackslash{}")
    assert escape("γ = 0.9, τ ≥ 4, λ ± 0.1, a → b, 10–90") == (
        r"$\gamma$ = 0.9, $\tau$ $\geq$ 4, $\lambda$ $\pm$ 0.1, a $\rightarrow$ b, 10--90")
    assert inline("the `kd_topk` student **holds** for p_t") == (
        r"the \texttt{kd\_topk} student \textbf{holds} for p\_t")
    assert latex_problems(inline("**C1** (kd > ls): `a_b` 5% γ"), Path()) == []
    assert inline("`results/summary.csv`") == r"\texttt{results/\allowbreak{}summary.csv}"


def test_latex_problems_catch_what_would_stop_pdflatex(tmp_path: Path) -> None:
    (tmp_path / "there.tex").write_text("")
    assert latex_problems(r"\input{there.tex} $a_b$ \_ \% {\texttt{x}}", tmp_path) == []
    problems = latex_problems(r"\input{gone.tex} {a_b 5% γ", tmp_path)
    assert problems[0] == "missing gone.tex" and "unbalanced {" in problems
    assert any("'_'" in p for p in problems) and any("'%'" in p for p in problems)
    assert "non-ASCII 'γ'" in problems


FRAME = pd.DataFrame({"γ": ["0", "0.9"], "kd_pt": ["61.21 ± 0.17", "27.20"],
                      "chosen": ["kd_pt(lam=0.9) ×2", "a|b"]})


def test_tables_render_as_markdown_and_booktabs_latex() -> None:
    assert to_markdown(FRAME).splitlines() == ["| γ | kd_pt | chosen |", "|---|---|---|",
                                               "| 0 | 61.21 ± 0.17 | kd_pt(lam=0.9) ×2 |",
                                               r"| 0.9 | 27.20 | a\|b |"]
    latex = to_latex(FRAME)
    assert latex.splitlines()[:4] == [r"\begin{tabular}{rrl}", r"\toprule",
                                      r"$\gamma$ & kd\_pt & chosen \\", r"\midrule"]
    assert r"0 & 61.21 $\pm$ 0.17 & kd\_pt(lam=0.9) $\times$2 \\" in latex
    assert latex.rstrip().endswith("\\bottomrule\n\\end{tabular}")
    wrapped = to_latex(FRAME, wrap="chosen")
    assert wrapped.startswith(r"\begin{tabularx}{\linewidth}{rr>{\raggedright\arraybackslash}X}")
    assert r"\end{tabularx}" in wrapped
    assert latex_problems(wrapped, Path(), tabular=True) == []
    with pytest.raises(ValueError, match="no column 'statement'"):
        to_latex(FRAME, wrap="statement")


def test_a_claims_effect_range_comes_from_its_evidence_intervals() -> None:
    evidence = ["γ = 0: kd − ls = +2.98 pts [+2.85, +3.11] (seed sd 0.18, n = 8) → kd > ls holds",
                "γ = 0.9: kd − ls = -0.45 pts [-0.78, -0.11] (seed sd 0.47, n = 8) → kd > ls fails"]
    assert effect_range(evidence) == "-0.45 to +2.98 pts"
    assert effect_range(["γ = 0: Spearman(w_t, p_t) of kd = +0.25 [+0.22, +0.27] (n = 8) → holds"]) == "+0.25"
    assert effect_range(["mean gain kd_sim − ls per γ (pts): γ = 0: -0.09", "needs kd and ls"]) == ""


@pytest.mark.parametrize("stem, expected", [
    ("gain", (None, "gain")),
    ("gamma0.45_mlp_geometry_bars", ("gamma0.45_mlp", "geometry_bars")),
    ("gamma0.45_mlp_geometry", ("gamma0.45_mlp", "geometry")),
    ("gamma0_confidence", ("gamma0", "confidence")),
    ("resnet56_ls_resnet20_rescaling", ("resnet56_ls_resnet20", "rescaling")),
    ("resnet20_tau", ("resnet20", "tau")),
])
def test_a_figures_kind_is_its_known_suffix(stem: str, expected: tuple) -> None:
    assert figure_kind(stem) == expected


@pytest.mark.parametrize("stem", ["gamma0_mlp_histogram", "geometry", "topk_extra"])
def test_a_figure_of_unknown_kind_is_refused(stem: str) -> None:
    with pytest.raises(ValueError, match="expected one of gain, topk or <condition>_<kind>"):
        figure_kind(stem)


PAIRS = {"cifar100": {"students": {"pairs": [{"teacher": "resnet56", "student": "resnet20"},
                                             {"teacher": "resnet56_ls", "student": "resnet20"}]}}}


@pytest.mark.parametrize("track, condition, label", [
    ("synthetic", "gamma0.45_mlp", "γ = 0.45, teacher `mlp`"),
    ("synthetic", "gamma0.45_oracle_mlp_32", "γ = 0.45, teacher `oracle`, student `mlp_32`"),
    ("synthetic", "gamma0", "γ = 0"),
    ("cifar100", "resnet56_ls_resnet20", "`resnet56_ls` → `resnet20`"),
    ("cifar100", "resnet20", "the teachers of `resnet20`"),
    ("cifar100", "wrn_16_2", "`wrn_16_2`"),
])
def test_conditions_are_named_in_words(track: str, condition: str, label: str) -> None:
    assert condition_label(track, condition, PAIRS) == label


def rst_caption(name: str) -> str:
    return " ".join((REPO / "workflow/report" / f"{name}.rst").read_text().split())


def as_rst(caption: str) -> str:
    return re.sub(r"`([^`]+)`", r"``\1``", caption)


def test_caption_files_of_the_html_report_match_the_reports_captions() -> None:
    for name, caption in ANALYSIS_CAPTIONS.items():
        expected = as_rst(caption)
        assert f"{expected[0].upper()}{expected[1:]}." in rst_caption(name), name
    assert f"{as_rst(FOREST_CAPTION)}." in rst_caption("claims_figure")
    topk = rst_caption("track_figure")  # its metric is a Jinja expression of the track's score
    assert f"{as_rst(TOPK_CAPTION)}." in topk
    for score in SCORES.values():
        metric = topk_caption(score).removesuffix(TOPK_CAPTION).strip()
        assert f'"{metric[0].upper()}{metric[1:]}"' in topk, score.name


def fake_engine(folder: Path, name: str, body: str = "") -> None:
    """An executable `name` in `folder` running `body` (sh)."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_the_engine_is_the_first_of_latexmk_pdflatex_tectonic_on_path(tmp_path: Path) -> None:
    assert find_engine(str(tmp_path)) is None
    fake_engine(tmp_path, "tectonic")
    assert find_engine(str(tmp_path)) == "tectonic"
    fake_engine(tmp_path, "pdflatex")
    assert find_engine(str(tmp_path)) == "pdflatex"
    fake_engine(tmp_path / "other", "latexmk")
    assert find_engine(f"{tmp_path}:{tmp_path / 'other'}") == "latexmk"


def test_the_pdf_is_built_in_the_build_folder_and_moved_into_place(tmp_path: Path, monkeypatch) -> None:
    fake_engine(tmp_path / "bin", "pdflatex", 'echo "$@" >> calls; for a; do case $a in '
                '-output-directory=*) echo pdf > "${a#-output-directory=}/main.pdf";; esac; done')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper/main.tex").write_text("")
    build_pdf(tmp_path / "paper/main.tex", tmp_path / "paper/main.pdf", tmp_path / "build", "pdflatex")
    assert (tmp_path / "paper/main.pdf").read_text() == "pdf\n"
    calls = (tmp_path / "paper/calls").read_text().splitlines()
    assert calls == 2 * [f"-interaction=nonstopmode -halt-on-error -output-directory={tmp_path / 'build'} main.tex"]


def test_a_failing_engine_stops_with_its_log_named(tmp_path: Path, monkeypatch) -> None:
    fake_engine(tmp_path / "bin", "latexmk", "exit 12")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    (tmp_path / "main.tex").write_text("")
    with pytest.raises(SystemExit, match=r"latexmk failed on .*main.tex; its log: .*build/main.log"):
        build_pdf(tmp_path / "main.tex", tmp_path / "main.pdf", tmp_path / "build", "latexmk")
    assert not (tmp_path / "main.pdf").exists()


PARAMS = {"claims": {"teacher": "mlp"}, "figures": {"error_bars": "sd"},
          "synthetic": {"methods": {"ce": {}, "kd": {"lam": [0.5, 0.9], "tau": [4]}},
                        "data": {"world_seeds": [0]}, "student": {"seeds": [0, 1]}}}
CLAIMS = {"confidence": 0.95, "correction": "bonferroni", "margin": 0.5,
          "procedure": procedure_text(0.95, "bonferroni", 0.5, " pts"),
          "scope": "the students of the `mlp` teacher, per class correlation γ",
          "claims": [{"id": "C1", "statement": "kd > ls", "verdict": "holds", "parts": ["holds"], "level": 0.95,
                      "evidence": ["γ = 0: kd − ls = +2.98 pts [+2.85, +3.11] (seed sd 0.18, n = 8) → holds"]},
                     {"id": "C9", "statement": "an LS-trained teacher distils worse_than 100% plain", "verdict": "not run",
                      "evidence": ["needs the diagnoses"]}]}


def synthetic_results(folder: Path) -> list[str]:
    """A summary.csv, claims.json and five figures (PNG, the forest plot and gain with their PDF):
    the report's --track and --figures arguments."""
    rows = [{"role": "student", "teacher": "mlp", "gamma": 0.0, "seed": seed, "method": method,
             "variant": f"{method}(lam=0.9)", "lam": 0.9, "tau": 4.0, "best_test_acc": 0.5 + seed / 100,
             "bayes_test_acc": 0.7, "selected": True, "run": f"run{seed}{method}", "epochs": 2,
             "seconds_per_epoch": 1.0, "git_commit": "abc", "device": "cpu"}
            for seed in (0, 1) for method in ("ce", "kd")]
    rows.append({**rows[0], "role": "teacher", "method": "ce", "run": "teacher"})
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    (folder / "claims.json").write_text(json.dumps(CLAIMS))
    figures = folder / "paper/figures/synthetic"
    figures.mkdir(parents=True)
    for name in ("gain.png", "gain.pdf", "gamma0_mlp_rescaling.png", "gamma0_mlp_geometry.png",
                 "gamma0_confidence.png", "claims.png", "claims.pdf"):
        (figures / name).write_bytes(b"figure")
    return ["--track", "synthetic", str(folder / "summary.csv"), str(folder / "claims.json"),
            "--figures", "synthetic", *(str(figures / name) for name in
                                        ("gamma0_confidence.png", "gain.png", "claims.png",
                                         "gamma0_mlp_geometry.png", "gamma0_mlp_rescaling.png"))]


def run_report(folder: Path, *args: str) -> None:
    report.main(["--params", json.dumps(PARAMS), *args, "--out", str(folder / "paper/REPORT.md"),
                 "--latex", str(folder / "paper/generated/body.tex"), "--tables", str(folder / "paper/tables")])


def test_the_report_is_one_document_written_as_markdown_and_latex(tmp_path: Path) -> None:
    run_report(tmp_path, *synthetic_results(tmp_path))
    paper = tmp_path / "paper"
    markdown, body = (paper / "REPORT.md").read_text(), (paper / "generated/body.tex").read_text()
    for name in ("claims", "accuracy", "selected_variants"):
        assert to_markdown_of(paper, name) in markdown  # the same Markdown, embedded
        assert f"\\input{{tables/synthetic/{name}.tex}}" in body
        assert latex_problems((paper / f"tables/synthetic/{name}.tex").read_text(), paper, tabular=True) == []
    assert latex_problems(body, paper) == []
    assert "| C9 | an LS-trained teacher distils worse_than 100% plain | not run |  |  |" in markdown
    assert "| C1 | kd > ls | holds | 1 holds | +2.98 pts |" in markdown
    assert "**C1** (kd > ls): **holds** (1 part, 95% intervals)" in markdown
    assert "Student t with n − 1 degrees of freedom" in markdown  # the procedure, stated once
    # the forest plot opens the claims; then the track's own figures, then per condition in the
    # given order, kinds in a fixed order
    assert re.findall(r"figures/synthetic/(\w+)\.png", markdown) == [
        "claims", "gain", "gamma0_confidence", "gamma0_mlp_rescaling", "gamma0_mlp_geometry"]
    assert re.findall(r"\\includegraphics\{figures/synthetic/(\w+\.\w+)\}", body) == [
        "claims.pdf", "gain.pdf", "gamma0_confidence.png", "gamma0_mlp_rescaling.png",
        "gamma0_mlp_geometry.png"]  # the PDF where there is one
    # the forest plot opens the claims section, before the procedure, in both documents
    for document, heading, figure in ((markdown, "## Claims\n\n![", "figures/synthetic/claims.png"),
                                      (body, "\\section{Claims}\n\n\\begin{figure}", "figures/synthetic/claims.pdf")):
        assert document.index(heading) < document.index(figure) < document.index("Comparisons are")
        assert document.index(figure) - document.index(heading) < 120  # the section's first block
    assert "*Figure: Synthetic study (NOTES §3), the claims at a glance: one row per part" in markdown
    assert "#### γ = 0, teacher `mlp`" in markdown and r"\subsubsection{$\gamma$ = 0}" in body
    assert f"*Figure: γ = 0: {ANALYSIS_CAPTIONS['confidence']}.*" in markdown
    assert "mean ± sd over 2 seeds" in markdown
    assert markdown.index("## Claims") < markdown.index("## Synthetic study") < markdown.index("## Provenance")


def test_the_overview_embeds_the_forest_plot_of_the_figures_given(tmp_path: Path) -> None:
    overview = tmp_path / "paper/generated/overview.html"
    args = synthetic_results(tmp_path)
    (tmp_path / "paper/figures/synthetic/claims.png").write_bytes(b"forest")  # the other figures: b"figure"
    run_report(tmp_path, *args, "--overview", str(overview))
    text = overview.read_text()
    assert re.findall(r'<img src="data:image/png;base64,(\w+)"', text) == ["Zm9yZXN0"]  # b"forest"
    assert re.findall(r"<tr><th>(C\d+)</th><td[^>]*>[^<]*</td><td[^>]*>([^<]*)</td></tr>", text) == [
        ("C1", "holds"), ("C9", "not run")]


def to_markdown_of(paper: Path, name: str) -> str:
    return (paper / f"tables/synthetic/{name}.md").read_text().rstrip()


@pytest.mark.parametrize("args, message", [
    (["--track", "mnist", "s.csv", "c.json"], "--track mnist: unknown track"),
    (["--track", "synthetic", "s.csv", "c.json", "--figures", "cifar100", "a.png"],
     "--figures cifar100: give a track that has a --track"),
    (["--track", "synthetic", "s.csv", "c.json", "--track", "synthetic", "s.csv", "c.json"],
     "--track given twice"),
])
def test_the_report_command_refuses_bad_arguments(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit):
        run_report(tmp_path, *args)
    assert message in capsys.readouterr().err


def test_a_missing_figure_is_named(tmp_path: Path) -> None:
    args = synthetic_results(tmp_path)
    with pytest.raises(ValueError, match="no figure .*gone.png"):
        run_report(tmp_path, *args, str(tmp_path / "gone.png"))


def test_the_forking_paths_quote_the_sizing_record(tmp_path: Path) -> None:
    run_report(tmp_path, *synthetic_results(tmp_path), "--sizing", str(REPO / "docs/synthetic-sizing.md"))
    markdown = (tmp_path / "paper/REPORT.md").read_text()
    table = (tmp_path / "paper/tables/synthetic/forking_paths.md").read_text()
    assert "## Forking paths" in markdown and table.rstrip() in markdown
    sizing = (REPO / "docs/synthetic-sizing.md").read_text().split("## What the verdicts depend on")[1]
    rows = [line for line in sizing.splitlines() if line.startswith("| λ")]  # every grid tried
    assert rows and all(row.split("|")[1].strip() in table for row in rows)
    assert table.splitlines()[0] == "| grid | C5 | C6 | C7 |"
    assert latex_problems((tmp_path / "paper/generated/body.tex").read_text(), tmp_path / "paper") == []


def test_an_image_track_has_a_table_per_pair_and_its_figures_by_condition(tmp_path: Path) -> None:
    cifar_rows().assign(run="r", epochs=1, seconds_per_epoch=1.0, git_commit="abc",
                        device="cpu").to_csv(tmp_path / "summary.csv", index=False)
    claims = {**CLAIMS, "scope": "per teacher→student pair: resnet56→resnet20"}
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    figures = tmp_path / "paper/figures/cifar100"
    figures.mkdir(parents=True)
    pngs = [figures / f"{stem}.png" for stem in ("resnet56_ls_resnet20_geometry", "resnet20_tau")]
    for png in pngs:
        png.write_bytes(b"figure")
    params = {**PARAMS, "cifar100": {**CIFAR, "data": {"valid_size": 100}}}
    report.main(["--params", json.dumps(params), "--track", "cifar100", str(tmp_path / "summary.csv"),
                 str(tmp_path / "claims.json"), "--figures", "cifar100", *map(str, pngs),
                 "--out", str(tmp_path / "paper/REPORT.md"), "--latex", str(tmp_path / "paper/body.tex"),
                 "--tables", str(tmp_path / "paper/tables")])
    markdown = (tmp_path / "paper/REPORT.md").read_text()
    for teacher in ("resnet56", "resnet56_ls"):
        assert (tmp_path / f"paper/tables/cifar100/accuracy_{teacher}_resnet20.md").read_text().rstrip() in markdown
    assert "#### `resnet56_ls` → `resnet20`" in markdown and "#### the teachers of `resnet20`" in markdown
    assert latex_problems((tmp_path / "paper/body.tex").read_text(), tmp_path / "paper") == []
