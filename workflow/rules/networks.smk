# The real-data tracks (NOTES §4), one set of `{track}` rules for all of them: prepare the data
# (a user folder, a package's files, or the download; every file checked) -> teachers (trained
# once per teacher seed, then frozen, or given as files) -> students -> summary, each method's grid
# point chosen on validation by the track's score. What differs between tracks is looked up:
# their `Track` records (partialkd.plan.tracks) and params.yaml sections; which jobs run is
# decided by partialkd.plan.matrix. Students are one network per grid point and seed (CIFAR-100,
# Penn Treebank, ImageNet: one job each, one GPU each) or, on a track with `stacked_students`
# (Fashion-MNIST), one stack of MLPs per pair, teacher seed and seed, as on the synthetic track.
# GPU jobs go through `partialkd.gpu_slots`, which gives each running job its own device; the
# device is chosen at run time, never written into params or shell text.

def network_tracks(select):
    """The real-data tracks for which `select(track)` holds, as a wildcard pattern."""
    return "|".join(track for track in NETWORK_TRACKS if select(track)) or "(?!)"


def stacked(track):
    return TRACK_RECORDS[track].stacked_students


def trainer(track):
    """The step that trains the track's networks."""
    return TRACK_RECORDS[track].trainer


def data_name(track, name):
    """A dataset path's file name without `.pt`, which must be the track's (`Track.data_file`)."""
    if f"{name}.pt" != TRACK_RECORDS[track].data_file:
        raise ValueError(f"results/{track}/data/{name}.pt: the {track} track prepares {TRACK_RECORDS[track].data}")
    return name


# The teachers some real-data track trains, as a wildcard pattern.
TRAINED_TEACHERS = "|".join(sorted({t for track in NETWORK_TRACKS for t in matrix.trained_teachers(config[track])})) or "(?!)"
# Each track's grid points, by slug (the tracks whose students train one network per grid point).
VARIANTS = {track: matrix.variants(config[track]) for track in NETWORK_TRACKS if not stacked(track)}


def cached(track):
    """Whether the track's students read their teacher's logits from a cache (`teacher_cache`)."""
    return config[track].get("teacher_cache", "off") not in ("off", False)


def teacher_cache(track, teacher_name):
    """The cache of teacher logits a student job reads (none without a teacher or a cache)."""
    return [] if teacher_name == NO_TEACHER or not cached(track) else f"{teacher_run(track, teacher_name, None)}/view_logits.pt"


def variant_grid(track, slug):
    """The one-point grid of a student job, as JSON."""
    if slug not in VARIANTS[track]:
        raise ValueError(f"{slug}: not a grid point of {track}.methods")
    return json.dumps(VARIANTS[track][slug].to_grid())


rule network_dataset:
    input:
        code=lambda w: CODE[f"prepare:{w.track}"],
    output:
        "results/{track}/data/{data_name}.pt",
    wildcard_constraints:
        track=network_tracks(lambda track: True),
        data_name="|".join(sorted({TRACK_RECORDS[track].data_file.removesuffix(".pt") for track in NETWORK_TRACKS})),
    params:
        data=lambda w: command_options(config[w.track]["data"]),
        checked=lambda w: data_name(w.track, w.data_name),  # refuses another track's file name
    log:
        "logs/{track}/{data_name}.log",
    shell:
        "python -m partialkd.prepare {wildcards.track} {params.data} --out {output} 2> {log}"


rule network_teacher:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        code=lambda w: CODE[trainer(w.track)],
    output:
        model="results/{track}/teachers/{teacher_name}/model.pt",
        metrics="results/{track}/teachers/{teacher_name}/metrics.json",
    wildcard_constraints:
        track=network_tracks(lambda track: not replicated(track)),
        teacher_name=TRAINED_TEACHERS,
    params:
        trainer=lambda w: trainer(w.track),
        arch=lambda w: config[w.track]["teachers"][w.teacher_name]["arch"],
        grid=lambda w: json.dumps(config[w.track]["teachers"][w.teacher_name]["target"]),
        recipe=lambda w: json.dumps(teacher_recipe(config[w.track], w.teacher_name)),
        input=lambda w: command_options(config[w.track].get("input", {})),
        seed=lambda w: w.get("teacher_seed", config[w.track].get("teacher_seed")),
        seed_tag=lambda w: f" --tag teacher_seed={w.teacher_seed}" if "teacher_seed" in w.keys() else "",
    resources:
        gpu=1,
    log:
        "logs/{track}/teachers/{teacher_name}.log",
    benchmark:
        "benchmarks/{track}/teachers/{teacher_name}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.{params.trainer} --data {input.data} --arch {params.arch}"
        " --grid {params.grid:q} --recipe {params.recipe:q} {params.input} --seed {params.seed} --threads {threads}"
        " --tag role=teacher --tag teacher={wildcards.teacher_name} --tag student={params.arch}{params.seed_tag}"
        " --out-dir $(dirname {output.model}) 2> {log}"


# A track with `teacher_seeds` trains each teacher once per seed, in a folder of its own (the
# parameters above read the seed from the path).
use rule network_teacher as network_teacher_replicate with:
    output:
        model="results/{track}/teachers/{teacher_name}/teacher_seed{teacher_seed}/model.pt",
        metrics="results/{track}/teachers/{teacher_name}/teacher_seed{teacher_seed}/metrics.json",
    wildcard_constraints:
        track=network_tracks(replicated),
        teacher_name=TRAINED_TEACHERS,
        teacher_seed=r"\d+",
    log:
        "logs/{track}/teachers/{teacher_name}/teacher_seed{teacher_seed}.log",
    benchmark:
        "benchmarks/{track}/teachers/{teacher_name}/teacher_seed{teacher_seed}.tsv"


# A teacher's logits of every augmented view of every training image, for its students (issue 15;
# partialkd.training.teacher_cache): rebuilt when the teacher changes, deleted by Snakemake once
# its students are trained (temp), never versioned (.dvcignore).
rule network_teacher_cache:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        teacher="results/{track}/teachers/{teacher_name}/model.pt",
        code=CODE["cache_teacher"],
    output:
        temp("results/{track}/teachers/{teacher_name}/view_logits.pt"),
    wildcard_constraints:
        track=network_tracks(cached),
        teacher_name=TRAINED_TEACHERS,
    params:
        precision=lambda w: config[w.track]["recipe"]["precision"],
        dtype=lambda w: config[w.track]["teacher_cache"],
    resources:
        gpu=1,
    log:
        "logs/{track}/teacher_caches/{teacher_name}.log",
    benchmark:
        "benchmarks/{track}/teacher_caches/{teacher_name}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.cache_teacher --data {input.data} --teacher {input.teacher}"
        " --precision {params.precision} --dtype {params.dtype} --out {output} 2> {log}"


rule network_student:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        teacher=lambda w: student_teacher(w.track, w),
        teacher_cache=lambda w: teacher_cache(w.track, w.teacher_name),
        code=lambda w: CODE[trainer(w.track)],
    output:
        model="results/{track}/students/{student_arch}/{teacher_name}/{variant}/seed{seed}/model.pt",
        metrics="results/{track}/students/{student_arch}/{teacher_name}/{variant}/seed{seed}/metrics.json",
    wildcard_constraints:
        track=network_tracks(lambda track: not stacked(track)),
        teacher_name="|".join(sorted({NO_TEACHER, *(t for track in VARIANTS for t in config[track]["teachers"])})),
        variant="|".join(sorted({re.escape(slug) for variants in VARIANTS.values() for slug in variants})) or "(?!)",
    params:
        trainer=lambda w: trainer(w.track),
        grid=lambda w: variant_grid(w.track, w.variant),
        recipe=lambda w: json.dumps(config[w.track]["recipe"]),
        input=lambda w: command_options(config[w.track].get("input", {})),
        teacher=lambda w, input: teacher_options(w.track, w.teacher_name, input.teacher),
        cache=lambda w, input: f"--teacher-cache {input.teacher_cache}" if input.teacher_cache else "",
    resources:
        gpu=1,
    log:
        "logs/{track}/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/{track}/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.{params.trainer} --data {input.data} --arch {wildcards.student_arch}"
        " --grid {params.grid:q} {params.teacher} {params.cache} --recipe {params.recipe:q} {params.input}"
        " --seed {wildcards.seed} --threads {threads} --tag role=student --tag teacher={wildcards.teacher_name}"
        " --tag student={wildcards.student_arch} --out-dir $(dirname {output.model}) 2> {log}"


rule network_student_stack:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        teacher=lambda w: track_teacher_file(w.track, w.teacher_name, w.teacher_seed),
        code=lambda w: CODE[f"train:{w.track}"],
    output:
        model="results/{track}/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}/model.pt",
        metrics="results/{track}/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}/metrics.json",
    wildcard_constraints:
        track=network_tracks(stacked),
        teacher_name="|".join(sorted({t for track in NETWORK_TRACKS if stacked(track)
                                      for t in config[track]["teachers"]})) or "(?!)",
        student_arch="|".join(sorted({s for track in NETWORK_TRACKS if stacked(track)
                                      for s in config[track]["students"]["architectures"]})) or "(?!)",
        teacher_seed=r"\d+",
    params:
        recipe=lambda w: json.dumps(stacked_recipe(config[w.track]["students"]["training"],
                                                 config[w.track]["students"]["architectures"][w.student_arch])),
        grid=lambda w: json.dumps(matrix.pair_methods(config[w.track], w.teacher_name, w.student_arch)),
    log:
        "logs/{track}/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}.log",
    benchmark:
        "benchmarks/{track}/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}.tsv"
    threads: 1
    shell:
        "python -m partialkd.train --data {input.data} --teacher {input.teacher}"
        " --grid {params.grid:q} --recipe {params.recipe:q} --seed {wildcards.seed} --threads {threads}"
        " --tag role=student --tag teacher={wildcards.teacher_name} --tag student={wildcards.student_arch}"
        " --tag teacher_seed={wildcards.teacher_seed} --out-dir $(dirname {output.model}) 2> {log}"


def teacher_metrics(track):
    """The metrics of the teachers a track trains (every teacher seed)."""
    return [f"{teacher_run(track, teacher, seed)}/metrics.json"
            for teacher in matrix.trained_teachers(config[track]) for seed in teacher_seeds(track)]


def student_metrics(track):
    """The metrics of every student job of a track (partialkd.plan.matrix decides which)."""
    if stacked(track):
        return [rules.network_student_stack.output.metrics.format(
                    track=track, student_arch=run.student, teacher_name=run.teacher,
                    teacher_seed=run.teacher_seed, seed=run.seed)
                for run in matrix.stack_runs(config[track])]
    return [rules.network_student.output.metrics.format(track=track, student_arch=run.student,
                                                         teacher_name=run.teacher, variant=run.variant,
                                                         seed=run.seed)
            for run in matrix.student_runs(config[track])]


rule network_summary:
    input:
        teachers=lambda w: teacher_metrics(w.track),
        students=lambda w: student_metrics(w.track),
        code=CODE["aggregate"],
    output:
        table="results/{track}/summary.csv",
        metrics="results/{track}/metrics.json",
        selected="results/{track}/selected.csv",
    wildcard_constraints:
        track=network_tracks(lambda track: True),
    params:
        score=lambda w: TRACK_RECORDS[w.track].score,
    log:
        "logs/{track}/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --select-by {params.score}"
        " --out {output.table} --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <track>_data_phase` (or _teachers_phase, _students_phase,
# _summary_phase) builds one phase of a track (and what it needs); dvc.yaml runs these.
for phase_track in NETWORK_TRACKS:

    rule:
        name: f"{phase_track}_data_phase"
        input: TRACK_RECORDS[phase_track].data

    rule:
        name: f"{phase_track}_teachers_phase"
        input: teacher_metrics(phase_track)

    rule:
        name: f"{phase_track}_students_phase"
        input: student_metrics(phase_track)

    rule:
        name: f"{phase_track}_summary_phase"
        input: expand(rules.network_summary.output, track=phase_track)
