# One job per (model, tau): tau = 0 is plain QCFS; tau > 0 runs SRP's pre-run, then the masked T-sweep.
rule evaluate:
    input:
        snn=f"{RES}/{{exp}}/seed{{seed}}/snn.pt",
    output:
        report=f"{RES}/{{exp}}/seed{{seed}}/eval/tau{{tau}}.json",
    log:
        f"{LOGS}/evaluate/{{exp}}_seed{{seed}}_tau{{tau}}.log",
    benchmark:
        f"{LOGS}/benchmarks/evaluate/{{exp}}_seed{{seed}}_tau{{tau}}.tsv"
    params:
        config=CFG_ARGS,
        recipe=exp_hash,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{PY} -m snnlib evaluate {params.config} --experiment {wildcards.exp} --seed {wildcards.seed} "
        "--tau {wildcards.tau} --threads {threads} --snn {input.snn} --report {output.report} > {log} 2>&1"
