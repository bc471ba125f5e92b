"""Pipeline stage for the unevenness-error analysis (see unevenness.py): one job per trained QCFS model."""
from __future__ import annotations

import time
from pathlib import Path

from .config import get_experiment
from .provenance import provenance
from .stages import _identity, eval_subset, input_fn, load_data, load_snn, write_json
from .unevenness import CATEGORIES, analyse

NOTE = ("Categories compare each neuron's emitted rate with the rate it would emit had the same total input "
        "arrived evenly (QCFS with L = T on its mean input). The split into these four categories is our "
        "reconstruction of the SRP paper's analysis (its definitions were not available); the quantities are "
        "exact for the simulated network.")


def run_unevenness(cfg, exp_id, seed, snn_path: Path, out_report: Path, images: int, T_grid: list[int], device,
                   log=print, workers: int | None = None) -> dict:
    exp = get_experiment(cfg, exp_id)
    ev = exp["eval"]
    t0 = time.time()
    test = load_data(cfg, exp, "test", ev["subset_seed"], ev["max_samples"], device, workers)
    idx = eval_subset(exp, test.labels)[:images]
    snn, _ = load_snn(exp, snn_path, device)
    xb = input_fn(exp, device)(test.images(idx))  # only these images are decoded (ImageNet)
    grid = sorted(t for t in T_grid if t <= ev["T_max"])
    rows = []
    for tau in ev["taus"]:
        rows += analyse(snn, xb, max(grid), grid, tau, ev["srp_rule"])["layers"]
        log(f"tau={tau}: analysed {len(idx)} images at T in {grid}")
    report = {**_identity(cfg, exp_id, seed), "n_images": int(len(idx)), "srp_rule": ev["srp_rule"],
              "categories": list(CATEGORIES), "note": NOTE, "rows": rows, "wall_s": time.time() - t0,
              "provenance": provenance(device)}
    write_json(out_report, report)
    return report
