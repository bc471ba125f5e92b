"""Pipeline stage for the unevenness-error analysis (unevenness.py): one job per trained network whose
experiment runs a method that declares the analysis (SRP: before and after its pre-run)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from .config import get_experiment
from .experiment_data import eval_subset, input_fn, test_data
from .methods import get_method
from .progress import Progress
from .provenance import provenance
from .stages import identity, load_snn, write_json
from .unevenness import CATEGORIES, analyse

LOG = logging.getLogger(__name__)

NOTE = ("Categories compare each neuron's emitted rate with the rate it would emit had the same total input "
        "arrived evenly (QCFS with L = T on its mean input). The split into these four categories is our "
        "reconstruction of the SRP paper's analysis (its definitions were not available); the quantities are "
        "exact for the simulated network.")


def run_unevenness(cfg, exp_id, seed, method_name: str, snn_path: Path, out_report: Path, images: int,
                   T_grid: list[int], device, log=None, workers: int | None = None) -> dict:
    log = log or LOG.info
    exp = get_experiment(cfg, exp_id)
    method = get_method(method_name)
    settings = exp["methods"][method_name]
    taus, rule = [0] + sorted(settings["taus"]), settings["rule"]
    t0 = time.time()
    test = test_data(cfg, exp, device, workers)
    idx = eval_subset(exp, test.labels)[:images]
    snn = load_snn(cfg, exp_id, seed, method.conversion, snn_path, device)
    xb = input_fn(exp, device)(test.images(idx))  # only these images are decoded (ImageNet)
    grid = sorted(t for t in T_grid if t <= exp["eval"]["T_max"])
    rows = []
    progress = Progress(f"unevenness of {len(idx)} images at T in {grid}", len(taus), log, unit="tau values",
                        every_s=0)  # a line per tau: each is a whole simulation
    for tau in taus:
        rows += analyse(snn, xb, max(grid), grid, tau, rule)["layers"]
        progress.update(1, f"tau={tau} done")
    report = {**identity(cfg, exp_id, seed, method.recipe), "method": method_name, "n_images": int(len(idx)),
              "srp_rule": rule, "categories": list(CATEGORIES), "note": NOTE, "rows": rows,
              "wall_s": time.time() - t0, "provenance": provenance(device)}
    write_json(out_report, report)
    return report
