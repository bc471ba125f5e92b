# `snakemake paper_tables`: every paper table regenerated beside whatever results exist, without training anything.
from glob import glob


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
    log:
        "logs/paper_tables.log",
    localrule: True
    shell:
        "{PY} -m snnlib paper-tables --results {input.results} --configs {input.configs} "
        "--out results/paper_tables > {log} 2>&1"
