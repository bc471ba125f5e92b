import torch

from snnlib.data import get_info, to_float
from snnlib.experiment_data import training_input


def test_training_input_order_pixels_then_normalise_then_cutout():
    info = get_info("cifar10")
    to_input = lambda xb: to_float(xb, info, normalize=True)  # noqa: E731
    aug = {"crop_padding": 4, "flip": True, "autoaugment": True, "cutout": 8}
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    a = training_input(aug, to_input)(x, torch.Generator().manual_seed(1))
    b = training_input(aug, to_input)(x, torch.Generator().manual_seed(1))
    assert a.dtype == torch.float32 and a.shape == x.shape and torch.equal(a, b)
    # Cutout comes after normalisation: its hole is exactly 0 there, an 8x8 square (clipped at borders) per image
    holes = (a == 0).all(dim=1)
    assert all(1 <= int(h.sum()) <= 64 for h in holes)
    assert training_input({"crop_padding": 0, "flip": False, "autoaugment": False, "cutout": 0}, to_input) is None
