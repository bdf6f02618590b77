# Analyses of trained teachers and students (NOTES §5), computed from checkpoints and the
# summary's selection, never from training logs: gradient rescaling and logit geometry of the
# students of one teacher (C10, C11), and the teachers' confidence and class correlations with
# the students they produce (C9, C12). One analysis per replicate (a synthetic world, an image
# track's teacher seed: the claims pool them). Figures:
# paper/figures/<track>/<replicate>/<condition>_<kind>; the report shows the first replicate's.

ANALYSIS_KINDS = ("rescaling", "geometry", "geometry_bars")
DIAGNOSIS_KINDS = ("confidence", "tau")


def figure_files(track, condition, kinds):
    """The PNG and PDF files of a condition's figures."""
    return [f"paper/figures/{track}/{condition}_{kind}.{suffix}" for kind in kinds
            for suffix in ("png", "pdf")]


def reported_figures(track, condition, kinds):
    """figure_files as a rule's outputs: each PNG flagged for `snakemake --report`, captioned by
    its kind (workflow/report/<kind>.rst), filed under its track (a name or a wildcard)."""
    files = []
    for kind in kinds:
        png, pdf = figure_files(track, condition, [kind])
        files += [report(png, caption=f"../report/{kind}.rst", category=track,
                         subcategory="Analyses", labels={"condition": condition, "figure": kind}), pdf]
    return files


def diagnosis_args(track, student):
    """The `python -m partialkd.diagnose` options bounding a track's diagnoses (`analysis`, as
    for its analyses), and those reading the teachers given as files."""
    specs = {t: config[track]["teachers"][t] for t in diagnosed_teachers(track, student)}
    files = " ".join(f"{t}={spec['arch']}" for t, spec in specs.items() if "file" in spec)
    file_args = f" --teacher-arch {files}{input_size_args(track)}" if files else ""
    return analysis_bounds_args(track) + file_args


rule synthetic_analysis:
    input:
        data=rules.synthetic_dataset.output,
        teacher=teacher_model,
        summary=rules.synthetic_summary.output.table,
        code=CODE["analyse:synthetic"],
    output:
        json=f"{SYN_DIR}/analyses/world{{world}}/gamma{{gamma}}/{{teacher}}/{{student}}.json",
        figures=reported_figures("synthetic", "world{world}/gamma{gamma}_{teacher}_{student}", ANALYSIS_KINDS),
    wildcard_constraints:
        student="|".join(SYN_STUDENTS),
    params:
        teacher=lambda w, input: input.teacher or "oracle",
    log:
        "logs/synthetic/analyses/world{world}/gamma{gamma}/{teacher}/{student}.log",
    shell:
        "python -m partialkd.analyse --data {input.data} --teacher {params.teacher}"
        " --teacher-name {wildcards.teacher} --student {wildcards.student} --summary {input.summary}"
        " --gamma {wildcards.gamma} --replicate world={wildcards.world} --out-json {output.json}"
        " --figure-stem paper/figures/synthetic/world{wildcards.world}/"
        "gamma{wildcards.gamma}_{wildcards.teacher}_{wildcards.student} 2> {log}"


rule network_analysis:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        teacher=lambda w: track_teacher_file(w.track, w.teacher_name, w.teacher_seed),
        summary="results/{track}/summary.csv",
        code=lambda w: CODE[f"analyse:{w.track}"],
    output:
        json="results/{track}/analyses/teacher_seed{teacher_seed}/{teacher_name}/{student_arch}.json",
        figures=reported_figures("{track}", "teacher_seed{teacher_seed}/{teacher_name}_{student_arch}",
                                 ANALYSIS_KINDS),
    wildcard_constraints:
        track="|".join(NETWORK_TRACKS),
        teacher_seed=r"\d+",
        teacher_name="|".join({name for track in NETWORK_TRACKS for name in config[track]["teachers"]}),
        student_arch="|".join({pair[1] for track in NETWORK_TRACKS for pair in full_pairs(track)}),
    params:
        bounds=lambda w: analysis_args(w.track, w.teacher_name) + replicate_option(w.track, w.teacher_seed),
    resources:
        gpu=1,
    log:
        "logs/{track}/analyses/teacher_seed{teacher_seed}/{teacher_name}/{student_arch}.log",
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.analyse --data {input.data} --teacher {input.teacher}"
        " --teacher-name {wildcards.teacher_name} --summary {input.summary}"
        " --student {wildcards.student_arch} {params.bounds} --out-json {output.json}"
        " --figure-stem paper/figures/{wildcards.track}/teacher_seed{wildcards.teacher_seed}/"
        "{wildcards.teacher_name}_{wildcards.student_arch} 2> {log}"


rule synthetic_diagnosis:
    input:
        data=rules.synthetic_dataset.output,
        teachers=lambda w: [synthetic_teacher_source(w.gamma, w.world, t) for t in SYN["teachers"]
                            if t != "oracle"],
        summary=rules.synthetic_summary.output.table,
        code=CODE["diagnose:synthetic"],
    output:
        json=f"{SYN_DIR}/diagnoses/world{{world}}/gamma{{gamma}}.json",
        figures=reported_figures("synthetic", "world{world}/gamma{gamma}", DIAGNOSIS_KINDS),
    params:
        teachers=lambda w: " ".join(f"{t}={synthetic_teacher_source(w.gamma, w.world, t)}"
                                    for t in SYN["teachers"]),
        student=SYN_LEAD_STUDENT,  # the kd students its figure shows
    log:
        "logs/synthetic/diagnoses/world{world}/gamma{gamma}.log",
    shell:
        "python -m partialkd.diagnose --data {input.data} --teachers {params.teachers}"
        " --summary {input.summary} --gamma {wildcards.gamma} --student {params.student}"
        " --replicate world={wildcards.world}"
        " --out-json {output.json} --figure-stem paper/figures/synthetic/world{wildcards.world}/gamma{wildcards.gamma}"
        " 2> {log}"


rule network_diagnosis:
    input:
        data=lambda w: TRACK_RECORDS[w.track].data,
        teachers=lambda w: [track_teacher_file(w.track, t, w.teacher_seed)
                            for t in diagnosed_teachers(w.track, w.student_arch)],
        summary="results/{track}/summary.csv",
        code=lambda w: CODE[f"diagnose:{w.track}"],
    output:
        json="results/{track}/diagnoses/teacher_seed{teacher_seed}/{student_arch}.json",
        figures=reported_figures("{track}", "teacher_seed{teacher_seed}/{student_arch}", DIAGNOSIS_KINDS),
    wildcard_constraints:
        track="|".join(NETWORK_TRACKS),
        teacher_seed=r"\d+",
        student_arch="|".join({s for track in NETWORK_TRACKS for s in diagnosed_students(track)}),
    params:
        teachers=lambda w, input: " ".join(f"{t}={path}" for t, path in
                                           zip(diagnosed_teachers(w.track, w.student_arch), input.teachers)),
        options=lambda w: diagnosis_args(w.track, w.student_arch) + replicate_option(w.track, w.teacher_seed),
    resources:
        gpu=1,
    log:
        "logs/{track}/diagnoses/teacher_seed{teacher_seed}/{student_arch}.log",
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.diagnose --data {input.data} --teachers {params.teachers}"
        " --summary {input.summary} --student {wildcards.student_arch}{params.options}"
        " --out-json {output.json} --figure-stem paper/figures/{wildcards.track}/"
        "teacher_seed{wildcards.teacher_seed}/{wildcards.student_arch} 2> {log}"


def replicates(track):
    """A track's replicates as path segments: the synthetic worlds, a real-data track's teacher seeds."""
    if track == "synthetic":
        return [f"world{world}" for world in WORLDS]
    return [f"teacher_seed{seed}" for seed in teacher_seeds(track)]


def analysis_jsons(track):
    """The students' analyses of a track, every replicate: per γ, teacher and student
    architecture (synthetic) or full pair."""
    if track == "synthetic":
        return expand(rules.synthetic_analysis.output.json, gamma=GAMMAS, world=WORLDS, teacher=SYN["teachers"],
                      student=SYN_STUDENTS)
    return [rules.network_analysis.output.json.format(track=track, teacher_seed=seed, teacher_name=teacher,
                                                    student_arch=student)
            for seed in teacher_seeds(track) for teacher, student in full_pairs(track)]


def diagnosis_jsons(track):
    """The teachers' diagnoses of a track, every replicate: per γ (synthetic) or per student
    taught by several."""
    if track == "synthetic":
        return expand(rules.synthetic_diagnosis.output.json, gamma=GAMMAS, world=WORLDS)
    return [rules.network_diagnosis.output.json.format(track=track, teacher_seed=seed, student_arch=student)
            for seed in teacher_seeds(track) for student in diagnosed_students(track)]


def analysis_figures(track):
    """The PNG figures of a track's analyses and diagnoses under its first replicate, for the
    report (the others are computed for the claims)."""
    if track == "synthetic":
        conditions = [(f"gamma{g}_{config['claims']['teacher']}_{SYN_LEAD_STUDENT}", ANALYSIS_KINDS)
                      for g in GAMMAS]
        conditions += [(f"gamma{g}", DIAGNOSIS_KINDS) for g in GAMMAS]
    else:
        conditions = [(f"{teacher}_{student}", ANALYSIS_KINDS) for teacher, student in full_pairs(track)]
        conditions += [(student, DIAGNOSIS_KINDS) for student in diagnosed_students(track)]
    first = replicates(track)[0]
    return [path for condition, kinds in conditions
            for path in figure_files(track, f"{first}/{condition}", kinds) if path.endswith(".png")]
