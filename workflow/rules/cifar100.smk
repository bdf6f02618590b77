# The CIFAR-100 track (NOTES §4): download and split -> teachers (trained once, then frozen) ->
# the student matrix (pair × method grid point × seed, one job each, one GPU each) -> summary.
# GPU jobs go through `partialkd.gpu_slots`, which gives each running job its own device; the
# device is chosen at run time, never written into params or shell text.

rule cifar100_dataset:
    input:
        code=CODE["prepare:cifar100"],
    output:
        CIFAR_DATA,
    params:
        data=CIFAR["data"],
        root=(f"--torchvision-root {CIFAR['data']['torchvision_root']}"
              if CIFAR["data"]["torchvision_root"] else ""),
        file_md5=" ".join(f"--file-md5 {name}={md5}" for name, md5 in CIFAR["data"]["file_md5"].items()),
    log:
        "logs/cifar100/data.log",
    shell:
        "python -m partialkd.prepare cifar100 {params.root} {params.file_md5}"
        " --archive {params.data[archive]} --url {params.data[url]}"
        " --md5 {params.data[md5]} --valid-size {params.data[valid_size]}"
        " --split-seed {params.data[split_seed]} --out {output} 2> {log}"


rule cifar100_teacher:
    input:
        data=CIFAR_DATA,
        code=CODE["train_images"],
    output:
        model=f"{CIFAR_DIR}/teachers/{{teacher_name}}/model.pt",
        metrics=f"{CIFAR_DIR}/teachers/{{teacher_name}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join(CIFAR["teachers"]),
    params:
        arch=lambda w: CIFAR["teachers"][w.teacher_name]["arch"],
        grid=lambda w: json.dumps(CIFAR["teachers"][w.teacher_name]["target"]),
        recipe=lambda w: json.dumps(teacher_recipe(CIFAR, w.teacher_name)),
        seed=CIFAR["teacher_seed"],
    resources:
        gpu=1,
    log:
        "logs/cifar100/teachers/{teacher_name}.log",
    benchmark:
        "benchmarks/cifar100/teachers/{teacher_name}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_images --data {input.data} --arch {params.arch}"
        " --grid {params.grid:q} --recipe {params.recipe:q} --seed {params.seed} --threads {threads}"
        " --tag role=teacher --tag teacher={wildcards.teacher_name} --tag student={params.arch}"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule cifar100_student:
    input:
        data=CIFAR_DATA,
        teacher=cifar_teacher_model,
        code=CODE["train_images"],
    output:
        model=f"{CIFAR_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/model.pt",
        metrics=f"{CIFAR_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join([NO_TEACHER, *CIFAR["teachers"]]),
        variant="|".join(re.escape(slug) for slug in CIFAR_VARIANTS),
    params:
        grid=lambda w: json.dumps(CIFAR_VARIANTS[w.variant].to_grid()),
        recipe=json.dumps(CIFAR["recipe"]),
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
    resources:
        gpu=1,
    log:
        "logs/cifar100/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/cifar100/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_images --data {input.data} --arch {wildcards.student_arch}"
        " --grid {params.grid:q} {params.teacher} --recipe {params.recipe:q} --seed {wildcards.seed}"
        " --threads {threads} --tag role=student --tag teacher={wildcards.teacher_name}"
        " --tag student={wildcards.student_arch} --out-dir $(dirname {output.model}) 2> {log}"


rule cifar100_summary:
    input:
        teachers=expand(rules.cifar100_teacher.output.metrics, teacher_name=CIFAR_TEACHERS),
        students=[rules.cifar100_student.output.metrics.format(student_arch=student, teacher_name=teacher,
                                                               variant=variant, seed=seed)
                  for student, teacher, variant, seed in matrix.student_runs(CIFAR)],
        code=CODE["aggregate"],
    output:
        table=f"{CIFAR_DIR}/summary.csv",
        metrics=f"{CIFAR_DIR}/metrics.json",
        selected=f"{CIFAR_DIR}/selected.csv",
    log:
        "logs/cifar100/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --out {output.table}"
        " --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <phase>` builds one phase (and what it needs).
rule cifar100_data_phase:
    input:
        CIFAR_DATA,


rule cifar100_teachers_phase:
    input:
        rules.cifar100_summary.input.teachers,


rule cifar100_students_phase:
    input:
        rules.cifar100_summary.input.students,
