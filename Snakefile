# Reproduction workflow of "Understanding and Improving Knowledge Distillation".
#   snakemake --profile workflow/profiles/quick     the laptop demo (make demo)
#   snakemake --cores all --resources gpu=4         everything, full size
# Rules are thin: each wires files and parameters into one `python -m partialkd.<step>` command.

from partialkd.plan.config import check_params_file

check_params_file("params.yaml")  # missing, or not YAML: named with its line, before Snakemake reads it
configfile: "params.yaml"
report: "workflow/report/workflow.rst"  # the front page of `snakemake --report report.html`


include: "workflow/rules/common.smk"


wildcard_constraints:
    gamma=r"[0-9.]+",
    seed=r"\d+",
    teacher="|".join(SYN["teachers"]),

include: "workflow/rules/synthetic.smk"
include: "workflow/rules/networks.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        PAPER_PDF,
