# Claims, figures and the generated report, all computed from the summary tables.


rule synthetic_claims:
    input:
        summary=rules.synthetic_summary.output.table,
        code=CODE["claims"],
    output:
        f"{SYN_DIR}/claims.json",
    params:
        claims=config["claims"],
    log:
        "logs/synthetic/claims.log",
    shell:
        "python -m partialkd.claims --summary {input.summary} --teacher {params.claims[teacher]}"
        " --z {params.claims[z]} --margin {params.claims[margin]} --out {output} 2> {log}"


rule synthetic_gain_figure:
    input:
        summary=rules.synthetic_summary.output.table,
        code=CODE["figures"],
    output:
        png="paper/figures/synthetic/gain.png",
        pdf="paper/figures/synthetic/gain.pdf",
    params:
        error_bars=config["figures"]["error_bars"],
    log:
        "logs/figures/synthetic_gain.log",
    shell:
        "python -m partialkd.figures synthetic-gain --summary {input.summary}"
        " --error-bars {params.error_bars} --out-stem paper/figures/synthetic/gain 2> {log}"


rule report:
    input:
        summary=rules.synthetic_summary.output.table,
        claims=rules.synthetic_claims.output,
        figure=rules.synthetic_gain_figure.output.png,
        code=CODE["report"],
    output:
        "paper/REPORT.md",
    params:
        parameters=json.dumps(config),
    log:
        "logs/report.log",
    shell:
        "python -m partialkd.report --summary {input.summary} --claims {input.claims}"
        " --figure {input.figure} --params {params.parameters:q} --out {output} 2> {log}"
