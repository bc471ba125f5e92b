rule train:
    output:
        model=f"{RES}/{{exp}}/seed{{seed}}/ann.pt",
        report=f"{RES}/{{exp}}/seed{{seed}}/ann.json",
    log:
        f"{LOGS}/train/{{exp}}_seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/{{exp}}_seed{{seed}}.tsv"
    params:
        config=CFG_ARGS,
        recipe=train_hash,  # a changed recipe reruns the job
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{PY} -m snnlib train {params.config} --experiment {wildcards.exp} --seed {wildcards.seed} "
        "--threads {threads} --out {output.model} --report {output.report} > {log} 2>&1"
