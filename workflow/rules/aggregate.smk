rule aggregate:
    input:
        train=train_reports(),
        evals=eval_reports(),
        outcomes=outcome_files(),  # read through the reports' `outcomes` names
    output:
        csv=f"{RES}/results.csv",
        table=f"{RES}/table.md",
        table_html=report(f"{RES}/table.html", caption="../report/table.rst", category="Tables"),
        png=report(f"{RES}/accuracy_vs_T.png", caption="../report/accuracy_vs_T.rst", category="Plots"),
        svg=f"{RES}/accuracy_vs_T.svg",
        eff_table=f"{RES}/efficiency.md",
        eff_table_html=report(f"{RES}/efficiency.html", caption="../report/efficiency.rst", category="Efficiency"),
        eff_png=report(f"{RES}/accuracy_vs_energy.png", caption="../report/efficiency.rst", category="Efficiency"),
        eff_svg=f"{RES}/accuracy_vs_energy.svg",
        claims=f"{RES}/claims.md",
        claims_html=report(f"{RES}/claims.html", caption="../report/claims.rst", category="Claims"),
        claims_csv=f"{RES}/claims.csv",
        methods=f"{RES}/methods.md",
        methods_html=report(f"{RES}/methods.html", caption="../report/methods.rst", category="Methods"),
        latency_png=report(f"{RES}/accuracy_vs_latency.png", caption="../report/methods.rst", category="Methods"),
    log:
        f"{LOGS}/aggregate.log",
    localrule: True
    conda:
        "../envs/snnlib.yaml"
    params:
        config=run_config,
        out=out_folder,
    shell:
        "python -m snnlib aggregate --config {params.config:q} --train-reports {input.train:q} "
        "--eval-reports {input.evals:q} --out {params.out:q} > {log:q} 2>&1"


# The run's rows against the committed reference (results/<name>/): identical, within tolerance, or different.
rule verify:
    input:
        csv=f"{RES}/results.csv",
    output:
        md=f"{RES}/verification.md",
        html=report(f"{RES}/verification.html", caption="../report/verification.rst", category="Verification"),
    log:
        f"{LOGS}/verify.log",
    localrule: True
    conda:
        "../envs/snnlib.yaml"
    params:
        run=lambda wildcards, input: str(Path(input.csv).parent),
        reference=REF,
    shell:
        "python -m snnlib verify --run {params.run:q} --reference {params.reference:q} "
        "--out {output.md:q} --no-fail > {log:q} 2>&1"


# A proxy run's curves beside the papers' curves of the network it stands in for (experiments with beside_paper).
rule beside_papers:
    input:
        csv=f"{RES}/results.csv",
    output:
        png=report(
            f"{RES}/beside_papers.png",
            caption="../report/beside_papers.rst",
            category="Plots",
        ),
        svg=f"{RES}/beside_papers.svg",
    log:
        f"{LOGS}/beside_papers.log",
    localrule: True
    conda:
        "../envs/snnlib.yaml"
    params:
        config=run_config,
    shell:
        "python -m snnlib beside-papers --config {params.config:q} --rows {input.csv:q} "
        "--plots {output.png:q} {output.svg:q} > {log:q} 2>&1"
