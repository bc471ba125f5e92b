"""Markdown tables of the benchmark results in results/benchmarks/ (what the READMEs quote).

    python benchmarks/summarize.py            # engine ratios, sweep and precision tables
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "benchmarks"


def _load(pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) | {"file": p.name} for p in sorted(OUT.glob(pattern))]


def engine_table() -> str:
    rows = ["| network (batch, T) | device, threads | load at start | a loop | b SpikingJelly | c ours | d dense | "
            "c/d (<= 1.10) | c/d paired median | c/b (<= 1) | a/c | plan | allocator | commit |", "|" + "---|" * 14]
    for d in _load("engine_*.json"):
        s, r, m = d["seconds"], d["ratios"], d["machine"]
        dense = min(s["d_dense_relu_T_forwards"], s["d_dense_relu_TB_batch"])
        b = s.get("b_spikingjelly")
        paired = r.get("c_over_d paired median over rounds")
        rows.append(
            f"| {d['model']} ({d['batch']}, {d['T']}) | {m['device']}, {m['threads']} | "
            f"{m.get('load_average_at_start', ['?'])[0]:.2f} | {s['a_per_step_loop']:.3f} s | "
            + (f"{b:.3f} s" if b else "not installed") + f" | {s['c_ours']:.3f} s | {dense:.3f} s | "
            f"{s['c_ours'] / dense:.2f} | " + (f"{paired:.2f}" if paired else "-") + " | "
            + (f"{s['c_ours'] / b:.2f}" if b else "-")
            + f" | {s['a_per_step_loop'] / s['c_ours']:.2f} | chunk {d['plan']['chunk']} | "
            f"{_allocator(m)} | {d['git_commit']} |")
    return "\n".join(rows)


def _allocator(machine: dict) -> str:
    a = machine.get("allocator", "glibc default")
    return "keeps freed memory" if a.startswith("glibc mallopt") else "glibc default"


def sweep_table() -> str:
    rows = ["| network (batch, T) | methods | combined (ours) | separate (ours) | separate (per-step loop) | "
            "separate ours / combined | loop / combined | step-count bound |", "|" + "---|" * 8]
    for d in _load("engine_*.json"):
        s, r, sw = d["seconds"], d["ratios"], d.get("sweep") or {}
        if "sweep_combined_ours" not in s:
            continue
        rows.append(
            f"| {d['model']} ({d['batch']}, {d['T']}) | QCFS + SRP tau {sw['methods'][1:]} | "
            f"{s['sweep_combined_ours']:.3f} s | {s['sweep_separate_ours']:.3f} s | "
            f"{s['sweep_separate_per_step_loop']:.3f} s | "
            f"{s['sweep_separate_ours'] / s['sweep_combined_ours']:.2f} | "
            f"{s['sweep_separate_per_step_loop'] / s['sweep_combined_ours']:.2f} | "
            f"{sw['steps_separate'] / sw['steps_combined']:.2f} |")
    return "\n".join(rows)


def precision_table() -> str:
    rows = ["| experiment | variant | seconds | tau | accuracy at T=64 | max abs accuracy change over T (pp) | "
            "images whose prediction differs at T=64 |", "|" + "---|" * 7]
    for d in _load("precision_*.json"):
        for variant, by_tau in d["results"].items():
            for tau, r in by_tau.items():
                rows.append(f"| {d['experiment']} ({d['n_images']} images) | {variant} | {d['seconds'][variant]:.1f} | "
                            f"{tau} | {100 * r['accuracy_at'][str(d['T_max'])]:.1f} | "
                            f"{100 * r['max_abs_accuracy_diff_vs_fp32']:.1f} | {r['images_differing_at_T_max']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print("## engine\n\n" + engine_table() + "\n\n## sweep\n\n" + sweep_table() + "\n\n## precision\n\n"
          + precision_table())
