rule aggregate:
    input:
        train=train_reports(),
        evals=eval_reports(),
        outcomes=outcome_files(),  # read through the reports' `outcomes` names
    output:
        csv=f"{RES}/results.csv",
        table=report(f"{RES}/table.md", caption="../report/table.rst", category="Tables"),
        png=report(f"{RES}/accuracy_vs_T.png", caption="../report/accuracy_vs_T.rst", category="Plots"),
        svg=f"{RES}/accuracy_vs_T.svg",
        eff_table=report(f"{RES}/efficiency.md", caption="../report/efficiency.rst", category="Efficiency"),
        eff_png=report(f"{RES}/accuracy_vs_energy.png", caption="../report/efficiency.rst", category="Efficiency"),
        eff_svg=f"{RES}/accuracy_vs_energy.svg",
        claims=report(f"{RES}/claims.md", caption="../report/claims.rst", category="Claims"),
        claims_csv=f"{RES}/claims.csv",
        methods=report(f"{RES}/methods.md", caption="../report/methods.rst", category="Methods"),
        latency_png=report(f"{RES}/accuracy_vs_latency.png", caption="../report/methods.rst", category="Methods"),
    log:
        f"{LOGS}/aggregate.log",
    params:
        config=cfg_args,
    localrule: True
    shell:
        "{PY:q} -m snnlib aggregate {params.config:q} --train-reports {input.train:q} "
        "--eval-reports {input.evals:q} --out {RES:q} > {log:q} 2>&1"


# The run's rows against the committed reference (results/<name>/): identical, within tolerance, or different.
rule verify:
    input:
        csv=f"{RES}/results.csv",
    output:
        report(f"{RES}/verification.md", caption="../report/verification.rst", category="Verification"),
    log:
        f"{LOGS}/verify.log",
    localrule: True
    shell:
        "{PY:q} -m snnlib verify --run {RES:q} --reference {REF:q} --out {output:q} --no-fail > {log:q} 2>&1"


# A proxy run's curves beside the papers' curves of the network it stands in for (experiments with beside_paper).
rule beside_papers:
    input:
        csv=f"{RES}/results.csv",
    output:
        png=report(f"{RES}/beside_papers.png", caption="../report/beside_papers.rst", category="Plots"),
        svg=f"{RES}/beside_papers.svg",
    log:
        f"{LOGS}/beside_papers.log",
    params:
        config=cfg_args,
    localrule: True
    shell:
        "{PY:q} -m snnlib beside-papers {params.config:q} --rows {input.csv:q} --plots {output.png:q} "
        "{output.svg:q} > {log:q} 2>&1"
