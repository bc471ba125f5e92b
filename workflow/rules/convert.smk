# One job per (experiment, seed, conversion): the SNN a method evaluates (SRP and COS run QCFS's).
rule convert:
    input:
        ann=ann_of_conversion,
    output:
        snn=f"{RES}/{{exp}}/seed{{seed}}/snn/{{conversion}}.pt",
        report=f"{RES}/{{exp}}/seed{{seed}}/snn/{{conversion}}.json",
    log:
        f"{LOGS}/convert/{{exp}}_seed{{seed}}_{{conversion}}.log",
    benchmark:
        f"{LOGS}/benchmarks/convert/{{exp}}_seed{{seed}}_{{conversion}}.tsv"
    conda:
        "../envs/snnlib.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=run_config,
        recipe=conversion_hash,
    shell:
        "python -m snnlib convert --config {params.config:q} --experiment {wildcards.exp:q} "
        "--seed {wildcards.seed} --conversion {wildcards.conversion:q} --threads {threads} "
        "--ann {input.ann:q} --out {output.snn:q} --report {output.report:q} > {log:q} 2>&1"
