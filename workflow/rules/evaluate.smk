# One job per (experiment, seed, method): every variant of the method (SRP: every tau, from one simulation that
# shares the plain prefix) at every T <= T_max, with the prediction of every evaluation image at every T.
rule evaluate:
    input:
        snn=snn_of_method,
    output:
        report=f"{RES}/{{exp}}/seed{{seed}}/eval/{{method}}.json",
        outcomes=f"{RES}/{{exp}}/seed{{seed}}/eval/{{method}}.npz",
    log:
        f"{LOGS}/evaluate/{{exp}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate/{{exp}}_seed{{seed}}_{{method}}.tsv"
    conda:
        "../envs/snnlib.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        config=run_config,
        recipe=exp_hash,
    shell:
        "python -m snnlib evaluate --config {params.config:q} --experiment {wildcards.exp:q} "
        "--seed {wildcards.seed} --method {wildcards.method:q} --threads {threads} "
        "--snn {input.snn:q} --report {output.report:q} --outcomes {output.outcomes:q} "
        "> {log:q} 2>&1"
