# The SRP paper's subject: how often, and in which direction, spike-arrival order makes a neuron deviate from
# what even arrival would give, per layer, before and after SRP (for every method declaring the analysis).
rule unevenness:
    input:
        snn=snn_of_method,
    output:
        report=f"{RES}/{{exp}}/seed{{seed}}/unevenness/{{method}}.json",
    log:
        f"{LOGS}/unevenness/{{exp}}_seed{{seed}}_{{method}}.log",
    benchmark:
        f"{LOGS}/benchmarks/unevenness/{{exp}}_seed{{seed}}_{{method}}.tsv"
    conda:
        "../envs/snnlib.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=run_config,
        recipe=exp_hash,
        images=200,
    shell:
        "python -m snnlib unevenness --config {params.config:q} --experiment {wildcards.exp:q} "
        "--seed {wildcards.seed} --method {wildcards.method:q} --threads {threads} "
        "--snn {input.snn:q} --images {params.images} --report {output.report:q} > {log:q} 2>&1"


rule aggregate_unevenness:
    input:
        reports=unevenness_reports(),
    output:
        table=f"{RES}/unevenness.md",
        table_html=report(f"{RES}/unevenness.html", caption="../report/unevenness.rst", category="Unevenness"),
        png=report(f"{RES}/unevenness.png", caption="../report/unevenness.rst", category="Unevenness"),
        svg=f"{RES}/unevenness.svg",
    log:
        f"{LOGS}/aggregate_unevenness.log",
    localrule: True
    conda:
        "../envs/snnlib.yaml"
    params:
        config=run_config,
    shell:
        "python -m snnlib aggregate-unevenness --config {params.config:q} "
        "--reports {input.reports:q} --markdown {output.table:q} "
        "--plots {output.png:q} {output.svg:q} > {log:q} 2>&1"
