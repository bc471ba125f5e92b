"""What the captions of `snakemake --report` state, computed from a resolved config (snnlib.config.load_config).

Snakemake renders every caption (workflow/report/*.rst) as a Jinja2 template that sees, for the job that wrote the
file, `snakemake.config`, `snakemake.input`, `snakemake.output`, `snakemake.params`, `snakemake.wildcards` and
`snakemake.rule` (the global description, workflow/report/workflow.rst, sees `snakemake.config` only). The resolved
config (defaults merged, the budget's overrides applied) exists only in the workflow's `CFG`, so
workflow/rules/report.smk puts `caption_facts(...)` into Snakemake's `config` under "report_facts". Plain data
(strings, numbers, lists, dicts) only; no Snakemake import here.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .metrics import HOROWITZ_45NM_FP32


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _training(exp: dict) -> str:
    if "cq" in exp["methods"]:
        stages = exp["cq"]["stages"]
        text = "CQ stages " + ", ".join(f"{k} {_plural(v, 'epoch')}" for k, v in stages.items())
    else:
        text = _plural(exp["train"]["epochs"], "epoch")
    n = exp["train"].get("max_samples")
    return text + (f" on {n} training images" if n else " on the full training set")


def _evaluation(exp: dict) -> str:
    ev = exp["eval"]
    if ev.get("test_per_class"):
        images = f"{ev['test_per_class']} test images per class (class-balanced, subset seed {ev['subset_seed']})"
    elif ev.get("max_samples"):
        images = f"{ev['max_samples']} test images (subset seed {ev['subset_seed']})"
    else:
        images = "the full test set"
    steps = f"T = 1..{ev['T_max']}"
    methods = "; ".join(name + (f" {settings}" if settings else "") for name, settings in exp["methods"].items())
    return f"{images}, {steps}; methods: {methods}"


def _label(exp: dict) -> str:
    if "cq" in exp["methods"]:
        method = f"CQ T={exp['cq']['T']}"
    else:
        method = f"QCFS L={exp['activation']['L']}"
    return f"{exp['model']} on {exp['dataset']}, {method}"


def _budget(cfg: dict, config_path: str) -> str:
    """One sentence on the budget the run used, or that the config has none."""
    budgets = list(cfg.get("budgets") or {})
    if not budgets:
        return f"No budgets: {config_path} defines none, so every experiment runs as the config writes it."
    return (f"Budget ``{cfg['budget']}``, one of {', '.join(budgets)} (the config's default_budget is "
            f"``{cfg.get('default_budget')}``; choose one with ``--config budget=<name>``).")


def caption_facts(cfg: dict, config_path: str, results_dir: str) -> dict:
    """The facts the captions state for one run of `cfg` whose results go to `results_dir` (results/<run_name>)."""
    experiments = []
    for exp_id, exp in cfg["experiments"].items():
        runs = [{"seed": s, "dir": f"{results_dir}/{exp_id}/seed{s}/"} for s in exp["seeds"]]
        experiments.append({
            "id": exp_id,
            "label": _label(exp),
            "method": "cq" if "cq" in exp["methods"] else "qcfs",
            "methods": list(exp["methods"]),
            "seeds": list(exp["seeds"]),
            "runs": runs,
            "training": _training(exp),
            "evaluation": _evaluation(exp),
            # one RST line for the captions' run lists; the caption appends the seeds that fed the job
            "summary": f"``{exp_id}`` ({_label(exp)}): trained {_training(exp)}; evaluated on {_evaluation(exp)}",
        })
    # the table the efficiency stage prices with: the config's `energy_costs` where the schema has it, else the default
    costs = {**HOROWITZ_45NM_FP32, **(cfg.get("energy_costs") or {})}
    return {
        "name": cfg["name"],
        "run_name": cfg["run_name"],
        "config_path": str(config_path),
        "results_dir": results_dir,
        "budget": cfg.get("budget"),
        "budgets": list(cfg.get("budgets") or {}),
        "budget_text": _budget(cfg, str(config_path)),
        "report_T": list(cfg.get("report_T") or []),
        "costs": {"mac_pj": costs["mac_pj"], "ac_pj": costs["ac_pj"], "source": costs["source"],
                  "is_default": costs == HOROWITZ_45NM_FP32},
        "default_costs": dict(HOROWITZ_45NM_FP32),
        "experiments": experiments,
    }


def results_files_facts(paths) -> list[dict]:
    """For each results/<config>[/<budget>]/results.csv: its config, budget and, per experiment, the seeds that
    actually ran (read from its `experiment` and `seed` columns). For the caption of the papers' tables, which draw
    on every results file there is."""
    out = []
    for p in paths:
        parts = Path(p).parts
        if "results" in parts[:-1]:  # from the results folder on, however the path reaches it (../, absolute)
            parts = parts[len(parts) - 1 - parts[::-1].index("results"):]
        budget = parts[-2] if len(parts) >= 4 else None
        config = parts[-3] if budget else parts[-2] if len(parts) >= 2 else str(p)
        seeds: dict[str, set] = {}
        try:
            with open(p, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("experiment") and row.get("seed", "") != "":
                        seeds.setdefault(row["experiment"], set()).add(int(float(row["seed"])))
            runs = "; ".join(f"{e}: seeds {', '.join(str(s) for s in sorted(v))}" for e, v in seeds.items())
        except (OSError, ValueError, csv.Error) as e:
            runs = f"unreadable ({type(e).__name__})"
        out.append({"path": str(p), "config": config, "budget": budget or "no budgets", "runs": runs or "no rows"})
    return out
