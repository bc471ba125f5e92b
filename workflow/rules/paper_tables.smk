# `snakemake paper_tables`: every paper table regenerated beside whatever committed results exist, without
# training anything (existing_results, paper_configs: this repository's results/ and config/papers/).
from snnlib.paper_report import output_files

PAPER_OUT = output_files(existing_results(), paper_configs())


rule paper_tables:
    input:
        results=existing_results,
        configs=paper_configs(),
    output:
        table="results/paper_tables/paper_tables.md",
        table_html=report(
            "results/paper_tables/paper_tables.html",
            caption="../report/paper_tables.rst",
            category="Paper tables",
        ),
        csv="results/paper_tables/comparison.csv",
        plots=report(PAPER_OUT["accuracy_plots"], caption="../report/paper_tables.rst", category="Paper tables"),
        svgs=PAPER_OUT["accuracy_svgs"],
        efficiency=PAPER_OUT["efficiency_tables"],
        # only the tables some run of ours regenerates have an efficiency page with data and an energy plot
        efficiency_html=report(
            PAPER_OUT["measured_efficiency_pages"], caption="../report/efficiency.rst", category="Paper tables"
        ),
        efficiency_html_unmeasured=PAPER_OUT["unmeasured_efficiency_pages"],
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
