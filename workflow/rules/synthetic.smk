# The synthetic study (NOTES §3): for each class correlation γ, data -> teacher -> the student
# matrix (every method's grid, stacked, per seed) -> one summary table.
# Each phase writes under its own folder, so that DVC can version each phase as one output.

GAMMAS = [gamma_label(g) for g in SYN["data"]["gammas"]]


rule synthetic_dataset:
    input:
        code=CODE["prepare"],
    output:
        f"{SYN_DIR}/data/gamma{{gamma}}.pt",
    params:
        data=SYN["data"],
        link_a=" ".join(map(str, SYN["data"]["link_a"])),
        link_b=" ".join(map(str, SYN["data"]["link_b"])),
    log:
        "logs/synthetic/data/gamma{gamma}.log",
    shell:
        "python -m partialkd.prepare synthetic --gamma {wildcards.gamma}"
        " --num-classes {params.data[num_classes]} --num-groups {params.data[num_groups]}"
        " --dim {params.data[dim]} --beta {params.data[beta]} --link-a {params.link_a}"
        " --link-b {params.link_b}"
        " --world-seed {params.data[world_seed]} --train-size {params.data[sizes][train]}"
        " --valid-size {params.data[sizes][valid]} --test-size {params.data[sizes][test]}"
        " --out {output} 2> {log}"


rule synthetic_teacher:
    input:
        data=rules.synthetic_dataset.output,
        code=CODE["train"],
    output:
        model=f"{SYN_DIR}/teachers/gamma{{gamma}}/mlp/model.pt",
        metrics=f"{SYN_DIR}/teachers/gamma{{gamma}}/mlp/metrics.json",
    params:
        training=training_args(SYN["teacher"]),
        grid=json.dumps({"ce": {}}),
        seed=SYN["teacher"]["seed"],
    log:
        "logs/synthetic/teachers/gamma{gamma}/mlp.log",
    benchmark:
        "benchmarks/synthetic/teachers/gamma{gamma}/mlp.tsv"
    threads: 1
    shell:
        "python -m partialkd.train --data {input.data} --grid {params.grid:q} {params.training}"
        " --seed {params.seed} --threads {threads} --tag role=teacher --tag teacher=mlp"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule synthetic_student_stack:
    input:
        data=rules.synthetic_dataset.output,
        teacher=teacher_model,
        code=CODE["train"],
    output:
        model=f"{SYN_DIR}/students/gamma{{gamma}}/{{teacher}}/seed{{seed}}/model.pt",
        metrics=f"{SYN_DIR}/students/gamma{{gamma}}/{{teacher}}/seed{{seed}}/metrics.json",
    params:
        training=training_args(SYN["student"]),
        grid=json.dumps(SYN["methods"]),
        train_size=SYN["student"]["train_size"],
        tau=lambda w: "" if SYN["student"]["tau_squared"] else "--no-tau-squared",
        teacher=lambda w, input: input.teacher or "oracle",
    log:
        "logs/synthetic/students/gamma{gamma}/{teacher}/seed{seed}.log",
    benchmark:
        "benchmarks/synthetic/students/gamma{gamma}/{teacher}/seed{seed}.tsv"
    threads: 1
    shell:
        "python -m partialkd.train --data {input.data} --teacher {params.teacher}"
        " --grid {params.grid:q} {params.training} --train-size {params.train_size} {params.tau}"
        " --seed {wildcards.seed} --threads {threads}"
        " --tag role=student --tag teacher={wildcards.teacher}"
        " --out-dir $(dirname {output.model}) 2> {log}"


rule synthetic_summary:
    input:
        teachers=expand(rules.synthetic_teacher.output.metrics, gamma=GAMMAS),
        students=expand(rules.synthetic_student_stack.output.metrics, gamma=GAMMAS,
                        teacher=SYN["teachers"], seed=SYN["student"]["seeds"]),
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
        expand(rules.synthetic_dataset.output, gamma=GAMMAS),


rule synthetic_teachers_phase:
    input:
        rules.synthetic_summary.input.teachers,


rule synthetic_students_phase:
    input:
        rules.synthetic_summary.input.students,
