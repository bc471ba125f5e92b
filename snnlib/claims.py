"""The papers' claims, judged on our runs by paired tests on the same images (docs/statistics.md).

Every claim compares two outcomes per evaluated image (correct or not; or agreeing with a reference or not) of
the same images, for every seed that ran. Seeds are pooled: each (seed, image) pair is one paired observation
(stats.compare_paired). A claim over several cells (several T, several tau) adjusts their p-values by Holm.

  superiority claims ("A beats B"): exact McNemar per cell; `supported` only if every cell goes the claimed way
                                    and stays significant after Holm; `contradicted` if a cell is significant the
                                    other way; otherwise `not significant`.
  equivalence claims ("A matches B within m pp"): `supported` if every cell's paired 95% interval (Bonferroni
                                    widened over the cells) lies inside +-m; `contradicted` if one lies entirely
                                    outside; otherwise `not significant` (this sample cannot tell).

Claims are generic over the method registry: "beats the plain run" is judged for every method with a pre-run
(SRP's tau, COS's rho) against the plain run of the SNN it evaluates, at the same read-out steps (the papers'
framing) and at the same total latency t_pre + T (the fair framing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from . import outcomes
from .methods import get_method
from .stats import compare_paired, equivalence_verdict, superiority_verdict

LOW_T = (1, 2, 4)
MATCH_ANN_MARGIN = 0.01      # 1 pp: "the SNN matches the QCFS ANN near T = L"
CQ_LOSSLESS_MARGIN = 0.001   # 0.1 pp: CQ's "near lossless" claim
LOW_BITS_MARGIN = 0.01       # 1 pp: "9- and 8-bit weights cost little" (CQ's abstract: -0.01 and -0.62 pp)


@dataclass
class Run:
    """One experiment's per-image outcomes over its seeds."""
    experiment: str
    seeds: list[int]
    evals: dict[tuple[int, str], outcomes.Outcomes]      # (seed, method) -> predictions per variant
    anns: dict[tuple[int, str], outcomes.Outcomes]       # (seed, recipe) -> predictions per view
    reports: dict[str, dict]                              # method -> one evaluation report (variants, T_max)
    exp_config: dict

    def stacked(self, method: str, variant: str, T: int) -> np.ndarray | None:
        """bool [seeds, N]: correct after T read-out steps, one row per seed (None if any seed lacks it)."""
        out = []
        for s in self.seeds:
            o = self.evals.get((s, method))
            if o is None or variant not in o.predictions or T > o.predictions[variant].shape[0]:
                return None
            out.append(o.correct(variant)[T - 1])
        return np.stack(out)

    def predictions(self, method: str, variant: str, T: int) -> np.ndarray:
        return np.stack([self.evals[(s, method)].predictions[variant][T - 1] for s in self.seeds])

    def ann(self, recipe: str, view: str, correct: bool = True) -> np.ndarray | None:
        out = []
        for s in self.seeds:
            o = self.anns.get((s, recipe))
            if o is None or view not in o.predictions:
                return None
            out.append(o.correct(view) if correct else o.predictions[view])
        return np.stack(out)


def load_runs(trained: list[tuple[dict, Path]], evaluated: list[tuple[dict, Path]]) -> list[Run]:
    """(report, the folder it lies in) of every training and evaluation: outcomes lie beside their reports."""
    runs: dict[str, Run] = {}
    for r, folder in trained:
        run = runs.setdefault(r["experiment"], Run(r["experiment"], [], {}, {}, {}, r.get("experiment_config", {})))
        run.anns[(r["seed"], r["recipe"])] = outcomes.load(folder / r["outcomes"])
        if r["seed"] not in run.seeds:
            run.seeds.append(r["seed"])
    for ev, folder in evaluated:
        if ev["provenance"].get("fixture_data"):
            continue
        run = runs[ev["experiment"]]
        run.evals[(ev["seed"], ev["method"])] = outcomes.load(folder / ev["outcomes"])
        run.reports[ev["method"]] = ev
    for run in runs.values():
        run.seeds.sort()
        first = next(iter(run.evals.values()), None)
        for key, o in [*run.evals.items(), *run.anns.items()]:
            if first is not None and not o.same_images(first):
                raise ValueError(f"{run.experiment} {key}: its outcomes are not on the same images as the others; "
                                 "paired tests need every method evaluated on the same test subset")
    return [r for r in runs.values() if r.evals]


def _cell(name: str, a: np.ndarray | None, b: np.ndarray | None):
    """(cell name, paired comparison of A and B), or None where either side did not run."""
    if a is None or b is None:
        return None
    return name, compare_paired(a, b)


def _fmt_cells(details: list[dict]) -> str:
    parts = []
    for d in details:
        text = (f"{d['name']}: {100 * d['delta']:+.2f} pp [{100 * d['ci'][0]:+.2f}, {100 * d['ci'][1]:+.2f}], "
                f"b/c {d['b']}/{d['c']}, p {d['p']:.3g}")
        if "p_holm" in d:
            text += f" (Holm {d['p_holm']:.3g})"
        parts.append(text)
    return "; ".join(parts)


def _detail_dicts(named, details) -> list[dict]:
    out = []
    for (name, cmp), d in zip(named, details):
        row = {"name": name, "delta": cmp.delta, "ci": tuple(cmp.ci), "b": cmp.b, "c": cmp.c, "p": cmp.p,
               "n_pairs": cmp.n_pairs}
        if "p_holm" in d:  # superiority: Holm-adjusted across the claim's cells
            row["p_holm"] = d["p_holm"]
        if "ci" in d:  # equivalence: the interval widened over the cells
            row["ci"] = tuple(d["ci"])
        out.append(row)
    return out


def judge(run: Run) -> list[dict]:
    """Every claim this run's methods allow, each with its verdict and per-cell evidence."""
    claims = []

    def add(claim: str, kind: str, cmps: list, margin: float | None = None, note: str = ""):
        named = [c for c in cmps if c is not None]
        if not named:
            return
        cmps = [c for _, c in named]
        if kind == "superiority":
            verdict, details = superiority_verdict(cmps)
        else:
            verdict, details = equivalence_verdict(cmps, margin)
        cells = _detail_dicts(named, details)
        if kind == "superiority" and verdict == "not significant":
            hits = [c["name"] for c, d in zip(cells, details) if d.get("significant") and d.get("agrees")]
            if hits:  # say where it does hold: a claim over several cells can hold in some of them
                note = (note + "; " if note else "") + (f"significant in {len(hits)} of {len(cells)} cells "
                                                        f"(after Holm): {', '.join(hits)}")
        claims.append({"experiment": run.experiment, "claim": claim, "kind": kind, "margin": margin,
                       "verdict": verdict, "seeds": len(run.seeds), "n_pairs": cmps[0].n_pairs,
                       "evidence": _fmt_cells(cells), "cells": cells, "note": note})

    for method, ev in run.reports.items():
        m = get_method(method)
        pre = [v for v in ev["variants"] if v["t_pre"] > 0]
        plain_method = m.conversion
        if pre and plain_method in run.reports:
            same_T, same_latency = [], []
            for v in pre:
                for T in LOW_T:
                    a = run.stacked(method, v["key"], T)
                    same_T.append(_cell(f"{v['key']} T={T}", a, run.stacked(plain_method, "", T)))
                    same_latency.append(_cell(f"{v['key']} T={T} vs plain T={v['t_pre'] + T}", a,
                                              run.stacked(plain_method, "", v["t_pre"] + T)))
            name = m.summary.replace("SNN, ", "")
            add(f"{name} beats plain {plain_method.upper()} at the same read-out steps T <= 4 (the paper's framing)",
                "superiority", same_T)
            add(f"{name} beats plain {plain_method.upper()} at the same total latency t_pre + T (the fair framing)",
                "superiority", same_latency)

    if "qcfs" in run.reports:
        L = run.exp_config.get("activation", {}).get("L")
        ann_q, ann_c = run.ann("qcfs", "ann_quantized"), run.ann("qcfs", "ann_clip")
        T_max = run.reports["qcfs"]["T_max"]
        if L and L <= T_max and ann_q is not None:
            snn = run.stacked("qcfs", "", L)
            add(f"The SNN matches the QCFS ANN near T = L (T = {L}, within {100 * MATCH_ANN_MARGIN:g} pp)",
                "equivalence", [_cell(f"T={L}", snn, ann_q)], MATCH_ANN_MARGIN)
        if ann_q is not None and ann_c is not None:
            pred = run.predictions("qcfs", "", T_max)
            agree_clip = pred == run.ann("qcfs", "ann_clip", correct=False)
            agree_qcfs = pred == run.ann("qcfs", "ann_quantized", correct=False)
            add(f"As T grows the SNN converges to the clip network rather than the QCFS ANN (T = {T_max}: agreement "
                "of predictions)", "superiority", [_cell(f"T={T_max} agree(clip) vs agree(QCFS ANN)", agree_clip,
                                                         agree_qcfs)],
                note="no discordant images means the two ANNs agree wherever it matters: not decidable here")

    if "cq" in run.reports:
        ev = run.reports["cq"]
        T_max = ev["T_max"]
        ann_q = run.ann("cq", "ann_quantized")
        if ann_q is not None:
            add(f"CQ's SNN is within {100 * CQ_LOSSLESS_MARGIN:g} pp of its ANN at large T (T = {T_max})",
                "equivalence", [_cell(f"T={T_max}", run.stacked("cq", "", T_max), ann_q)], CQ_LOSSLESS_MARGIN)
        low = [v for v in ev["variants"] if v["params"].get("weight_bits", 32) != 32]
        if low:
            add(f"{' and '.join(str(v['params']['weight_bits']) for v in low)}-bit weights cost little (within "
                f"{100 * LOW_BITS_MARGIN:g} pp of float32 at T = {T_max}; CQ's abstract: 93.43 and 92.82 vs 93.44)",
                "equivalence", [_cell(f"{v['params']['weight_bits']}-bit", run.stacked("cq", v["key"], T_max),
                                      run.stacked("cq", "", T_max)) for v in low], LOW_BITS_MARGIN)
    return claims


def claims_frame(claims: list[dict]) -> pd.DataFrame:
    cols = ["experiment", "claim", "kind", "margin", "verdict", "seeds", "n_pairs", "evidence", "note"]
    return pd.DataFrame([{k: c.get(k) for k in cols} for c in claims], columns=cols)


def claims_markdown(claims: list[dict], title: str) -> str:
    parts = [f"# {title}: the papers' claims, decided by paired tests", "",
             "Each claim compares two outcomes of the same evaluation images (every seed's, pooled: each (seed, "
             "image) is one pair). Evidence per cell: difference A - B in pp with its 95% paired interval "
             "(Newcombe), the discordant pairs b (A right, B wrong) / c (A wrong, B right), the exact McNemar p, "
             "and the Holm-adjusted p across the claim's cells. `supported` needs every cell significant in the "
             "claimed direction (superiority) or inside the margin (equivalence); `contradicted` means a "
             "significant result the other way (or outside the margin); otherwise `not significant`: these runs "
             "cannot tell. Generated by the pipeline; do not edit by hand.", ""]
    if not claims:
        return "\n".join(parts + ["No claim applies to the methods this config runs.", ""])
    body = [[c["experiment"], c["claim"], f"**{c['verdict']}**" + (f" ({c['note']})" if c.get("note") and
                                                                  "significant in" in c["note"] else ""),
             c["seeds"], c["n_pairs"], c["evidence"]] for c in claims]
    parts.append(tabulate(body, headers=["experiment", "claim", "verdict", "seeds", "pairs", "evidence"],
                          tablefmt="github", disable_numparse=True))
    return "\n".join(parts) + "\n"
