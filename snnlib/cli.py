"""Command line of the harness: `python -m snnlib <stage> ...`. The Snakemake rules are one call each.

Progress and log lines go to stderr, timestamped (progress.py); each rule redirects its job's output into
logs/<run name>/<rule>/<job>.log."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .atomic import UnreadableError, WriteError, is_disk_full
from .checkpoint import CheckpointError
from .config import ConfigError, load_config, parse_settings
from .conversion import ConversionError
from .data import DatasetNotFoundError, DataVerificationError
from .methods import UnknownNameError
from .progress import configure as configure_logging


def _common(p: argparse.ArgumentParser, seed=True) -> None:
    p.add_argument("--config", required=True, help="config YAML (e.g. config/default.yaml)")
    p.add_argument("--budget", default=None, help="the config's budget (paper, reduced, smoke, ...)")
    p.add_argument("--experiment", required=True, help="experiment id inside the config")
    if seed:
        p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", default=None, help="auto (cuda if available), cpu, cuda, cuda:1 ... (default: the "
                                                  "config's `device`, else auto)")
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a run setting, as `snakemake --config KEY=VALUE` gives it (budget, seeds, epochs, T_max, "
                        "taus, device); repeatable")
    p.add_argument("--run-name", action="store_true", help="print only where the run goes: runs/<this>/")
    sub.add_parser("methods", help="list the registered methods and training recipes")
    p = sub.add_parser("train", help="train one of the experiment's networks (a training recipe: qcfs, cq, relu)")
    _common(p)
    p.add_argument("--recipe", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p.add_argument("--outcomes", required=True, type=Path, help="the ANN's per-image predictions (.npz)")
    p = sub.add_parser("convert", help="convert a trained ANN to an IF-neuron SNN with a method's conversion")
    _common(p)
    p.add_argument("--conversion", required=True)
    p.add_argument("--ann", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p = sub.add_parser("evaluate", help="T-sweep of one method on its SNN, every variant, per-image outcomes")
    _common(p)
    p.add_argument("--method", required=True)
    p.add_argument("--snn", required=True, type=Path)
    p.add_argument("--report", required=True, type=Path)
    p.add_argument("--outcomes", required=True, type=Path)
    p = sub.add_parser("unevenness", help="per-layer unevenness-error categories, before and after SRP")
    _common(p)
    p.add_argument("--method", required=True)
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
    p = sub.add_parser("aggregate", help="result rows, tables, claims and plots from stage reports")
    p.add_argument("--config", required=True)
    p.add_argument("--budget", default=None)
    p.add_argument("--train-reports", nargs="+", required=True, type=Path)
    p.add_argument("--eval-reports", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder for results.csv, table.md, claims.md, ...")
    p = sub.add_parser("beside-papers", help="a proxy run's curves beside the papers' curves (beside_paper)")
    p.add_argument("--config", required=True)
    p.add_argument("--budget", default=None)
    p.add_argument("--rows", required=True, type=Path, help="the run's results.csv")
    p.add_argument("--plots", nargs="+", required=True, type=Path)
    p = sub.add_parser("throughput", help="training img/s and simulation time of a finished run (its reports)")
    p.add_argument("--run", required=True, type=Path, help="the run's folder (runs/<name>)")
    p.add_argument("--out", required=True, type=Path, help="JSON record to write")
    p.add_argument("--wall-s", type=float, default=None, help="the whole workflow's wall time, if measured")
    p = sub.add_parser("verify", help="compare a run's rows with a committed reference: identical, within "
                                      "tolerance, or different")
    p.add_argument("--run", required=True, type=Path, help="the run's folder (runs/<name>)")
    p.add_argument("--reference", required=True, type=Path, help="the reference's folder (results/<name>)")
    p.add_argument("--out", type=Path, default=None, help="also write the verdict here (markdown)")
    p.add_argument("--tolerance-pp", type=float, default=0.5,
                   help="accuracy differences up to this many pp (operations up to 0.1%%) are 'within tolerance'")
    p.add_argument("--no-fail", action="store_true", help="exit 0 even when different (the Snakemake rule)")
    p = sub.add_parser("promote", help="make a finished run the committed reference of its config")
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--reference", required=True, type=Path)
    p.add_argument("--command", default="", help="the command that made the run (recorded in reference.json)")
    args = ap.parse_args(argv)
    configure_logging()
    if getattr(args, "workers", None) is not None and args.workers < 0:
        ap.error(f"--workers must be >= 0, got {args.workers}")

    if args.cmd == "methods":
        from .methods import METHODS, RECIPES
        for name, m in sorted(METHODS.items()):
            print(f"{name:14s} recipe {m.recipe:5s} conversion {m.conversion:12s} {m.summary}  ({m.doc})")
        print("recipes: " + ", ".join(sorted(RECIPES)))
        return 0
    if args.cmd == "verify":
        from .verify import verify
        verdict = verify(args.run, args.reference, args.tolerance_pp, args.out)
        print(verdict.text)
        return 0 if args.no_fail or verdict.status in ("identical", "within tolerance") else (
            2 if verdict.status == "no reference" else 1)
    if args.cmd == "promote":
        from .verify import promote
        promote(args.run, args.reference, args.command)
        print(f"{args.run} is now the reference {args.reference}")
        return 0
    if args.cmd == "throughput":
        from .throughput import write_record
        try:
            rec = write_record(args.run, args.out, args.wall_s)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for t in rec["train"]:
            print(f"train {t['experiment']} seed {t['seed']}: {t['train_img_per_s'] or 0:.0f} img/s")
        for e in rec["evaluate"]:
            print(f"evaluate {e['experiment']} seed {e['seed']} {e['method']}: {e['eval_wall_s']:.1f} s")
        return 0
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
        cfg = load_config(args.config, args.budget, parse_settings(getattr(args, "set", [])))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cmd == "check-config" and args.run_name:
        print(cfg["run_name"])
        return 0
    if args.cmd == "check-config":
        if cfg["budget"]:
            print(f"budget {cfg['budget']} (of {', '.join(cfg['budgets'])}); results in runs/{cfg['run_name']}/")
        for note in cfg["run_notes"]:
            print(f"note: {note}")
        for exp_id, exp in cfg["experiments"].items():
            print(f"{exp_id}: {exp['model']} on {exp['dataset']}, seeds {exp['seeds']}, methods "
                  + ", ".join(f"{m} {s}" for m, s in exp["methods"].items()))
        return 0
    if args.cmd == "aggregate":
        from .aggregate import aggregate
        try:
            aggregate(cfg, args.train_reports, args.eval_reports, args.out)
        except (UnreadableError, WriteError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}/results.csv, table.md, claims.md, methods.md and the plots")
        return 0

    if args.cmd == "beside-papers":
        import pandas as pd
        from .beside_papers import plot_beside_papers
        plot_beside_papers(cfg, pd.read_csv(args.rows), args.plots)
        return 0

    if args.cmd == "aggregate-unevenness":
        from .report import read_reports
        from .unevenness_report import plot_unevenness, unevenness_markdown
        from .html_pages import write_markdown_page
        try:
            reports = read_reports(args.reports)
            write_markdown_page(args.markdown, unevenness_markdown(reports, cfg["name"]))
            plot_unevenness(reports, args.plots, cfg["name"])
        except (UnreadableError, WriteError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0

    from . import allocator, preemption, stages
    from .provenance import pick_device
    allocator.keep_freed_memory()  # the stages allocate and free tensors of MiBs all the time (allocator.py)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device or cfg.get("device") or "auto")
    log = None  # each module's own logger (snnlib.stages, snnlib.training, ...), timestamped by configure_logging
    try:
        if args.cmd == "train":
            # a SIGTERM (time limit, preemption, scancel) saves a checkpoint at the next batch, then stops
            with preemption.stop_on_signals():
                stages.run_train(cfg, args.experiment, args.seed, args.recipe, args.out, args.report,
                                 args.outcomes, device, log, args.workers)
        elif args.cmd == "convert":
            stages.run_convert(cfg, args.experiment, args.seed, args.conversion, args.ann, args.out, args.report,
                               device, log, args.workers)
        elif args.cmd == "unevenness":
            from .analysis_stage import run_unevenness
            run_unevenness(cfg, args.experiment, args.seed, args.method, args.snn, args.report, args.images,
                           cfg["report_T"], device, log, args.workers)
        elif args.cmd == "evaluate":
            stages.run_evaluate(cfg, args.experiment, args.seed, args.method, args.snn, args.report, args.outcomes,
                                device, log, args.workers)
    except preemption.Stopped as e:
        print(f"stopped: {e}", file=sys.stderr, flush=True)
        return preemption.EXIT_CODE
    except (ConfigError, CheckpointError, WriteError, UnreadableError, DatasetNotFoundError, DataVerificationError,
            ConversionError, UnknownNameError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if not is_disk_full(e):
            raise
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error: no space left{where} ({e.strerror}); free some space and rerun", file=sys.stderr)
        return 1
    return 0
