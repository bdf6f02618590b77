# Helpers shared by the workflow modules: validation of params.yaml and path helpers.
import json
import os
import re

from partialkd.reporting.summary import NO_TEACHER
from partialkd.plan.code_dependencies import step_files
from partialkd.plan.config import stacked_recipe, teacher_recipe, validate_params
from partialkd.plan import matrix
from partialkd.plan.options import command_options
from partialkd.plan.tracks import NETWORK_TRACKS, TRACKS as TRACK_RECORDS

validate_params(config, workflow.source_path("../schemas/params.schema.yaml"))

# glibc's allocator, for every job: tensors up to 1 GiB come from the heap, which keeps up to
# 1 GiB of freed memory, instead of a fresh mmap each (zero-filled by page faults, then
# unmapped). With a 10k-word vocabulary every step allocates [400, 10k] tensors: on 2 CPU cores
# this halves the PTB analysis and saves a sixth of a student's time (docs/benchmarks.md).
# Set either variable in the environment to override it; other C libraries ignore both.
for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
    os.environ.setdefault(name, str(2**30))

RUN_TRACKS = config["tracks"]  # the tracks this run reproduces
SYN = config["synthetic"]

# The package files each step runs (its entry module and what it imports, from the import graph:
# partialkd.plan.code_dependencies): rule inputs, so that editing a module re-runs exactly the steps
# that import it. dvc.yaml's stages list the same files, per phase (a test checks).
CODE = {
    **{step: step_files(step) for step in ("train_images", "train_lm", "train_imagenet", "cache_teacher",
                                            "aggregate", "claims", "figures", "report", "latex")},
    # A track's data step: `prepare` and the track's own module (imported inside prepare's functions).
    **{f"prepare:{track}": step_files("prepare", f"data.{track}") for track in TRACK_RECORDS},
    # The steps that read a track's trained networks back (a stacked student's teacher, the analyses
    # and diagnoses), with the modules that read that track's networks (imported inside functions).
    **{f"{step}:{track}": step_files(step, *TRACK_RECORDS[track].network_code)
       for step in ("train", "analyse", "diagnose") for track in TRACK_RECORDS},
}
SYN_DIR = "results/synthetic"


def gamma_label(gamma):
    """The γ of a path: 0.3 -> '0.3', 0.0 -> '0'."""
    return f"{float(gamma):g}"


def synthetic_teacher_source(gamma, world, teacher):
    """What `--teacher` takes for a synthetic teacher: its world's checkpoint, or 'oracle'."""
    return "oracle" if teacher == "oracle" else rules.synthetic_teacher.output.model.format(gamma=gamma, world=world)


def teacher_model(wildcards):
    """The teacher checkpoint a student job reads; the oracle needs none."""
    if wildcards.teacher == "oracle":
        return []
    return synthetic_teacher_source(wildcards.gamma, wildcards.world, wildcards.teacher)


def replicated(track):
    """Whether a real-data track trains several teachers of each kind (`teacher_seeds`)."""
    return "teacher_seeds" in config[track]


def teacher_run(track, teacher, teacher_seed):
    """The folder of a teacher the workflow trains (of `teacher_seed` on a track that trains
    several teachers of each kind)."""
    seed_dir = f"/teacher_seed{teacher_seed}" if replicated(track) else ""
    return f"results/{track}/teachers/{teacher}{seed_dir}"


def track_teacher_file(track, teacher, teacher_seed=None):
    """A teacher's weights: the file that params.yaml gives, or the workflow's teacher run."""
    spec = config[track]["teachers"][teacher]
    return spec["file"] if "file" in spec else f"{teacher_run(track, teacher, teacher_seed)}/model.pt"


def teacher_seeds(track):
    """The seeds of a real-data track's teachers (partialkd.plan.matrix.teacher_seeds)."""
    return matrix.teacher_seeds(config[track])


def replicate_option(track, teacher_seed):
    """`--replicate teacher_seed=N` for the analyses of a track with several teacher seeds."""
    return f" --replicate teacher_seed={teacher_seed}" if replicated(track) else ""


def student_teacher(track, wildcards):
    """The teacher file a student job of a real-data track distils from (none for ce and ls)."""
    return [] if wildcards.teacher_name == NO_TEACHER else track_teacher_file(track, wildcards.teacher_name)


def teacher_options(track, teacher, path):
    """`--teacher PATH`, with `--teacher-arch` for a teacher given as a file ('' for none)."""
    if not path:
        return ""
    spec = config[track]["teachers"][teacher]
    return f"--teacher {path}" + (f" --teacher-arch {spec['arch']}" if "file" in spec else "")


def analysis_bounds_args(track):
    """`--top-classes N --max-examples M`: the track's `analysis` bounds, as `partialkd.analyse`
    and `partialkd.diagnose` take them (none where the track sets none)."""
    bounds = command_options(config[track].get("analysis", {}))
    return f" {bounds}" if bounds else ""


def input_size_args(track):
    """`--crop C --resize R`: the input size of a track's teachers given as files (ImageNet)."""
    size = config[track]["input"]
    return f" --crop {size['crop']} --resize {size['resize']}"


def analysis_args(track, teacher):
    """The `python -m partialkd.analyse` options bounding a track's analyses (`analysis`), and
    those reading a teacher given as a file."""
    spec = config[track]["teachers"][teacher]
    file_args = f" --teacher-arch {spec['arch']}{input_size_args(track)}" if "file" in spec else ""
    return analysis_bounds_args(track) + file_args


def full_pairs(track):
    """A real-data track's (teacher, student) pairs that train every method: the claims compare on
    them, and the students' analyses run on them."""
    return list(dict.fromkeys((p["teacher"], p["student"]) for p in config[track]["students"]["pairs"]
                              if "methods" not in p))


def diagnosed_teachers(track, student):
    """The teachers a student architecture of a real-data track learns from, in params order."""
    return list(dict.fromkeys(p["teacher"] for p in config[track]["students"]["pairs"]
                              if p["student"] == student))


def diagnosed_students(track):
    """The student architectures of a real-data track taught by several teachers: their teachers'
    diagnoses (C9, C12) compare the students those teachers produce."""
    students = dict.fromkeys(p["student"] for p in config[track]["students"]["pairs"])
    return [student for student in students if len(diagnosed_teachers(track, student)) > 1]


def full_matrix_pairs(track):
    """The full pairs as `python -m partialkd.claims` options."""
    return " ".join(f"--pair {teacher} {student}" for teacher, student in full_pairs(track))


def track_figures(track):
    """A track's own figures: the gain over ce against γ (synthetic), kd_topk against k."""
    methods = SYN["methods"] if track == "synthetic" else config[track]["methods"]
    return [*(["gain"] if track == "synthetic" else []), *(["topk"] if "kd_topk" in methods else [])]


def report_inputs(wildcards):
    """params.yaml (the report compares the run's parameters with it), each listed track's summary
    and claims (key: the track), and its figures as PNG, the claims' forest plot first (key:
    `<track>_figures`; the PDF beside each comes from the same job)."""
    inputs = {"code": CODE["report"], "defaults": "params.yaml",
              "sizing": ["docs/synthetic-sizing.md"] if "synthetic" in RUN_TRACKS else []}
    for track in RUN_TRACKS:
        own = [*expand(rules.claims_figure.output.png, track=track),
               *expand(rules.track_figure.output.png, track=track, figure=track_figures(track))]
        inputs[track] = [f"results/{track}/summary.csv", f"results/{track}/claims.json"]
        inputs[f"{track}_figures"] = [*own, *analysis_figures(track)]
    return inputs
