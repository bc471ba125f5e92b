"""Command line of the harness: `python -m snnlib <stage> ...`. The Snakemake rules are one call each."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .atomic import WriteError, is_disk_full
from .checkpoint import CheckpointError
from .config import ConfigError, load_config
from .conversion import ConversionError
from .data import DatasetNotFoundError, DataVerificationError


def _common(p: argparse.ArgumentParser, seed=True) -> None:
    p.add_argument("--config", required=True, help="config YAML (e.g. config/default.yaml)")
    p.add_argument("--budget", default=None, help="the config's budget (paper, reduced, smoke, ...)")
    p.add_argument("--experiment", required=True, help="experiment id inside the config")
    if seed:
        p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader processes decoding a streamed dataset (ImageNet); default: the config's "
                        "data_workers, else one per torch thread")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snnlib", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check-config", help="validate a config and list its experiments")
    p.add_argument("config")
    p.add_argument("--budget", default=None)
    p = sub.add_parser("train", help="train the QCFS ANN")
    _common(p)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p = sub.add_parser("convert", help="convert the trained ANN to an IF-neuron SNN")
    _common(p)
    p.add_argument("--ann", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p = sub.add_parser("evaluate", help="T-sweep of the SNN (tau=0: QCFS, tau>0: SRP)")
    _common(p)
    p.add_argument("--tau", type=int, required=True)
    p.add_argument("--snn", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p = sub.add_parser("unevenness", help="per-layer unevenness-error categories, before and after SRP")
    _common(p)
    p.add_argument("--snn", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p.add_argument("--images", type=int, default=200)
    p = sub.add_parser("aggregate-unevenness", help="table + plot of the unevenness analysis")
    p.add_argument("--config", required=True)
    p.add_argument("--budget", default=None)
    p.add_argument("--reports", nargs="+", required=True, type=Path)
    p.add_argument("--markdown", required=True, type=Path)
    p.add_argument("--plots", nargs="+", required=True, type=Path)
    p = sub.add_parser("paper-tables", help="regenerate the papers' tables beside our results (no training)")
    p.add_argument("--results", nargs="*", default=[], type=Path, help="results.csv files (smoke budgets ignored)")
    p.add_argument("--configs", nargs="+", required=True, type=Path, help="configs with `paper` references")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tolerance-pp", type=float, default=1.0)
    p = sub.add_parser("aggregate", help="result rows, markdown table and plots from stage reports")
    p.add_argument("--config", required=True)
    p.add_argument("--budget", default=None)
    p.add_argument("--train-reports", nargs="+", required=True, type=Path)
    p.add_argument("--eval-reports", nargs="+", required=True, type=Path)
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--markdown", required=True, type=Path)
    p.add_argument("--plots", nargs="+", required=True, type=Path)
    p.add_argument("--efficiency-markdown", type=Path, default=None)
    p.add_argument("--efficiency-plots", nargs="*", type=Path, default=[])
    args = ap.parse_args(argv)
    if getattr(args, "workers", None) is not None and args.workers < 0:
        ap.error(f"--workers must be >= 0, got {args.workers}")

    if args.cmd == "paper-tables":
        from .paper_report import regenerate
        try:
            regenerate(args.results, args.configs, args.out, args.tolerance_pp)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}/paper_tables.md")
        return 0
    try:
        cfg = load_config(args.config, args.budget)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cmd == "check-config":
        if cfg["budget"]:
            print(f"budget {cfg['budget']} (of {', '.join(cfg['budgets'])}); results in results/{cfg['run_name']}/")
        for exp_id, exp in cfg["experiments"].items():
            print(f"{exp_id}: {exp['model']} on {exp['dataset']}, seeds {exp['seeds']}, taus {exp['eval']['taus']}")
        return 0
    if args.cmd == "aggregate":
        from .efficiency_report import efficiency_markdown, plot_accuracy_vs_energy
        from .report import markdown_report, plot_accuracy_vs_T, read_reports, result_rows
        rows = result_rows(read_reports(args.train_reports), read_reports(args.eval_reports), cfg["energy_costs"])
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.csv, index=False)
        title = f"{cfg['name']}: {cfg.get('description', '')}".strip().rstrip(":")
        args.markdown.write_text(markdown_report(rows, cfg["report_T"], title))
        plot_accuracy_vs_T(rows, args.plots, title)
        if args.efficiency_markdown:
            args.efficiency_markdown.write_text(efficiency_markdown(rows, cfg["report_T"], f"{title}: efficiency"))
        if args.efficiency_plots:
            plot_accuracy_vs_energy(rows, args.efficiency_plots, title, cfg["report_T"])
        print(f"wrote {args.csv}, {args.markdown}, {', '.join(map(str, args.plots))}")
        return 0

    if args.cmd == "aggregate-unevenness":
        from .report import read_reports
        from .unevenness_report import plot_unevenness, unevenness_markdown
        reports = read_reports(args.reports)
        args.markdown.write_text(unevenness_markdown(reports, cfg["name"]))
        plot_unevenness(reports, args.plots, cfg["name"])
        return 0

    from . import stages
    from .provenance import pick_device
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        if args.cmd == "train":
            stages.run_train(cfg, args.experiment, args.seed, args.out, args.report, device, log, args.workers)
        elif args.cmd == "convert":
            stages.run_convert(cfg, args.experiment, args.seed, args.ann, args.out, args.report, device, log)
        elif args.cmd == "unevenness":
            from .analysis_stage import run_unevenness
            run_unevenness(cfg, args.experiment, args.seed, args.snn, args.report, args.images, cfg["report_T"],
                           device, log, args.workers)
        elif args.cmd == "evaluate":
            stages.run_evaluate(cfg, args.experiment, args.seed, args.tau, args.snn, args.report, device, log,
                                args.workers)
    except (ConfigError, CheckpointError, WriteError, DatasetNotFoundError, DataVerificationError,
            ConversionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if not is_disk_full(e):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error: no space left{where} ({e.strerror}); free some space and rerun", file=sys.stderr)
        return 1
    return 0
