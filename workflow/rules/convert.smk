rule convert:
    input:
        ann=f"{RES}/{{exp}}/seed{{seed}}/ann.pt",
    output:
        snn=f"{RES}/{{exp}}/seed{{seed}}/snn.pt",
        report=f"{RES}/{{exp}}/seed{{seed}}/snn.json",
    log:
        f"{LOGS}/convert/{{exp}}_seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/convert/{{exp}}_seed{{seed}}.tsv"
    params:
        config=CFG_ARGS,
        recipe=train_hash,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{PY} -m snnlib convert {params.config} --experiment {wildcards.exp} --seed {wildcards.seed} "
        "--threads {threads} --ann {input.ann} --out {output.snn} --report {output.report} > {log} 2>&1"
