# `snakemake --report report.html`: one self-contained HTML file with every table and plot marked report(...) in
# the rules, each with its caption from workflow/report/*.rst. Snakemake renders a caption as a Jinja2 template
# that sees the writing job's `snakemake.config`, `.input`, `.output`, `.params`, `.wildcards` and `.rule`. The
# resolved config (defaults merged, budget applied) lives only in CFG, so the facts the captions state (T vs
# tau + T, seeds, budget, the energy cost table) go into `config` here. `config` is no rerun trigger (Snakemake's
# are mtime, params, input, code and software-env), so this never reruns a job.
import os as _os
from glob import glob as _glob

from snnlib.report_facts import caption_facts, results_files_facts

# the config as the user would name it: relative to the workflow's root where it lies inside it
_config_shown = _os.path.relpath(_os.path.abspath(CONFIG_PATH), workflow.basedir)
if _config_shown.startswith(".."):
    _config_shown = CONFIG_PATH
config["report_facts"] = caption_facts(CFG, _config_shown, RES)
# for captions of jobs that read other runs' results.csv (the papers' tables): config, budget, seeds per file
config["report_facts"]["results_files"] = {
    r["path"]: r for r in results_files_facts(sorted(set(_glob("results/*/results.csv") +
                                                          _glob("results/*/*/results.csv"))))}


report: "../report/workflow.rst"
