"""Training-throughput benchmark: images per second of one training epoch,

  ours       snnlib.training.train: the whole uint8 split in memory, each batch augmented at once (crop, flip as
             tensor ops), normalised, QCFS forward and backward, SGD, the lambda guard, the epoch's checkpoint;
             in the default layout and in channels_last (config key memory_format)
  reference  a plain loop written the way the papers' scripts do it: a Dataset that hands out one PIL image at a
             time through per-image transforms (random crop with padding, horizontal flip, to-tensor, normalise),
             a DataLoader that collates them (0 worker processes and as many as there are threads: the faster
             counts), the same model, initial weights, batch, optimizer and augmentation

on real MNIST / Fashion-MNIST images (`make data`). Each variant is warmed up on a few batches, then timed over
`--images` images, `--repeats` times interleaved; the fastest counts. Ratios: reference time / ours (> 1: ours is
faster). Writes results/benchmarks/training_<model>_<device>.json with the machine described.

    python benchmarks/training.py --threads 2 --model resnet20 [--images 3840] [--repeats 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the model, dataset and augmentation each network trains with in this repository's configs
SETUPS = {
    "lenet": ("mnist", 0, False),                   # config/default.yaml: no augmentation
    "vgg_mini": ("fashion_mnist", 0, False),
    "resnet20": ("fashion_mnist_proxy32", 4, True),  # config/proxy_cpu.yaml: crop 4 + flip
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20", choices=sorted(SETUPS))
    ap.add_argument("--glibc-allocator", action="store_true",
                    help="leave glibc's malloc thresholds alone (the stages set them: snnlib/allocator.py)")
    ap.add_argument("--images", type=int, default=3840, help="images per timed epoch (a multiple of the batch)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes; a record only with --out (the tests)")
    return ap.parse_args(argv)


class PILDataset:
    """torchvision-style dataset: one uint8 image -> PIL -> per-image transforms -> float tensor."""

    def __init__(self, images, labels, pad: int, flip: bool, mean, std):
        import numpy as np
        self.images, self.labels = images.numpy(), labels.numpy()
        self.pad, self.flip = pad, flip
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        import random

        import numpy as np
        import torch
        from PIL import Image, ImageOps
        arr = self.images[i]  # [C, H, W]
        img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
        if self.pad:  # RandomCrop(size, padding=pad)
            w, h = img.size
            img = ImageOps.expand(img, border=self.pad, fill=0)
            top, left = random.randint(0, 2 * self.pad), random.randint(0, 2 * self.pad)
            img = img.crop((left, top, left + w, top + h))
        if self.flip and random.random() < 0.5:  # RandomHorizontalFlip()
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = np.asarray(img, dtype=np.float32) / 255.0  # ToTensor()
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        x = (x - self.mean) / self.std  # Normalize(mean, std)
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[i])


def build(model_name: str, dataset: str, layout: str, seed: int = 0):
    import torch
    from snnlib.data import get_info
    from snnlib.experiment_data import in_layout
    from snnlib.methods.qcfs.activation import QCFS
    from snnlib.models import create_model
    info = get_info(dataset)
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=info.num_classes, in_channels=info.in_channels,
                         image_size=info.image_size, act=lambda: QCFS(4, 2.0))
    return in_layout(model, {"memory_format": layout})


def run_ours(model_name, dataset, images, labels, args, layout, device) -> float:
    import torch
    from snnlib.data import random_crop_flip
    from snnlib.experiment_data import input_fn
    from snnlib.training import TrainSettings, train
    _, pad, flip = SETUPS[model_name]
    model = build(model_name, dataset, layout).to(device)
    to_input = input_fn({"dataset": dataset, "normalize": True, "memory_format": layout}, device)
    augment = (lambda xb, gen: to_input(random_crop_flip(xb, pad, gen, flip=flip))) if pad or flip else None
    settings = TrainSettings(epochs=1, batch_size=args.batch, lr=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(model, images.to(device), labels.to(device), to_input, settings, 0, Path(tmp) / "state.pt", augment,
              log=lambda _msg: None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def run_reference(model_name, dataset, images, labels, args, workers, device) -> float:
    import torch
    import torch.nn.functional as F
    from snnlib.data import get_info
    info = get_info(dataset)
    _, pad, flip = SETUPS[model_name]
    model = build(model_name, dataset, "contiguous").to(device)
    loader = torch.utils.data.DataLoader(PILDataset(images, labels, pad, flip, info.mean, info.std),
                                         batch_size=args.batch, shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda", drop_last=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    t0 = time.perf_counter()
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from snnlib import allocator
    if not args.glibc_allocator:
        allocator.keep_freed_memory()  # as the training stage does; both loops run under it (snnlib/allocator.py)
    import torch
    from snnlib.data import load_split
    from snnlib.provenance import provenance
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.smoke:
        args.images, args.repeats = 2 * args.batch, 1
    dataset, _, _ = SETUPS[args.model]
    x, y = load_split(dataset, "train")
    images, labels = x[:args.images], y[:args.images]
    warm_images, warm_labels = x[:2 * args.batch], y[:2 * args.batch]
    variants = {"ours": lambda im, lb: run_ours(args.model, dataset, im, lb, args, "contiguous", device),
                "ours_channels_last": lambda im, lb: run_ours(args.model, dataset, im, lb, args, "channels_last",
                                                              device)}
    for w in sorted({0, args.threads}):
        variants[f"reference_workers{w}"] = (lambda w: lambda im, lb: run_reference(
            args.model, dataset, im, lb, args, w, device))(w)
    load0 = os.getloadavg()[0]
    for fn in variants.values():
        fn(warm_images, warm_labels)
    times = {k: [] for k in variants}
    for _ in range(args.repeats):
        for k, fn in variants.items():
            times[k].append(fn(images, labels))
    best = {k: min(v) for k, v in times.items()}
    ref_key = min((k for k in best if k.startswith("reference")), key=best.get)
    ours_key = min(("ours", "ours_channels_last"), key=best.get)
    record = {"what": "training throughput: our training epoch vs a plain DataLoader + per-image-transform loop",
              "model": args.model, "dataset": dataset, "batch": args.batch, "images": args.images,
              "repeats": args.repeats, "threads": args.threads, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
              "load_average_at_start": load0, "seconds": times,
              "img_per_s": {k: args.images / v for k, v in best.items()},
              "reference": ref_key, "ratio_reference_over_ours": best[ref_key] / best["ours"],
              "ratio_reference_over_ours_channels_last": best[ref_key] / best["ours_channels_last"],
              "fastest_ours": ours_key, "provenance": provenance(device)}
    for k, v in best.items():
        print(f"{k:22s} {args.images / v:8.1f} img/s ({v:.2f} s)")
    print(f"reference ({ref_key}) / ours: {record['ratio_reference_over_ours']:.2f}x; "
          f"/ ours channels_last: {record['ratio_reference_over_ours_channels_last']:.2f}x")
    if not args.smoke or args.out:  # a smoke run writes only where told to (benchmarks/gpu.sh smoke)
        out = args.out or ROOT / "results" / "benchmarks" / f"training_{args.model}_{device.type}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
