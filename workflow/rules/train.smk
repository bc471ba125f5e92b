# One job per (experiment, seed, training recipe): the networks the experiment's methods convert.
rule train:
    output:
        model=f"{RES}/{{exp}}/seed{{seed}}/{{recipe}}/ann.pt",
        report=f"{RES}/{{exp}}/seed{{seed}}/{{recipe}}/ann.json",
        outcomes=f"{RES}/{{exp}}/seed{{seed}}/{{recipe}}/ann_outcomes.npz",
    log:
        f"{LOGS}/train/{{exp}}_seed{{seed}}_{{recipe}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/{{exp}}_seed{{seed}}_{{recipe}}.tsv"
    params:
        config=cfg_args,
        recipe_hash=train_hash,  # a changed recipe reruns the job
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{PY:q} -m snnlib train {params.config:q} --experiment {wildcards.exp:q} --seed {wildcards.seed} "
        "--recipe {wildcards.recipe:q} --threads {threads} --out {output.model:q} --report {output.report:q} "
        "--outcomes {output.outcomes:q} > {log:q} 2>&1"
