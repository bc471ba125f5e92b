"""`python -m snnlib.data prepare --root data [--datasets mnist fashion_mnist] [--download] [--force]`:
decode, verify and cache, then print what was loaded (counts, label counts, mean/std) and how long it took.
`python -m snnlib.data list` prints the registry."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from .errors import DataVerificationError, DatasetNotFoundError
from .load import load_split
from .paths import cache_dir, raw_dir, resolve_data_root
from .prepare import prepare
from .registry import DATASETS, SPLITS, get_info

DEFAULT_DATASETS = ("mnist", "fashion_mnist")  # the ones obtainable offline (docs/data.md, §1)


def _prepare_command(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.root)
    failed = False
    for name in args.datasets:
        info = get_info(name)
        start = time.perf_counter()
        try:
            path = prepare(name, raw_dir(root), cache_dir(root), download=args.download, force=args.force)
            print(f"{name}: {path} ({time.perf_counter() - start:.1f} s to prepare)")
            for split in SPLITS:
                start = time.perf_counter()
                x, y = load_split(name, split, root)
                pixels = x.to(torch.float32) / 255
                mean = pixels.mean(dim=(0, 2, 3)).tolist()
                std = pixels.std(dim=(0, 2, 3)).tolist()
                print(
                    f"  {split:5s} n={len(y)} x={tuple(x.shape)} uint8 "
                    f"mean=[{', '.join(f'{m:.4f}' for m in mean)}] std=[{', '.join(f'{v:.4f}' for v in std)}] "
                    f"labels={y.bincount(minlength=info.num_classes).tolist()} "
                    f"(verified, loaded in {time.perf_counter() - start:.2f} s)"
                )
        except (DatasetNotFoundError, DataVerificationError) as err:
            print(f"{name}: ERROR: {err}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _list_command(_: argparse.Namespace) -> int:
    for info in DATASETS.values():
        shape = "x".join(map(str, info.image_shape))
        print(f"{info.name:22s} {info.num_classes:5d} classes  {shape:9s} "
              f"train {info.train_size:8d} test {info.test_size:6d}  {info.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snnlib.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="decode, verify and cache datasets")
    prep.add_argument("--root", default=None,
                      help="data root with raw/ and cache/ (default: $SNNLIB_DATA or <repo>/data)")
    prep.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS),
                      choices=[n for n, i in DATASETS.items() if i.in_memory], metavar="NAME",
                      help=f"default: {' '.join(DEFAULT_DATASETS)}")
    prep.add_argument("--download", action="store_true",
                      help="fetch missing official files with urllib (needs internet)")
    prep.add_argument("--force", action="store_true", help="rebuild caches that already exist")
    prep.set_defaults(func=_prepare_command)
    commands.add_parser("list", help="print the dataset registry").set_defaults(func=_list_command)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
