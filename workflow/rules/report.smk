# `snakemake --report report.html`: one self-contained HTML file with every table and plot marked report(...) in
# the rules, each with its caption from workflow/report/*.rst. Snakemake renders a caption as a Jinja2 template
# that sees the writing job's `snakemake.config`, `.input`, `.output`, `.params`, `.wildcards` and `.rule`. The
# resolved config (defaults merged, budget and run settings applied) lives only in CFG, so the facts the captions
# state (T vs tau + T, seeds, budget, the energy cost table) go into `config` here. `config` is no rerun trigger
# (Snakemake's are mtime, params, input, code and software-env), so this never reruns a job.
from snnlib.report_facts import caption_facts, results_files_facts

config["report_facts"] = caption_facts(CFG, RUN.path, RES)
# for captions of jobs that read other runs' results.csv (the papers' tables): config, budget, seeds per file
config["report_facts"]["results_files"] = {r["path"]: r for r in results_files_facts(existing_results())}


report: "../report/workflow.rst"
