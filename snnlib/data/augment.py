"""Training augmentation on whole batches of tensors (any device), as in cifar10-airbench: no per-image Python.

Random numbers are drawn on the generator's device and moved to the data, so a seeded CPU generator gives
the same augmentation for data on CPU or GPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _draw_int(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def _draw_coin(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return (torch.rand(n, generator=generator, device=gen_device) < 0.5).to(device)


def random_crop_flip(
    x: torch.Tensor, pad: int, generator: torch.Generator | None = None, flip: bool = True
) -> torch.Tensor:
    """Zero-pad by `pad`, take a random H x W crop per image (a translation by -pad..pad pixels), and flip
    each image horizontally with probability 1/2. x: [N, C, H, W]; returns a new tensor of the same shape."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got {tuple(x.shape)}")
    n, c, h, w = x.shape
    out = x
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        top = _draw_int(2 * pad + 1, n, generator, x.device)
        left = _draw_int(2 * pad + 1, n, generator, x.device)
        rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # [N, 1, H, 1]
        cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # [N, 1, 1, W]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        out = padded[batch, channel, rows, cols]
    if flip:
        flip_mask = _draw_coin(n, generator, x.device)[:, None, None, None]
        out = torch.where(flip_mask, out.flip(-1), out)
    return out if out is not x else x.clone()


def cutout(x: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): zero a `length` x `length` square per image whose centre is uniform over
    the image; the square is clipped at the borders, so it may cover less. x: [N, C, H, W]; returns a new tensor."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got {tuple(x.shape)}")
    n, _, h, w = x.shape
    centre_y = _draw_int(h, n, generator, x.device)
    centre_x = _draw_int(w, n, generator, x.device)
    half = length // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= (centre_y - half)[:, None]) & (rows < (centre_y - half + length)[:, None])  # [N, H]
    in_cols = (cols >= (centre_x - half)[:, None]) & (cols < (centre_x - half + length)[:, None])  # [N, W]
    hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [N, 1, H, W]
    return x.masked_fill(hole, 0)
