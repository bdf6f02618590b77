# The synthetic study (NOTES §3): for each class correlation γ and world (its own templates,
# samples and teacher: the claims' unit, issue 12), data -> teacher -> the student matrix (every
# method's grid, stacked, per seed) -> one summary table.
# Each phase writes under its own folder, so that DVC can version each phase as one output.

GAMMAS = [gamma_label(g) for g in SYN["data"]["gammas"]]
WORLDS = SYN["data"]["world_seeds"]
SYN_STUDENTS = {architecture["name"]: architecture for architecture in SYN["student"]["architectures"]}
SYN_LEAD_STUDENT = next(iter(SYN_STUDENTS))  # its students lead the report's tables and claims


rule synthetic_dataset:
    input:
        code=CODE["prepare:synthetic"],
    output:
        f"{SYN_DIR}/data/gamma{{gamma}}/world{{world}}.pt",
    params:
        data=SYN["data"],
        link_a=" ".join(map(str, SYN["data"]["link_a"])),
        link_b=" ".join(map(str, SYN["data"]["link_b"])),
    log:
        "logs/synthetic/data/gamma{gamma}/world{world}.log",
    shell:
        "python -m partialkd.prepare synthetic --gamma {wildcards.gamma}"
        " --num-classes {params.data[num_classes]} --num-groups {params.data[num_groups]}"
        " --dim {params.data[dim]} --beta {params.data[beta]} --link-a {params.link_a}"
        " --link-b {params.link_b}"
        " --world-seed {wildcards.world} --train-size {params.data[sizes][train]}"
        " --valid-size {params.data[sizes][valid]} --test-size {params.data[sizes][test]}"
        " --out {output} 2> {log}"


rule synthetic_teacher:
    input:
        data=rules.synthetic_dataset.output,
        code=CODE["train:synthetic"],
    output:
        model=f"{SYN_DIR}/teachers/gamma{{gamma}}/world{{world}}/mlp/model.pt",
        metrics=f"{SYN_DIR}/teachers/gamma{{gamma}}/world{{world}}/mlp/metrics.json",
    params:
        recipe=json.dumps(stacked_recipe(SYN["teacher"])),
        grid=json.dumps({"ce": {}}),
    log:
        "logs/synthetic/teachers/gamma{gamma}/world{world}/mlp.log",
    benchmark:
        "benchmarks/synthetic/teachers/gamma{gamma}/world{world}/mlp.tsv"
    threads: 1
    shell:  # the world's teacher trains from the world's seed
        "python -m partialkd.train --data {input.data} --grid {params.grid:q} --recipe {params.recipe:q}"
        " --seed {wildcards.world} --threads {threads} --tag role=teacher --tag teacher=mlp"
        " --tag world={wildcards.world} --out-dir $(dirname {output.model}) 2> {log}"


rule synthetic_student_stack:
    input:
        data=rules.synthetic_dataset.output,
        teacher=teacher_model,
        code=CODE["train:synthetic"],
    output:
        model=f"{SYN_DIR}/students/gamma{{gamma}}/world{{world}}/{{teacher}}/{{student}}/seed{{seed}}/model.pt",
        metrics=f"{SYN_DIR}/students/gamma{{gamma}}/world{{world}}/{{teacher}}/{{student}}/seed{{seed}}/metrics.json",
    wildcard_constraints:
        student="|".join(SYN_STUDENTS),
    params:
        recipe=lambda w: json.dumps(stacked_recipe(SYN["student"], SYN_STUDENTS[w.student])),
        grid=json.dumps(SYN["methods"]),
        teacher=lambda w, input: input.teacher or "oracle",
    log:
        "logs/synthetic/students/gamma{gamma}/world{world}/{teacher}/{student}/seed{seed}.log",
    benchmark:
        "benchmarks/synthetic/students/gamma{gamma}/world{world}/{teacher}/{student}/seed{seed}.tsv"
    threads: 1
    shell:
        "python -m partialkd.train --data {input.data} --teacher {params.teacher}"
        " --grid {params.grid:q} --recipe {params.recipe:q}"
        " --seed {wildcards.seed} --threads {threads}"
        " --tag role=student --tag teacher={wildcards.teacher} --tag student={wildcards.student}"
        " --tag world={wildcards.world}"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule synthetic_summary:
    input:
        teachers=expand(rules.synthetic_teacher.output.metrics, gamma=GAMMAS, world=WORLDS),
        students=expand(rules.synthetic_student_stack.output.metrics, gamma=GAMMAS, world=WORLDS,
                        teacher=SYN["teachers"], student=SYN_STUDENTS, seed=SYN["student"]["seeds"]),
        code=CODE["aggregate"],
    output:
        table=f"{SYN_DIR}/summary.csv",
        metrics=f"{SYN_DIR}/metrics.json",
        selected=f"{SYN_DIR}/selected.csv",
    log:
        "logs/synthetic/summary.log",
    shell:
        "python -m partialkd.aggregate {input.teachers} {input.students} --out {output.table}"
        " --metrics-out {output.metrics} --selected-out {output.selected} 2> {log}"


# Phase targets: `snakemake <phase>` builds one phase (and what it needs); dvc.yaml runs these.
rule synthetic_data_phase:
    input:
        expand(rules.synthetic_dataset.output, gamma=GAMMAS, world=WORLDS),


rule synthetic_teachers_phase:
    input:
        rules.synthetic_summary.input.teachers,


rule synthetic_students_phase:
    input:
        rules.synthetic_summary.input.students,


rule synthetic_summary_phase:
    input:
        rules.synthetic_summary.output,
