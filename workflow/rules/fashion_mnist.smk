# The Fashion-MNIST track (NOTES §4), the real-image track that runs offline: prepare (a user
# folder, Debian's files, or the download) -> CNN teachers (plain, label-smoothed, larger; each
# trained once per teacher seed, then frozen) -> MLP students on the pixels, each (teacher,
# teacher seed, seed) one stack of every method the pair trains (like the synthetic track) ->
# summary. The teacher seeds are the claims' unit (issue 12): a student's results depend on its
# teacher, and C9/C12 compare kinds of teachers, not two networks.

rule fashion_mnist_dataset:
    input:
        code=CODE["prepare:fashion_mnist"],
    output:
        FMNIST_DATA,
    params:
        data=FMNIST["data"],
        user_dir=lambda w: f"--dir {FMNIST['data']['dir']}" if FMNIST["data"]["dir"] else "",
        root=(f"--torchvision-root {FMNIST['data']['torchvision_root']}"
              if FMNIST["data"]["torchvision_root"] else ""),
        md5=" ".join(f"--md5 {name}={md5}" for name, md5 in FMNIST["data"]["md5"].items()),
    log:
        "logs/fashion_mnist/data.log",
    shell:
        "python -m partialkd.prepare fashion_mnist {params.user_dir} {params.root} {params.md5}"
        " --debian-dir {params.data[debian_dir]} --download-dir {params.data[download_dir]}"
        " --url {params.data[url]} --valid-size {params.data[valid_size]}"
        " --split-seed {params.data[split_seed]} --out {output} 2> {log}"


rule fashion_mnist_teacher:
    input:
        data=FMNIST_DATA,
        code=CODE["train_images"],
    output:
        model=f"{FMNIST_DIR}/teachers/{{teacher_name}}/teacher_seed{{teacher_seed}}/model.pt",
        metrics=f"{FMNIST_DIR}/teachers/{{teacher_name}}/teacher_seed{{teacher_seed}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join(FMNIST["teachers"]),
        teacher_seed=r"\d+",
    params:
        arch=lambda w: FMNIST["teachers"][w.teacher_name]["arch"],
        grid=lambda w: json.dumps(FMNIST["teachers"][w.teacher_name]["target"]),
        recipe=lambda w: json.dumps(teacher_recipe(FMNIST, w.teacher_name)),
    resources:
        gpu=1,
    log:
        "logs/fashion_mnist/teachers/{teacher_name}/teacher_seed{teacher_seed}.log",
    benchmark:
        "benchmarks/fashion_mnist/teachers/{teacher_name}/teacher_seed{teacher_seed}.tsv"
    shell:
        "python -m partialkd.gpu_slots --gpus {resources.gpu} --"
        " python -m partialkd.train_images --data {input.data} --arch {params.arch}"
        " --grid {params.grid:q} --recipe {params.recipe:q} --seed {wildcards.teacher_seed} --threads {threads}"
        " --tag role=teacher --tag teacher={wildcards.teacher_name} --tag student={params.arch}"
        " --tag teacher_seed={wildcards.teacher_seed} --out-dir $(dirname {output.model}) 2> {log}"


rule fashion_mnist_student_stack:
    input:
        data=FMNIST_DATA,
        teacher=rules.fashion_mnist_teacher.output.model,
        code=CODE["train:fashion_mnist"],
    output:
        model=f"{FMNIST_DIR}/students/{{student_arch}}/{{teacher_name}}/teacher_seed{{teacher_seed}}/seed{{seed}}/model.pt",
        metrics=f"{FMNIST_DIR}/students/{{student_arch}}/{{teacher_name}}/teacher_seed{{teacher_seed}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        teacher_name="|".join(FMNIST["teachers"]),
        student_arch="|".join(FMNIST["students"]["architectures"]),
        teacher_seed=r"\d+",
    params:
        recipe=lambda w: json.dumps(stacked_recipe(FMNIST["students"]["training"],
                                                 FMNIST["students"]["architectures"][w.student_arch])),
        grid=lambda w: json.dumps(fmnist_pair_methods(w.teacher_name, w.student_arch)),
    log:
        "logs/fashion_mnist/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}.log",
    benchmark:
        "benchmarks/fashion_mnist/students/{student_arch}/{teacher_name}/teacher_seed{teacher_seed}/seed{seed}.tsv"
    threads: 1
    shell:
        "python -m partialkd.train --data {input.data} --teacher {input.teacher}"
        " --grid {params.grid:q} --recipe {params.recipe:q} --seed {wildcards.seed} --threads {threads}"
        " --tag role=student --tag teacher={wildcards.teacher_name} --tag student={wildcards.student_arch}"
        " --tag teacher_seed={wildcards.teacher_seed} --out-dir $(dirname {output.model}) 2> {log}"


rule fashion_mnist_summary:
    input:
        teachers=expand(rules.fashion_mnist_teacher.output.metrics, teacher_name=FMNIST_TEACHERS,
                        teacher_seed=FMNIST["teacher_seeds"]),
        students=[rules.fashion_mnist_student_stack.output.metrics.format(
                      student_arch=pair["student"], teacher_name=pair["teacher"], teacher_seed=teacher_seed,
                      seed=seed)
                  for pair in FMNIST["students"]["pairs"] for teacher_seed in FMNIST["teacher_seeds"]
                  for seed in FMNIST["students"]["seeds"]],
        code=CODE["aggregate"],
    output:
        table=f"{FMNIST_DIR}/summary.csv",
        metrics=f"{FMNIST_DIR}/metrics.json",
        selected=f"{FMNIST_DIR}/selected.csv",
    log:
        "logs/fashion_mnist/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --out {output.table}"
        " --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <phase>` builds one phase (and what it needs).
rule fashion_mnist_data_phase:
    input:
        FMNIST_DATA,


rule fashion_mnist_teachers_phase:
    input:
        rules.fashion_mnist_summary.input.teachers,


rule fashion_mnist_students_phase:
    input:
        rules.fashion_mnist_summary.input.students,
