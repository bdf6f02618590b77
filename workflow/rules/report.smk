# Claims, figures and the generated report, all computed from the tracks' summary tables.
# The report covers the tracks listed in `tracks`.


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
        unpack(report_inputs),
    output:
        "paper/REPORT.md",
    params:
        parameters=json.dumps(config),
        tracks=lambda w, input: " ".join(f"--{track} {' '.join(input[track])}"
                                         for track in TRACKS),
    log:
        "logs/report.log",
    shell:
        "python -m partialkd.report {params.tracks} --params {params.parameters:q}"
        " --out {output} 2> {log}"
