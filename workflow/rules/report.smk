# Claims, figures and the generated report, all computed from the tracks' summary tables.
# The report covers the tracks listed in `tracks`.


rule synthetic_claims:
    input:
        summary=rules.synthetic_summary.output.table,
        analyses=expand(rules.synthetic_analysis.output.json, gamma=GAMMAS,
                        teacher=config["claims"]["teacher"]),
        code=CODE["claims"],
    output:
        f"{SYN_DIR}/claims.json",
    params:
        claims=config["claims"],
    log:
        "logs/synthetic/claims.log",
    shell:
        "python -m partialkd.claims --summary {input.summary} --teacher {params.claims[teacher]}"
        " --analyses {input.analyses} --z {params.claims[z]} --margin {params.claims[margin]}"
        " --out {output} 2> {log}"


rule cifar100_claims:
    input:
        summary=rules.cifar100_summary.output.table,
        code=CODE["claims"],
    output:
        f"{CIFAR_DIR}/claims.json",
    params:
        claims=config["claims"],
        pairs=full_matrix_pairs(),
    log:
        "logs/cifar100/claims.log",
    shell:
        "python -m partialkd.claims --summary {input.summary} {params.pairs}"
        " --z {params.claims[z]} --margin {params.claims[margin]} --out {output} 2> {log}"


rule synthetic_figure:
    input:
        summary=rules.synthetic_summary.output.table,
        code=CODE["figures"],
    output:
        png="paper/figures/synthetic/{figure}.png",
        pdf="paper/figures/synthetic/{figure}.pdf",
    wildcard_constraints:
        figure="gain|topk",
    params:
        error_bars=config["figures"]["error_bars"],
    log:
        "logs/figures/synthetic_{figure}.log",
    shell:
        "python -m partialkd.figures synthetic-{wildcards.figure} --summary {input.summary}"
        " --error-bars {params.error_bars} --out-stem paper/figures/synthetic/{wildcards.figure}"
        " 2> {log}"


rule report:
    input:
        unpack(report_inputs),
    output:
        "paper/REPORT.md",
    params:
        parameters=json.dumps(config),
        tracks=lambda w, input: " ".join(f"--{track} {' '.join(input[track])}"
                                         for track in TRACKS),
        figures=lambda w, input: (f"--analysis-figures {' '.join(input.analysis_figures)}"
                                  if "synthetic" in TRACKS else ""),
    log:
        "logs/report.log",
    shell:
        "python -m partialkd.report {params.tracks} {params.figures} --params {params.parameters:q}"
        " --out {output} 2> {log}"
