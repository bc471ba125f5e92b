"""Training throughput and simulation time of a finished run, from its stage reports (the GPU proxy's record).

Training: images per second over the epochs' own time (data path, augmentation, forward, backward, optimizer;
the per-epoch test pass and checkpointing excluded). Evaluation: wall time of each method's whole sweep, and
images x T_max per second of it.
"""
from __future__ import annotations

import json
from pathlib import Path


def throughput_record(run_dir: Path, wall_s: float | None = None) -> dict:
    run_dir = Path(run_dir)
    train, evals, machine = [], [], None
    for path in sorted(run_dir.glob("*/seed*/*/ann.json")):
        r = json.loads(path.read_text())
        machine = machine or r["provenance"]
        epochs = len(r.get("history", []))
        seconds = float(r.get("epoch_seconds") or 0.0)
        train.append({"experiment": r["experiment"], "seed": r["seed"], "model": r["model"], "recipe": r["recipe"],
                      "epochs": epochs, "train_samples": r["train_samples"], "epoch_seconds": seconds,
                      "train_img_per_s": r["train_samples"] * epochs / seconds if seconds > 0 else None,
                      "train_wall_s": r["train_wall_s"], "device": r["provenance"]["device"]})
    for path in sorted(run_dir.glob("*/seed*/eval/*.json")):
        r = json.loads(path.read_text())
        machine = machine or r["provenance"]
        wall = float(r["eval_wall_s"])
        evals.append({"experiment": r["experiment"], "seed": r["seed"], "model": r["model"], "method": r["method"],
                      "n_images": r["n_images"], "T_max": r["T_max"], "variants": len(r["variants"]),
                      "eval_wall_s": wall, "image_steps_per_s": r["n_images"] * r["T_max"] / wall if wall else None,
                      "device": r["provenance"]["device"]})
    if not train and not evals:
        raise FileNotFoundError(f"no stage reports under {run_dir}; run the workflow first")
    return {"what": "training throughput and simulation time of one run, from its stage reports",
            "run": str(run_dir), "workflow_wall_s": wall_s,
            "provenance": machine, "train": train, "evaluate": evals,
            "total_epoch_seconds": sum(t["epoch_seconds"] for t in train),
            "total_eval_seconds": sum(e["eval_wall_s"] for e in evals)}


def write_record(run_dir: Path, out: Path, wall_s: float | None = None) -> dict:
    record = throughput_record(run_dir, wall_s)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record
