# `snakemake paper_tables`: every paper table regenerated beside whatever committed results exist, without
# training anything (existing_results, paper_configs: this repository's results/ and config/papers/).
from snnlib.paper_report import output_files

PAPER_OUT = output_files()


rule paper_tables:
    input:
        results=existing_results,
        configs=paper_configs(),
    output:
        table=report(
            "results/paper_tables/paper_tables.md",
            caption="../report/paper_tables.rst",
            category="Paper tables",
        ),
        csv="results/paper_tables/comparison.csv",
        plots=report(PAPER_OUT["accuracy_plots"], caption="../report/paper_tables.rst", category="Paper tables"),
        svgs=PAPER_OUT["accuracy_svgs"],
        efficiency=report(PAPER_OUT["efficiency_tables"], caption="../report/efficiency.rst", category="Paper tables"),
        energy=report(PAPER_OUT["energy_plots"], caption="../report/efficiency.rst", category="Paper tables"),
    log:
        "logs/paper_tables.log",
    localrule: True
    conda:
        "../envs/snnlib.yaml"
    params:
        out=out_folder,
    shell:
        "python -m snnlib paper-tables --results {input.results:q} --configs {input.configs:q} "
        "--out {params.out:q} > {log:q} 2>&1"
