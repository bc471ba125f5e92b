# ANN-to-SNN conversion harness: train (QCFS ANN) -> convert (IF SNN) -> evaluate (T-sweep, QCFS and SRP)
# -> aggregate (tables + plots). Config: config/default.yaml, or `snakemake --configfile config/<other>.yaml`.
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/paper_tables.smk"


rule all:
    input:
        aggregate_outputs(),
        f"{RES}/verification.md",
    default_target: True
