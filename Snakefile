# Users run `snakemake` from the repository root; the workflow is workflow/Snakefile (the Snakemake workflow
# catalog's layout). This includes it as the main Snakefile: an `include:` directive would drop its default target
# (rule all), as Snakemake keeps the including file's.
workflow.include("workflow/Snakefile", overwrite_default_target=True)
