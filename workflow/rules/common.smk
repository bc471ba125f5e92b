# Config loading (validated by snnlib against workflow/schemas/config.schema.yaml) and input functions.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))
from snakemake.exceptions import WorkflowError

from snnlib.config import ConfigError, experiment_hash, load_config, training_hash

# One config file at a time: --configfile replaces the default instead of merging into it, so a paper config
# never inherits the default's experiments.
CONFIG_PATH = str(workflow.configfiles[0]) if workflow.configfiles else "config/default.yaml"
# `snakemake --config budget=smoke` picks one of the config's budgets (paper, reduced, smoke, ...).
BUDGET = config.get("budget")
try:
    CFG = load_config(CONFIG_PATH, BUDGET)
except ConfigError as e:
    raise WorkflowError(str(e))
NAME = CFG["run_name"]
RES = f"results/{NAME}"
LOGS = f"logs/{NAME}"
# passed to every `python -m snnlib` call so that each job resolves the same budget
CFG_ARGS = f"--config {CONFIG_PATH}" + (f" --budget {CFG['budget']}" if CFG["budget"] else "")
PY = sys.executable


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    seed=r"\d+",
    tau=r"\d+",


def exp_hash(wildcards):
    return experiment_hash(CFG["experiments"][wildcards.exp])


def train_hash(wildcards):
    return training_hash(CFG["experiments"][wildcards.exp])


def runs():
    """(experiment, seed) pairs of the config."""
    return [(e, s) for e, exp in CFG["experiments"].items() for s in exp["seeds"]]


def train_reports():
    return [f"{RES}/{e}/seed{s}/ann.json" for e, s in runs()]


def eval_reports():
    return [f"{RES}/{e}/seed{s}/eval/tau{t}.json" for e, s in runs()
            for t in CFG["experiments"][e]["eval"]["taus"]]


def unevenness_reports():
    """The unevenness analysis applies to QCFS-trained models (SRP's setting)."""
    return [f"{RES}/{e}/seed{s}/unevenness.json" for e, s in runs()
            if CFG["experiments"][e].get("method", "qcfs") == "qcfs"]


def aggregate_outputs():
    outs = [f"{RES}/results.csv", f"{RES}/table.md", f"{RES}/accuracy_vs_T.png", f"{RES}/accuracy_vs_T.svg",
            f"{RES}/efficiency.md", f"{RES}/accuracy_vs_energy.png", f"{RES}/accuracy_vs_energy.svg"]
    if unevenness_reports():
        outs += [f"{RES}/unevenness.md", f"{RES}/unevenness.png", f"{RES}/unevenness.svg"]
    return outs
