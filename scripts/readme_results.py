"""Copy the committed references' tables into README.md between its RESULTS markers (nothing typed by hand):
the default's accuracy table and claims, and the claims config's claims where its reference exists.
    python scripts/readme_results.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]


def claims_table(ref: Path) -> str:
    claims = pd.read_csv(ref / "claims.csv")
    body = [[r.experiment, r.claim, r.verdict + (f" ({r.note})" if isinstance(r.note, str) and "significant in"
                                                   in r.note else ""), r.seeds, r.n_pairs] for r in claims.itertuples()]
    return tabulate(body, headers=["experiment", "claim", "verdict", "seeds", "pairs"], tablefmt="github",
                    disable_numparse=True)


def block(name: str, ref: Path) -> list[str]:
    meta = json.loads((ref / "reference.json").read_text())
    table = (ref / "table.md").read_text().split("\n")
    body = "\n".join(line.replace("## ", "#### ", 1) if line.startswith("## ") else line
                     for line in table[2:] if not line.startswith("Accuracy in %"))
    return [f"Reference `results/{name}/`, made by `{meta['command']}` on {meta['date'][:10]} "
            f"(commit {', '.join(meta['code'])}, torch {', '.join(meta['torch'])}, {', '.join(meta['cpu'])}); "
            f"copied here by `python scripts/readme_results.py` from `results/{name}/table.md` and `claims.csv`. "
            "Accuracy in %, then the 95% Wilson interval; every method, its energy and latency: "
            f"`results/{name}/methods.md`.", "", body.strip(), "",
            f"**Claims** (`results/{name}/claims.md`, with the per-cell evidence: differences, paired intervals, "
            "discordant counts, exact McNemar and Holm p-values):", "", claims_table(ref), ""]


def main() -> None:
    parts = block("default", ROOT / "results" / "default")
    claims = ROOT / "results" / "claims"
    if (claims / "claims.csv").exists():
        parts += ["### Statistical power: `config/claims.yaml` (3 seeds, full 10k test sets)", "",
                  *block("claims", claims)]
    proxy = ROOT / "results" / "proxy_cpu" / "full"
    if (proxy / "claims.csv").exists():
        parts += ["### The papers' network on two CPU cores: `config/proxy_cpu.yaml` (ResNet-20, PROXY data)", "",
                  "ResNet-20 on Fashion-MNIST padded to 32x32x3 (not CIFAR: never compared with the papers' cells), "
                  "all 60k training and 10k test images, L = 4 and 8, 2 seeds; its curves beside the papers' "
                  "CIFAR-100 ResNet-20 curves: `results/proxy_cpu/full/beside_papers.png`; unevenness: "
                  "`results/proxy_cpu/full/unevenness.md`.", "", *block("proxy_cpu/full", proxy)]
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- RESULTS:BEGIN -->"), readme.index("<!-- RESULTS:END -->")
    (ROOT / "README.md").write_text(readme[:start] + "<!-- RESULTS:BEGIN -->\n" + "\n".join(parts)
                                    + "\n" + readme[end:])


if __name__ == "__main__":
    main()
