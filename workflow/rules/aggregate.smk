rule aggregate:
    input:
        train=train_reports(),
        evals=eval_reports(),
    output:
        csv=f"{RES}/results.csv",
        table=report(f"{RES}/table.md", caption="../report/table.rst", category="Tables"),
        png=report(f"{RES}/accuracy_vs_T.png", caption="../report/accuracy_vs_T.rst", category="Plots"),
        svg=f"{RES}/accuracy_vs_T.svg",
        eff_table=report(f"{RES}/efficiency.md", caption="../report/efficiency.rst", category="Efficiency"),
        eff_png=report(f"{RES}/accuracy_vs_energy.png", caption="../report/efficiency.rst", category="Efficiency"),
        eff_svg=f"{RES}/accuracy_vs_energy.svg",
    log:
        f"{LOGS}/aggregate.log",
    params:
        config=CFG_ARGS,
    localrule: True
    shell:
        "{PY} -m snnlib aggregate {params.config} --train-reports {input.train} "
        "--eval-reports {input.evals} --csv {output.csv} --markdown {output.table} "
        "--plots {output.png} {output.svg} --efficiency-markdown {output.eff_table} "
        "--efficiency-plots {output.eff_png} {output.eff_svg} > {log} 2>&1"
