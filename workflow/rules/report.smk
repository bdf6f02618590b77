# Claims, figures, tables and the generated report, all computed from the tracks' summary
# tables; the report covers the tracks listed in `tracks`. paper/main.pdf is built from the
# committed paper/main.tex when a LaTeX engine is on PATH. Outputs flagged with report() make up
# `snakemake --report report.html` (`make report`), captioned from workflow/report/; its front
# page inlines the report rule's overview of the verdicts and forest plots.
from snakemake.logging import logger

from partialkd.latex import ENGINES, INSTALL_HINT, find_engine


rule synthetic_claims:
    input:
        summary=rules.synthetic_summary.output.table,
        analyses=analysis_jsons("synthetic"),
        diagnoses=diagnosis_jsons("synthetic"),
        code=CODE["claims"],
    output:
        report(f"{SYN_DIR}/claims.json", caption="../report/claims.rst", category="Claims",
               subcategory="synthetic"),
    params:
        claims=config["claims"],
        # the claims' teacher and the first student architecture lead; the other teachers' and
        # students' claims are written beside (C1–C8, C10, C11)
        teachers=" ".join([*(f"--teacher {t}" for t in dict.fromkeys([config["claims"]["teacher"], *SYN["teachers"]])),
                           *(f"--student {s}" for s in SYN_STUDENTS)]),
    log:
        "logs/synthetic/claims.log",
    shell:
        "python -m partialkd.claims --summary {input.summary} {params.teachers}"
        " --analyses {input.analyses} --diagnoses {input.diagnoses}"
        " --confidence {params.claims[confidence]} --correction {params.claims[correction]}"
        " --uniform-entropy {params.claims[uniform_entropy]}"
        " --margin {params.claims[margin]} --out {output} 2> {log}"


rule network_claims:
    input:
        summary="results/{track}/summary.csv",
        analyses=lambda w: analysis_jsons(w.track),
        diagnoses=lambda w: diagnosis_jsons(w.track),
        code=CODE["claims"],
    output:
        report("results/{track}/claims.json", caption="../report/claims.rst", category="Claims",
               subcategory="{track}"),
    wildcard_constraints:
        track="|".join(NETWORK_TRACKS),
    params:
        claims=config["claims"],
        pairs=lambda w: full_matrix_pairs(w.track),
        diagnoses=lambda w, input: f"--diagnoses {input.diagnoses}" if input.diagnoses else "",
        score=lambda w: TRACK_RECORDS[w.track].score,
        margin=lambda w: config["claims"]["margin_ppl" if TRACK_RECORDS[w.track].score == "ppl" else "margin"],
    log:
        "logs/{track}/claims.log",
    shell:
        "python -m partialkd.claims --summary {input.summary} {params.pairs}"
        " --analyses {input.analyses} {params.diagnoses} --metric {params.score}"
        " --confidence {params.claims[confidence]} --correction {params.claims[correction]}"
        " --uniform-entropy {params.claims[uniform_entropy]}"
        " --margin {params.margin} --out {output} 2> {log}"


rule track_figure:
    input:
        summary="results/{track}/summary.csv",
        code=CODE["figures"],
    output:
        png=report("paper/figures/{track}/{figure}.png", caption="../report/track_figure.rst",
                   category="{track}", subcategory="Figures", labels={"figure": "{figure}"}),
        pdf="paper/figures/{track}/{figure}.pdf",
    wildcard_constraints:
        figure="gain|topk",
    params:
        error_bars=config["figures"]["error_bars"],
        score=lambda w: TRACK_RECORDS[w.track].score,
        metric=lambda w: f"--metric {TRACK_RECORDS[w.track].score}" if w.figure == "topk" else "",
    log:
        "logs/figures/{track}_{figure}.log",
    shell:
        "python -m partialkd.figures {wildcards.figure} --summary {input.summary}"
        " --error-bars {params.error_bars} {params.metric} --out-stem paper/figures/{wildcards.track}/{wildcards.figure}"
        " 2> {log}"


rule claims_figure:  # the forest plot of a track's lead claims: it opens the report's claims
    input:
        claims="results/{track}/claims.json",
        code=CODE["figures"],
    output:
        png=report("paper/figures/{track}/claims.png", caption="../report/claims_figure.rst",
                   category="Claims", subcategory="{track}"),
        pdf="paper/figures/{track}/claims.pdf",
    log:
        "logs/figures/{track}_claims.log",
    shell:
        "python -m partialkd.figures claims --claims {input.claims}"
        " --out-stem paper/figures/{wildcards.track}/claims 2> {log}"


rule report:
    input:
        unpack(report_inputs),
    output:
        markdown=report("paper/REPORT.md", caption="../report/report.rst", category="Paper"),
        latex="paper/generated/body.tex",
        tables=directory("paper/tables"),
        overview="paper/generated/overview.html",  # the front page of report.html (workflow.rst)
    params:
        parameters=json.dumps(config),
        tracks=lambda w, input: " ".join(f"--track {track} {' '.join(input[track])}"
                                         for track in RUN_TRACKS),
        figures=lambda w, input: " ".join(f"--figures {track} {' '.join(input[f'{track}_figures'])}"
                                          for track in RUN_TRACKS if input[f"{track}_figures"]),
        sizing=lambda w, input: f"--sizing {input.sizing}" if input.sizing else "",
    log:
        "logs/report.log",
    shell:  # --defaults: the report lists where this run's parameters differ from params.yaml
        "python -m partialkd.report {params.tracks} {params.figures} {params.sizing} --params {params.parameters:q}"
        " --defaults {input.defaults}"
        " --out {output.markdown} --latex {output.latex} --tables {output.tables}"
        " --overview {output.overview} 2> {log}"


LATEX_ENGINE = find_engine()
if LATEX_ENGINE is None:
    logger.warning(f"Skipping paper/main.pdf: no LaTeX engine on PATH ({', '.join(ENGINES)}); "
                   f"{INSTALL_HINT}.")
else:

    rule paper_pdf:
        input:
            tex="paper/main.tex",
            body=rules.report.output.latex,
            tables=rules.report.output.tables,
            code=CODE["latex"],
        output:
            report("paper/main.pdf", caption="../report/paper.rst", category="Paper"),
        log:
            "logs/paper_pdf.log",
        shell:
            "python -m partialkd.latex {input.tex} --out {output} --build-dir paper/generated/build"
            " > {log} 2>&1"


# What `rule all` asks for beyond the report: the PDF, where it can be built.
PAPER_PDF = [] if LATEX_ENGINE is None else rules.paper_pdf.output
