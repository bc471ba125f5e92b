"""The streaming data path (snnlib/data/batches.py): ImageNet read batch by batch from its ImageFolder, never whole.

On the small fixture ImageFolder of tests/test_data.py (real JPEG files in the ILSVRC layout, odd sizes, a grayscale
image, a stray README): every image once per epoch, order and crops a function of (seed, epoch) and never of the
number of DataLoader workers, a full-split training + conversion + evaluation through the stage functions, and a
training interrupted mid-epoch that resumes to the uninterrupted run's weights bit for bit. In-memory datasets keep
the draws of the training loop they had before (their own tests, unchanged, check their results).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snnlib import experiment_data, stages
from snnlib.config import ConfigError, validate
from snnlib.data import DatasetNotFoundError, StreamedBatches, TensorBatches, imagenet_dataset
from snnlib.data.batches import image_seed
from test_data import image_folder  # noqa: F401  (the fixture ImageFolder: 2 classes x 3 images per split)

CPU = torch.device("cpu")


class NumberedFiles:
    """A stand-in for ImageFolderDataset whose 'image' k is [k, first number its augmentation generator draws]."""

    image_size = 1

    def __init__(self, n: int, classes: int = 3):
        self.samples = [(f"{k}.JPEG", k % classes) for k in range(n)]
        self.train = True

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples])

    def load(self, index: int, generator: torch.Generator | None):
        draw = int(torch.randint(0, 2**31, (1,), generator=generator)) if self.train and generator else -1
        return torch.tensor([index, draw]), self.samples[index][1]

    def unaugmented(self):
        view = NumberedFiles(len(self))
        view.train = False
        return view


def epoch(data, batch_size: int, gen: torch.Generator) -> tuple[list[int], list[int], list[int]]:
    """(file order, augmentation draws, batch sizes) of one epoch of NumberedFiles."""
    batches = list(data.shuffled(batch_size, gen))
    images = torch.cat([xb for xb, _ in batches])
    return images[:, 0].tolist(), images[:, 1].tolist(), [len(xb) for xb, _ in batches]


# ------------------------------------------------------------------------------------------------ batches

def test_an_epoch_reads_every_file_exactly_once():
    data = StreamedBatches(NumberedFiles(23))
    order, _, sizes = epoch(data, 5, torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(23)) and sizes == [5, 5, 5, 5, 3]
    assert [xb[:, 0].tolist() for xb, _ in data.in_order(10)] == [list(range(10)), list(range(10, 20)), [20, 21, 22]]
    labels = torch.cat([yb for _, yb in data.shuffled(4, torch.Generator().manual_seed(1))])
    assert torch.equal(labels.sort().values, data.labels.sort().values)


def test_order_and_crops_are_functions_of_seed_and_epoch():
    data = StreamedBatches(NumberedFiles(40))
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    first_a, first_b = epoch(data, 8, gen_a), epoch(data, 8, gen_b)
    assert first_a == first_b  # the same seed: the same order and the same crops
    second = epoch(data, 8, gen_a)
    assert second[0] != first_a[0]  # the next epoch: another order...
    crops = lambda e: dict(zip(e[0], e[1]))  # noqa: E731
    assert all(crops(second)[k] != crops(first_a)[k] for k in range(40))  # ...and another crop of every image
    assert epoch(data, 8, torch.Generator().manual_seed(4))[0] != first_a[0]  # another seed: another order
    # An epoch resumed from the generator state saved after the previous one is that epoch again.
    saved = torch.Generator().manual_seed(3)
    epoch(data, 8, saved)
    resumed = torch.Generator()
    resumed.set_state(saved.get_state())
    assert epoch(data, 8, resumed) == second


def test_crops_do_not_depend_on_workers_or_batch_size():
    data = StreamedBatches(NumberedFiles(17))
    alone = epoch(data, 4, torch.Generator().manual_seed(5))
    with_workers = epoch(StreamedBatches(NumberedFiles(17), workers=2), 3, torch.Generator().manual_seed(5))
    assert alone[:2] == with_workers[:2]


def test_subsets_select_files_by_position_without_decoding():
    data = StreamedBatches(NumberedFiles(12))
    part = data.subset(torch.tensor([7, 2, 9]))
    assert part.labels.tolist() == [1, 2, 0] and len(part) == 3
    assert part.subset(torch.tensor([2, 0])).file_indices.tolist() == [9, 7]
    assert part.images(torch.tensor([1]))[:, 0].tolist() == [2]
    assert part.without_augmentation().images(torch.tensor([0, 1])).tolist() == [[7, -1], [2, -1]]
    assert sorted(epoch(part, 2, torch.Generator().manual_seed(0))[0]) == [2, 7, 9]


def test_in_memory_epochs_are_the_training_loops_old_draws():
    """TensorBatches hands out exactly the batches the loops used to cut themselves, and leaves the generator in
    the same state, so every later draw (augmentation, the next epoch) is unchanged too."""
    x = torch.randint(0, 256, (37, 1, 4, 4), dtype=torch.uint8)
    y = torch.randint(0, 10, (37,))
    gen_old, gen_new = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(2):
        perm = torch.randperm(37, generator=gen_old)
        old = [(x[perm[i:i + 8]], y[perm[i:i + 8]]) for i in range(0, 37, 8)]
        new = list(TensorBatches(x, y).shuffled(8, gen_new))
        assert len(old) == len(new)
        assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(old, new))
        assert torch.equal(gen_old.get_state(), gen_new.get_state())
    assert [len(xb) for xb, _ in TensorBatches(x, y).in_order(10)] == [10, 10, 10, 7]


def test_image_seeds_are_mixed():
    seeds = {image_seed(e, k) for e in range(3) for k in range(100)}
    assert len(seeds) == 300 and all(0 <= s < 2**64 for s in seeds)


# --------------------------------------------------------------------------------------- real ImageFolder files

def test_streamed_imagefolder_is_decoded_in_order_and_augmented_per_epoch(image_folder):  # noqa: F811
    val = imagenet_dataset("test", root=image_folder)
    data = StreamedBatches(val, workers=2)
    images = torch.cat([xb for xb, _ in data.in_order(4)])
    assert images.dtype == torch.uint8 and tuple(images.shape) == (6, 3, 224, 224)
    assert all(torch.equal(images[i], val[i][0]) for i in range(6))
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    train = imagenet_dataset("train", root=image_folder)
    one = [b for b in StreamedBatches(train).shuffled(4, torch.Generator().manual_seed(0))]
    two = [b for b in StreamedBatches(train, workers=2).shuffled(4, torch.Generator().manual_seed(0))]
    assert [len(xb) for xb, _ in one] == [4, 2]
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(one, two))
    # The calibration view of the training split: the evaluation transform, no random crop.
    plain = StreamedBatches(train).without_augmentation().images(torch.tensor([3]))
    assert torch.equal(plain[0], imagenet_dataset("train", root=image_folder).unaugmented()[3][0])


def imagenet_config(image_folder: Path, tmp_path: Path, **eval_settings) -> dict:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "imagenet").symlink_to(image_folder)
    return validate({"name": "stream", "data_root": str(root), "experiments": {"e": {
        "dataset": "imagenet", "model": "lenet",
        "activation": {"L": 4, "lambda_init": {"percentile": 99.0, "samples": 4}},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01},  # max_samples null: the full split
        "methods": {"qcfs": {}, "srp": {"taus": [2]}},
        "eval": {"T_max": 3, "batch_size": 4, **eval_settings}}}})


@pytest.fixture
def fixture_env(monkeypatch):
    monkeypatch.delenv("SNNLIB_DATA", raising=False)
    monkeypatch.setenv("SNNLIB_FIXTURE_DATA", "1")


@pytest.mark.slow
def test_full_imagenet_split_trains_converts_and_evaluates(image_folder, tmp_path, fixture_env):  # noqa: F811
    cfg = imagenet_config(image_folder, tmp_path)
    logs = []
    tr = stages.run_train(cfg, "e", 0, "qcfs", tmp_path / "ann.pt", tmp_path / "ann.json", tmp_path / "ann.npz", CPU,
                          logs.append, workers=0)
    assert tr["train_samples"] == 6 and len(tr["history"]) == 2
    assert len(tr["lambda_calibrated"]) == 3 and all(lam > 0 for lam in tr["lambda_calibrated"])
    assert 0 <= tr["ann_quantized_full"] <= 1 and tr["ann_quantized_full"] == tr["ann_quantized_subset"]
    stages.run_convert(cfg, "e", 0, "qcfs", tmp_path / "ann.pt", tmp_path / "snn.pt", tmp_path / "snn.json", CPU,
                       logs.append, workers=0)
    for method in ("qcfs", "srp"):
        ev = stages.run_evaluate(cfg, "e", 0, method, tmp_path / "snn.pt", tmp_path / f"{method}.json",
                                 tmp_path / f"{method}.npz", CPU, logs.append, workers=2)
        assert ev["n_images"] == 6 and ev["subset"] == "full test set" and len(ev["variants"][0]["accuracy"]) == 3
        assert json.loads((tmp_path / f"{method}.json").read_text())["variants"] == ev["variants"]
    assert logs[-1].startswith("srp T-sweep: batch ") and "6/6 images (100.0%)" in logs[-1] and "ETA" in logs[-1]
    from snnlib.analysis_stage import run_unevenness
    unev = run_unevenness(cfg, "e", 0, "srp", tmp_path / "snn.pt", tmp_path / "unevenness.json", 1, [1, 2], CPU,
                          logs.append, workers=0)
    assert unev["n_images"] == 1


def test_imagenet_class_balanced_subset_and_bounded_samples(image_folder, tmp_path, fixture_env):  # noqa: F811
    cfg = imagenet_config(image_folder, tmp_path, test_per_class=2)  # allowed for ImageNet now
    data, _ = stages.eval_data(cfg, cfg["experiments"]["e"], CPU, workers=0)
    assert data.labels.tolist() == [0, 0, 1, 1] and all(0 <= k < 6 for k in data.file_indices.tolist())
    exp = cfg["experiments"]["e"]
    sample = experiment_data.load_data(cfg, exp, "train", 0, 4, CPU, workers=0)  # max_samples: 4 files drawn with seed 0
    assert len(sample) == 4 and sample.file_indices.tolist() == torch.randperm(6, generator=torch.Generator()
                                                                               .manual_seed(0))[:4].tolist()


def test_missing_or_empty_imagenet_is_a_clear_error(tmp_path, fixture_env):
    cfg = validate({"name": "stream", "data_root": str(tmp_path), "experiments": {"e": {
        "dataset": "imagenet", "model": "lenet", "train": {"epochs": 1}}}})
    with pytest.raises(DatasetNotFoundError, match="ImageNet not found"):
        experiment_data.load_data(cfg, cfg["experiments"]["e"], "train", 0, None)
    (tmp_path / "raw" / "imagenet" / "train" / "n01440764").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="split is empty"):
        experiment_data.load_data(cfg, cfg["experiments"]["e"], "train", 0, None)


def test_workers_come_from_the_cli_then_the_config_then_the_threads():
    raw = {"name": "w", "experiments": {"e": {"dataset": "mnist", "model": "lenet", "train": {"epochs": 1}}}}
    cfg = validate(raw)
    assert cfg["data_workers"] is None and experiment_data.data_workers(cfg) == torch.get_num_threads()
    five = validate({**raw, "data_workers": 5})
    assert experiment_data.data_workers(five) == 5 and experiment_data.data_workers(five, 0) == 0
    with pytest.raises(ConfigError, match="data_workers"):
        validate({**raw, "data_workers": -1})


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_training_interrupted_mid_epoch_resumes_to_the_same_weights(image_folder, tmp_path, monkeypatch,
                                                                    fixture_env):  # noqa: F811
    cfg = imagenet_config(image_folder, tmp_path)  # 2 epochs
    whole = tmp_path / "whole"
    stages.run_train(cfg, "e", 0, "qcfs", whole / "ann.pt", whole / "ann.json", whole / "ann.npz", CPU,
                     lambda m: None, workers=0)

    # The same run, killed in the middle of its second epoch: calibration is one input batch, then 2 per epoch.
    real_input_fn, calls = stages.input_fn, []

    def dies_in_epoch_2(exp, device):
        to_input = real_input_fn(exp, device)

        def counted(xb):
            calls.append(len(xb))
            if len(calls) == 1 + 2 + 2:
                raise Interrupt
            return to_input(xb)
        return counted

    cut = tmp_path / "cut"
    monkeypatch.setattr(stages, "input_fn", dies_in_epoch_2)
    with pytest.raises(Interrupt):
        stages.run_train(cfg, "e", 0, "qcfs", cut / "ann.pt", cut / "ann.json", cut / "ann.npz", CPU, lambda m: None,
                         workers=0)
    monkeypatch.setattr(stages, "input_fn", real_input_fn)
    assert not (cut / "ann.pt").exists()
    logs = []
    stages.run_train(cfg, "e", 0, "qcfs", cut / "ann.pt", cut / "ann.json", cut / "ann.npz", CPU, logs.append,
                     workers=2)
    assert any("after epoch 1" in line for line in logs), logs
    a = torch.load(whole / "ann.pt", weights_only=True)["model"]
    b = torch.load(cut / "ann.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda p: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                       for r in json.loads(p.read_text())["history"]]
    assert strip(cut / "ann.json") == strip(whole / "ann.json")
