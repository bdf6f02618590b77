# The ImageNet track (NOTES §4): a user-provided ImageFolder (`imagenet.data.root`, train/ and
# val/ in class folders) -> an index of its files (the images stay where they are) -> teachers
# (ResNet-34: trained once and frozen, or given as a file) -> the student matrix (ResNet-18; pair
# × method grid point × seed, one job each, one GPU each, as on CIFAR-100) -> summary.

rule imagenet_dataset:
    input:
        code=CODE["prepare:imagenet"],
    output:
        IMAGENET_DATA,
    params:
        data=IMAGENET["data"],
        check="--check-headers" if IMAGENET["data"]["check_headers"] else "",
    log:
        "logs/imagenet/data.log",
    shell:
        "python -m partialkd.prepare imagenet --root {params.data[root]:q}"
        " --valid-per-class {params.data[valid_per_class]} --split-seed {params.data[split_seed]}"
        " {params.check} --out {output} 2> {log}"


IMAGENET_INPUT = (f"--crop {IMAGENET['input']['crop']} --resize {IMAGENET['input']['resize']}"
                  f" --workers {IMAGENET['input']['workers']}")


rule imagenet_teacher:
    input:
        data=IMAGENET_DATA,
        code=CODE["train_imagenet"],
    output:
        model=f"{IMAGENET_DIR}/teachers/{{teacher_name}}/model.pt",
        metrics=f"{IMAGENET_DIR}/teachers/{{teacher_name}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join(t for t, spec in IMAGENET["teachers"].items() if "file" not in spec) or "(?!)",
    params:
        arch=lambda w: IMAGENET["teachers"][w.teacher_name]["arch"],
        grid=lambda w: json.dumps(IMAGENET["teachers"][w.teacher_name]["target"]),
        recipe=lambda w: json.dumps(teacher_recipe(IMAGENET, w.teacher_name)),
        input=IMAGENET_INPUT,
        seed=IMAGENET["teacher_seed"],
    resources:
        gpu=1,
    log:
        "logs/imagenet/teachers/{teacher_name}.log",
    benchmark:
        "benchmarks/imagenet/teachers/{teacher_name}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_imagenet --index {input.data} --arch {params.arch}"
        " --grid {params.grid:q} --recipe {params.recipe:q} {params.input} --seed {params.seed} --threads {threads}"
        " --tag role=teacher --tag teacher={wildcards.teacher_name} --tag student={params.arch}"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule imagenet_student:
    input:
        data=IMAGENET_DATA,
        teacher=lambda w: student_teacher("imagenet", w),
        code=CODE["train_imagenet"],
    output:
        model=f"{IMAGENET_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/model.pt",
        metrics=f"{IMAGENET_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join([NO_TEACHER, *IMAGENET["teachers"]]),
        variant="|".join(re.escape(slug) for slug in IMAGENET_VARIANTS),
    params:
        grid=lambda w: json.dumps(IMAGENET_VARIANTS[w.variant].to_grid()),
        recipe=json.dumps(IMAGENET["recipe"]),
        input=IMAGENET_INPUT,
        teacher=lambda w, input: teacher_options("imagenet", w.teacher_name, input.teacher),
    resources:
        gpu=1,
    log:
        "logs/imagenet/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/imagenet/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_imagenet --index {input.data} --arch {wildcards.student_arch}"
        " --grid {params.grid:q} {params.teacher} --recipe {params.recipe:q} {params.input} --seed {wildcards.seed}"
        " --threads {threads} --tag role=student --tag teacher={wildcards.teacher_name}"
        " --tag student={wildcards.student_arch} --out-dir $(dirname {output.model}) 2> {log}"


rule imagenet_summary:
    input:
        teachers=expand(rules.imagenet_teacher.output.metrics, teacher_name=trained_teachers("imagenet")),
        students=[rules.imagenet_student.output.metrics.format(student_arch=student, teacher_name=teacher,
                                                               variant=variant, seed=seed)
                  for student, teacher, variant, seed in matrix.student_runs(IMAGENET)],
        code=CODE["aggregate"],
    output:
        table=f"{IMAGENET_DIR}/summary.csv",
        metrics=f"{IMAGENET_DIR}/metrics.json",
        selected=f"{IMAGENET_DIR}/selected.csv",
    params:
        score=TRACK_RECORDS["imagenet"].score,
    log:
        "logs/imagenet/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --select-by {params.score}"
        " --out {output.table} --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <phase>` builds one phase (and what it needs).
rule imagenet_data_phase:
    input:
        IMAGENET_DATA,


rule imagenet_teachers_phase:
    input:
        rules.imagenet_summary.input.teachers,


rule imagenet_students_phase:
    input:
        rules.imagenet_summary.input.students,
