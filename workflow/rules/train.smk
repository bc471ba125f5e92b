# One job per (experiment, seed, training recipe): the networks the experiment's methods convert. Its log is
# appended to, so that it keeps every attempt of a job that was stopped (time limit, preemption, kill) and resumed:
# where each stopped, and where the next resumed (snnlib/preemption.py).
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
        "--outcomes {output.outcomes:q} >> {log:q} 2>&1"
