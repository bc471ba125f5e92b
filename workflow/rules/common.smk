# The run's config, its folders, and the input functions of the rules.
#
# The config is Snakemake's `config`: config/config.yaml, a --configfile (a module's `config:`), and every
# `--config key=value` merged last. One schema (workflow/schemas/config.schema.yaml) validates all of it, the
# command line included, before any job runs; when nothing names experiments, the keys given are run settings for
# config/default.yaml (snnlib.config.workflow_config). Every value a shell line uses comes from input, output,
# params or wildcards and is quoted there with {..:q}; names the schema admits are [A-Za-z0-9_.-].
import sys
from pathlib import Path

# this repository's snnlib, also when the workflow is a module of another one (workflow/rules/ -> the root)
sys.path.insert(0, str(Path(str(workflow.current_basedir)).parents[1]))
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from snnlib.config import (
    ConfigError,
    experiment_hash,
    recipes_of,
    run_config_file,
    training_hash,
    workflow_config,
    write_run_config,
)
from snnlib.methods import conversion_owner, get_method
from snnlib.smk import paper_configs, put_python_on_path, reference_dir, reference_results

# `python` in the rules is the interpreter running Snakemake (or, with --sdm conda, workflow/envs/snnlib.yaml's)
_python_warning = put_python_on_path()
if _python_warning:
    logger.warning(_python_warning)

try:
    RUN = workflow_config(
        config,
        workflow.config_settings.config,
        [*workflow.configfiles, *workflow.overwrite_configfiles],
    )
except ConfigError as e:
    raise WorkflowError(str(e))
CFG = RUN.cfg
for _note in CFG["run_notes"]:
    logger.warning(f"Note: {_note}")
NAME = CFG["run_name"]
# what this run makes (git-ignored) and the committed reference it is verified against
RES = f"runs/{NAME}"
REF = reference_dir(NAME)
LOGS = f"logs/{NAME}"
# The config every job reads (python -m snnlib ... --config): the config with the run's settings merged in, written
# here, named by its content (runs/<name>/config-<digest>.yaml).
RUN_CONFIG = run_config_file(RUN.raw, RES)
write_run_config(RUN.raw, RUN_CONFIG, RUN.source)


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    seed=r"\d+",
    recipe="[a-z0-9_]+",
    conversion="[a-z0-9_]+",
    method="[a-z0-9_]+",


def run_config(wildcards, input):
    """The params entry `config` of every job: RUN_CONFIG. A function of `input`, i.e. a derived param, which
    Snakemake never counts as a rerun trigger: the file's name changes with any setting (device included), while a
    job reruns only when its own hash param (what determines its result) changes."""
    return RUN_CONFIG


def exp_hash(wildcards):
    return experiment_hash(CFG["experiments"][wildcards.exp])


def train_hash(wildcards):
    return training_hash(CFG["experiments"][wildcards.exp], wildcards.recipe)


def conversion_hash(wildcards):
    exp = CFG["experiments"][wildcards.exp]
    owner = conversion_owner(wildcards.conversion)
    return f"{training_hash(exp, owner.recipe)}-{exp['methods'].get(wildcards.conversion)}"


def runs():
    """(experiment, seed) pairs of the config."""
    return [(e, s) for e, exp in CFG["experiments"].items() for s in exp["seeds"]]


def ann_of_conversion(wildcards):
    recipe = conversion_owner(wildcards.conversion).recipe
    return f"{RES}/{wildcards.exp}/seed{wildcards.seed}/{recipe}/ann.pt"


def snn_of_method(wildcards):
    conversion = get_method(wildcards.method).conversion
    return f"{RES}/{wildcards.exp}/seed{wildcards.seed}/snn/{conversion}.pt"


def train_reports():
    return [f"{RES}/{e}/seed{s}/{r}/ann.json" for e, s in runs() for r in recipes_of(CFG["experiments"][e])]


def eval_reports():
    return [f"{RES}/{e}/seed{s}/eval/{m}.json" for e, s in runs() for m in CFG["experiments"][e]["methods"]]


def outcome_files():
    """Every per-image outcomes file the aggregate reads beside the reports (the claims' paired tests): a changed
    or damaged one must make it run again."""
    return [f"{RES}/{e}/seed{s}/{r}/ann_outcomes.npz" for e, s in runs() for r in recipes_of(CFG["experiments"][e])] + [
        f"{RES}/{e}/seed{s}/eval/{m}.npz" for e, s in runs() for m in CFG["experiments"][e]["methods"]
    ]


def unevenness_reports():
    """The unevenness analysis runs on the SNN of every method that declares it (SRP: before and after its
    pre-run)."""
    return [
        f"{RES}/{e}/seed{s}/unevenness/{m}.json"
        for e, s in runs()
        for m in CFG["experiments"][e]["methods"]
        if "unevenness" in get_method(m).analyses
    ]


def aggregate_outputs():
    names = [
        "results.csv",
        "table.md",
        "table.html",
        "accuracy_vs_T.png",
        "accuracy_vs_T.svg",
        "efficiency.md",
        "efficiency.html",
        "accuracy_vs_energy.png",
        "accuracy_vs_energy.svg",
        "claims.md",
        "claims.html",
        "claims.csv",
        "methods.md",
        "methods.html",
        "accuracy_vs_latency.png",
    ]
    if unevenness_reports():
        names += ["unevenness.md", "unevenness.html", "unevenness.png", "unevenness.svg"]
    if any("beside_paper" in exp for exp in CFG["experiments"].values()):
        names += ["beside_papers.png", "beside_papers.svg"]
    return [f"{RES}/{n}" for n in names]


def existing_results(wildcards=None):
    """The committed references the paper tables compare with the papers (smoke budgets never count)."""
    return reference_results()


def out_folder(wildcards, output):
    """The folder of a rule's first output (where a stage writes its several files)."""
    return str(Path(output[0]).parent)
