# Helpers shared by the workflow modules: validation of params.yaml and path helpers.
import json

from partialkd.config import validate_params

validate_params(config, workflow.source_path("../schemas/params.schema.yaml"))

SYN = config["synthetic"]

# The package modules each step runs: rule inputs, so that editing one re-runs its steps (and
# the dependencies of the matching stage in dvc.yaml; a test keeps the two in step).
CODE = {
    step: [f"src/partialkd/{module}.py" for module in modules]
    for step, modules in {
        "prepare": ("prepare", "synthetic", "datasets", "io"),
        "train": ("train", "training", "models", "losses", "targets", "grid", "metrics",
                  "teachers", "datasets", "io", "prepare"),
        "aggregate": ("aggregate", "io"),
        "claims": ("claims", "io"),
        "figures": ("figures", "style", "io"),
        "report": ("report", "claims", "style", "provenance", "io"),
    }.items()
}
SYN_DIR = "results/synthetic"


def gamma_label(gamma):
    """The γ of a path: 0.3 -> '0.3', 0.0 -> '0'."""
    return f"{float(gamma):g}"


def training_args(section):
    """The shared `python -m partialkd.train` options of a params.yaml training section."""
    hidden = " ".join(str(width) for width in section["hidden"])
    return (f"--hidden {hidden} --epochs {section['epochs']} --batch-size {section['batch_size']} "
            f"--lr {section['lr']} --weight-decay {section['weight_decay']}")


def teacher_model(wildcards):
    """The teacher checkpoint a student job reads; the oracle needs none."""
    if wildcards.teacher == "oracle":
        return []
    return rules.synthetic_teacher.output.model.format(gamma=wildcards.gamma)
