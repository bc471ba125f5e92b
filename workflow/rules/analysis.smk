# The SRP paper's subject: how often, and in which direction, spike-arrival order makes a neuron deviate from
# what even arrival would give, per layer, before and after SRP (QCFS experiments only).
rule unevenness:
    input:
        snn=f"{RES}/{{exp}}/seed{{seed}}/snn.pt",
    output:
        report=f"{RES}/{{exp}}/seed{{seed}}/unevenness.json",
    log:
        f"{LOGS}/unevenness/{{exp}}_seed{{seed}}.log",
    benchmark:
        f"{LOGS}/benchmarks/unevenness/{{exp}}_seed{{seed}}.tsv"
    params:
        config=CFG_ARGS,
        recipe=exp_hash,
        images=200,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{PY} -m snnlib unevenness {params.config} --experiment {wildcards.exp} --seed {wildcards.seed} "
        "--threads {threads} --snn {input.snn} --images {params.images} --report {output.report} > {log} 2>&1"


rule aggregate_unevenness:
    input:
        reports=unevenness_reports(),
    output:
        table=report(f"{RES}/unevenness.md", caption="../report/unevenness.rst", category="Unevenness"),
        png=report(f"{RES}/unevenness.png", caption="../report/unevenness.rst", category="Unevenness"),
        svg=f"{RES}/unevenness.svg",
    log:
        f"{LOGS}/aggregate_unevenness.log",
    params:
        config=CFG_ARGS,
    localrule: True
    shell:
        "{PY} -m snnlib aggregate-unevenness {params.config} --reports {input.reports} "
        "--markdown {output.table} --plots {output.png} {output.svg} > {log} 2>&1"
