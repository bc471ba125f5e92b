# Config loading (validated by snnlib against workflow/schemas/config.schema.yaml) and input functions.
# Every path a shell line uses is quoted there with {..:q}; names the schema admits are [A-Za-z0-9_.-].
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))
from snakemake.exceptions import WorkflowError

from snnlib.config import (ConfigError, conversions_of, experiment_hash, load_config, recipes_of, training_hash)
from snnlib.methods import conversion_owner, get_method

# One config file at a time: --configfile replaces the default instead of merging into it, so a paper config
# never inherits the default's experiments.
CONFIG_PATH = (str(workflow.configfiles[0]) if workflow.configfiles
               else str(Path(workflow.basedir) / "config" / "default.yaml"))
# `snakemake --config budget=smoke` picks one of the config's budgets (paper, reduced, smoke, ...).
BUDGET = config.get("budget")
try:
    CFG = load_config(CONFIG_PATH, BUDGET)
except ConfigError as e:
    raise WorkflowError(str(e))
NAME = CFG["run_name"]
# what this run makes (git-ignored) and the committed reference it is verified against
RES = f"runs/{NAME}"
REF = f"results/{NAME}"
LOGS = f"logs/{NAME}"
PY = sys.executable


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    seed=r"\d+",
    recipe="[a-z0-9_]+",
    conversion="[a-z0-9_]+",
    method="[a-z0-9_]+",


def cfg_args(wildcards=None):
    """The config (and budget) every `python -m snnlib` call gets, so that each job resolves the same budget."""
    return ["--config", CONFIG_PATH] + (["--budget", CFG["budget"]] if CFG["budget"] else [])


def exp_hash(wildcards):
    return experiment_hash(CFG["experiments"][wildcards.exp])


def train_hash(wildcards):
    return training_hash(CFG["experiments"][wildcards.exp], wildcards.recipe)


def conversion_hash(wildcards):
    exp = CFG["experiments"][wildcards.exp]
    owner = conversion_owner(wildcards.conversion)
    return training_hash(exp, owner.recipe) + "-" + str(exp["methods"].get(wildcards.conversion))


def runs():
    """(experiment, seed) pairs of the config."""
    return [(e, s) for e, exp in CFG["experiments"].items() for s in exp["seeds"]]


def ann_of_conversion(wildcards):
    recipe = conversion_owner(wildcards.conversion).recipe
    return f"{RES}/{wildcards.exp}/seed{wildcards.seed}/{recipe}/ann.pt"


def snn_of_method(wildcards):
    return f"{RES}/{wildcards.exp}/seed{wildcards.seed}/snn/{get_method(wildcards.method).conversion}.pt"


def train_reports():
    return [f"{RES}/{e}/seed{s}/{r}/ann.json" for e, s in runs() for r in recipes_of(CFG["experiments"][e])]


def eval_reports():
    return [f"{RES}/{e}/seed{s}/eval/{m}.json" for e, s in runs() for m in CFG["experiments"][e]["methods"]]


def outcome_files():
    """Every per-image outcomes file the aggregate reads beside the reports (the claims' paired tests): a changed
    or damaged one must make it run again."""
    return ([f"{RES}/{e}/seed{s}/{r}/ann_outcomes.npz" for e, s in runs() for r in recipes_of(CFG["experiments"][e])]
            + [f"{RES}/{e}/seed{s}/eval/{m}.npz" for e, s in runs() for m in CFG["experiments"][e]["methods"]])


def unevenness_reports():
    """The unevenness analysis runs on the SNN of every method that declares it (SRP: before and after its
    pre-run)."""
    return [f"{RES}/{e}/seed{s}/unevenness/{m}.json" for e, s in runs() for m in CFG["experiments"][e]["methods"]
            if "unevenness" in get_method(m).analyses]


def aggregate_outputs():
    outs = [f"{RES}/{f}" for f in ("results.csv", "table.md", "accuracy_vs_T.png", "accuracy_vs_T.svg",
                                    "efficiency.md", "accuracy_vs_energy.png", "accuracy_vs_energy.svg",
                                    "claims.md", "claims.csv", "methods.md", "accuracy_vs_latency.png")]
    if unevenness_reports():
        outs += [f"{RES}/unevenness.md", f"{RES}/unevenness.png", f"{RES}/unevenness.svg"]
    if any("beside_paper" in exp for exp in CFG["experiments"].values()):
        outs += [f"{RES}/beside_papers.png", f"{RES}/beside_papers.svg"]
    return outs
