# `snakemake paper_tables`: every paper table regenerated beside whatever results exist, without training anything.
from glob import glob

from snnlib.paper_report import output_files

PAPER_OUT = output_files()


def existing_results():
    found = sorted(set(glob("results/*/results.csv") + glob("results/*/*/results.csv")))
    return [p for p in found if "/smoke/" not in p]


rule paper_tables:
    input:
        results=existing_results(),
        configs=sorted(glob("config/papers/*.yaml")),
    output:
        table=report("results/paper_tables/paper_tables.md", caption="../report/paper_tables.rst",
                     category="Paper tables"),
        csv="results/paper_tables/comparison.csv",
        plots=report(PAPER_OUT["accuracy_plots"], caption="../report/paper_tables.rst", category="Paper tables"),
        svgs=PAPER_OUT["accuracy_svgs"],
        efficiency=report(PAPER_OUT["efficiency_tables"], caption="../report/efficiency.rst",
                          category="Paper tables"),
        energy=report(PAPER_OUT["energy_plots"], caption="../report/efficiency.rst", category="Paper tables"),
    log:
        "logs/paper_tables.log",
    localrule: True
    shell:
        "{PY} -m snnlib paper-tables --results {input.results} --configs {input.configs} "
        "--out results/paper_tables > {log} 2>&1"
