"""AutoAugment with the CIFAR-10 policy (Cubuk et al. 2019), written from the policy description, on whole
batches of uint8 tensors [N, 3, H, W] (any device). Pure torch: no torchvision, no PIL.

Each image gets one of the 25 sub-policies, chosen uniformly. A sub-policy is two operations applied in order;
each runs with its own probability and a magnitude taken from one of 10 bins. Random signs are used for shear,
translate, rotate and the four enhance operations. The images are grouped by operation, so a batch costs at most
2 x 14 vectorised calls, whatever its size.

The operations follow the semantics of PIL's ImageOps / ImageEnhance on RGB images:

- Invert: 255 - x.  Posterize: keep the top `bits` bits.  Solarize: 255 - x where x >= threshold.
- AutoContrast: per channel, map min..max linearly onto 0..255, floor((x - lo) * 255 / (hi - lo)) in exact integer
  arithmetic (PIL's double arithmetic is one lower at a few values); a constant channel is left unchanged.
- Equalize: per-channel histogram equalisation with PIL's lookup table,
  lut[i] = (step // 2 + #pixels below i) // step, step = (#pixels - #pixels in the highest non-empty bin) // 255;
  a channel with one non-empty bin, or step 0, is left unchanged.
- Color / Contrast / Brightness / Sharpness: blend `degenerate + factor * (image - degenerate)`, clipped to 0..255
  and truncated (as PIL's Image.blend), where degenerate is the grayscale image (L = 0.299 R + 0.587 G + 0.114 B,
  rounded, in PIL's fixed point), a constant image at the rounded mean of that grayscale image, black, or the
  image smoothed by the 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 (rounded, border pixels unchanged).
- ShearX/ShearY/TranslateX/TranslateY: PIL's AFFINE transform conventions, origin at the top-left corner: output
  pixel (x, y) takes input pixel (x + m y + t, y) for ShearX / TranslateX, and likewise in y. Translations are whole
  pixels, round(fraction * width) (height for TranslateY).
- Rotate: about the image centre, counter-clockwise on screen for a positive angle, as PIL's Image.rotate.
- Geometric ops sample the nearest pixel (torch.nn.functional.grid_sample, mode "nearest"): the pixel containing
  the exact source point of the output pixel's centre; pixels whose source falls outside the image are filled
  with (128, 128, 128). (PIL's NEAREST affine uses 16.16 fixed point, so it picks a neighbour for a few source
  points within ~1e-3 of a pixel edge.)

Random numbers are drawn on the generator's device and moved to the data, so a seeded CPU generator gives the same
augmentation for data on CPU or GPU (the ops themselves are exact integer arithmetic, bar the float blend).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FILL = 128
NUM_BINS = 10

OPS = (
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Color",
    "Posterize",
    "Solarize",
    "Contrast",
    "Sharpness",
    "Brightness",
    "AutoContrast",
    "Equalize",
    "Invert",
)

# Operations whose magnitude gets a random sign.
SIGNED_OPS = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Color", "Contrast", "Sharpness", "Brightness"}
)

# (operation, probability, magnitude bin) pairs of the 25 CIFAR-10 sub-policies.
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int], tuple[str, float, int]], ...] = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)


def magnitude(op: str, bin_: int, size: int = 32) -> float:
    """Unsigned magnitude of `op` at bin 0..9 (10 bins linearly spaced from 0 to the maximum). `size` is the image
    width (height for TranslateY), used by the translations, which return whole pixels."""
    if not 0 <= bin_ < NUM_BINS:
        raise ValueError(f"magnitude bin must be in 0..{NUM_BINS - 1}, got {bin_}")
    t = bin_ / (NUM_BINS - 1)
    if op in ("ShearX", "ShearY"):
        return 0.3 * t
    if op in ("TranslateX", "TranslateY"):
        return float(round(150.0 / 331.0 * t * size))
    if op == "Rotate":
        return 30.0 * t
    if op in ("Color", "Contrast", "Sharpness", "Brightness"):
        return 0.9 * t
    if op == "Posterize":
        return float(round(8.0 - 4.0 * t))
    if op == "Solarize":
        return 256.0 - 256.0 * t
    if op in ("AutoContrast", "Equalize", "Invert"):
        return 0.0
    raise ValueError(f"unknown operation {op!r}")


# ----------------------------------------------------------------------------------------------------------------
# Operations. Each takes uint8 images [k, C, H, W] and (where it has one) a float magnitude per image [k], already
# signed, and returns uint8 images of the same shape.
# ----------------------------------------------------------------------------------------------------------------


def invert(x: torch.Tensor) -> torch.Tensor:
    return 255 - x


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top `bits` (1..8) bits of every value."""
    shift = (8 - bits.round().to(torch.int32)).clamp(0, 8)
    mask = ((255 << shift) & 255).to(torch.uint8)
    return x & mask[:, None, None, None]


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert the values >= threshold (a threshold of 256 changes nothing)."""
    hit = x.to(torch.float32) >= threshold.to(torch.float32)[:, None, None, None]
    return torch.where(hit, 255 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Per image and channel, map lo..hi linearly onto 0..255 (floor). Constant channels are unchanged."""
    v = x.to(torch.int32)
    lo = v.amin(dim=(2, 3), keepdim=True)
    hi = v.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    # Exact integer arithmetic, so hi always maps to 255. PIL computes int(i * scale + offset) in doubles, which
    # lands one lower when the exact value is an integer but the double falls just short (e.g. lo 50, hi 100).
    stretched = torch.div((v - lo) * 255, span.clamp(min=1), rounding_mode="floor")
    return torch.where(span > 0, stretched, v).to(torch.uint8)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Per image and channel histogram equalisation with PIL's lookup table (see the module docstring)."""
    k, c, h, w = x.shape
    rows = k * c
    flat = x.reshape(rows, h * w).to(torch.int64)
    offsets = torch.arange(rows, device=x.device)[:, None] * 256
    hist = torch.bincount((flat + offsets).reshape(-1), minlength=rows * 256).reshape(rows, 256)
    total = hist.sum(dim=1, keepdim=True)
    bins = torch.arange(256, device=x.device)
    last = torch.where(hist > 0, bins, -1).amax(dim=1, keepdim=True)  # highest non-empty bin
    step = torch.div(total - hist.gather(1, last), 255, rounding_mode="floor")
    below = torch.cumsum(hist, dim=1) - hist  # pixels strictly below bin i
    lut = torch.div(torch.div(step, 2, rounding_mode="floor") + below, step.clamp(min=1), rounding_mode="floor")
    lut = lut.clamp(max=255)
    nonempty = (hist > 0).sum(dim=1, keepdim=True)
    keep = (nonempty <= 1) | (step == 0)
    lut = torch.where(keep, bins.expand(rows, 256), lut)
    out = lut.gather(1, flat)
    return out.reshape(k, c, h, w).to(torch.uint8)


def _blend(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """degenerate + factor * (x - degenerate), clipped to 0..255 and truncated, as PIL's Image.blend."""
    img = x.to(torch.float32)
    deg = degenerate.to(torch.float32)
    f = factor.to(torch.float32)[:, None, None, None]
    return (deg + f * (img - deg)).clamp(0, 255).floor().to(torch.uint8)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma L = 0.299 R + 0.587 G + 0.114 B, rounded, in PIL's 16-bit fixed point (weights 19595,
    38470, 7471 / 65536), so it agrees with PIL's convert("L") bit for bit: [k, 3, H, W] uint8 -> [k, 1, H, W]."""
    v = x.to(torch.int32)
    return (v[:, 0:1] * 19595 + v[:, 1:2] * 38470 + v[:, 2:3] * 7471 + 32768) >> 16


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image (factor 0: gray, 1: unchanged)."""
    return _blend(x, _grayscale(x).expand_as(x), factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with a constant image at the (rounded) mean of the grayscale image."""
    gray = _grayscale(x).to(torch.float64)
    mean = torch.floor(gray.mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    return _blend(x, mean.to(torch.float32).expand(x.shape), factor)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black (factor 0: black, 1: unchanged)."""
    return _blend(x, torch.zeros_like(x), factor)


_SMOOTH = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter: 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13, rounded; border pixels unchanged."""
    k, c, h, w = x.shape
    if h < 3 or w < 3:
        return x.clone()
    kernel = torch.tensor(_SMOOTH, dtype=torch.float32, device=x.device).expand(c, 1, 3, 3)
    sums = F.conv2d(x.to(torch.float32), kernel, groups=c)  # integer-valued, exact in float32
    inner = torch.floor((sums + 6.0) / 13.0)  # round half up of sums / 13 (no exact halves: 13 is odd)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = inner.clamp(0, 255).to(torch.uint8)
    return out


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the smoothed image (factor 0: smoothed, 1: unchanged, > 1: sharpened)."""
    return _blend(x, _smooth(x), factor)


def _affine(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour affine warp with fill 128. matrix [k, 2, 3] maps the continuous pixel coordinates of an
    output point (x, y), origin at the top-left corner of the image, to the input point: (x', y') = A (x, y) + t.
    Pixel (i, j) covers [j, j+1) x [i, i+1) and is sampled at its centre."""
    k, c, h, w = x.shape
    dev = x.device
    ys = torch.arange(h, device=dev, dtype=torch.float64) + 0.5
    xs = torch.arange(w, device=dev, dtype=torch.float64) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, h * w, 3)  # [1, HW, 3]
    src = pts @ matrix.to(torch.float64).transpose(1, 2)  # [k, HW, 2] input coordinates in pixels
    # Index of the nearest pixel is floor(coordinate); sample exactly at that pixel's centre so grid_sample's
    # rounding cannot flip a tie, and let out-of-range indices read grid_sample's zero padding (-> fill).
    idx = torch.floor(src)
    norm = torch.empty_like(idx)
    norm[..., 0] = (2.0 * idx[..., 0] + 1.0) / w - 1.0
    norm[..., 1] = (2.0 * idx[..., 1] + 1.0) / h - 1.0
    grid = norm.to(torch.float32).reshape(k, h, w, 2)
    inp = torch.cat([x.to(torch.float32), torch.ones(k, 1, h, w, device=dev)], dim=1)
    sampled = F.grid_sample(inp, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = sampled[:, c:] > 0.5
    out = torch.where(inside, sampled[:, :c], torch.full_like(sampled[:, :c], float(FILL)))
    return out.round().clamp(0, 255).to(torch.uint8)


def _matrix(
    a: torch.Tensor, b: torch.Tensor, tx: torch.Tensor, d: torch.Tensor, e: torch.Tensor, ty: torch.Tensor
) -> torch.Tensor:
    """Per-image 2x3 matrices [k, 2, 3] ((a, b, tx), (d, e, ty)) from coefficient vectors [k]."""
    return torch.stack([torch.stack([a, b, tx], dim=-1), torch.stack([d, e, ty], dim=-1)], dim=1)


def shear_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Output (x, y) takes input (x + m y, y), as PIL's AFFINE (1, m, 0, 0, 1, 0)."""
    m = m.to(torch.float64)
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _affine(x, _matrix(one, m, zero, zero, one, zero))


def shear_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Output (x, y) takes input (x, y + m x), as PIL's AFFINE (1, 0, 0, m, 1, 0)."""
    m = m.to(torch.float64)
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _affine(x, _matrix(one, zero, zero, m, one, zero))


def translate_x(x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Output (x, y) takes input (x + t, y): the content moves left by t whole pixels (right for t < 0)."""
    t = pixels.to(torch.float64).round()
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _affine(x, _matrix(one, zero, t, zero, one, zero))


def translate_y(x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Output (x, y) takes input (x, y + t): the content moves up by t whole pixels (down for t < 0)."""
    t = pixels.to(torch.float64).round()
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _affine(x, _matrix(one, zero, zero, zero, one, t))


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate about the image centre, counter-clockwise on screen for positive degrees (as PIL's Image.rotate)."""
    _, _, h, w = x.shape
    theta = degrees.to(torch.float64) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    # Snap values within 1e-15 of 0 (e.g. cos(90 deg)) so right angles are exact pixel permutations.
    cos = torch.where(cos.abs() < 1e-15, torch.zeros_like(cos), cos)
    sin = torch.where(sin.abs() < 1e-15, torch.zeros_like(sin), sin)
    cx, cy = w / 2.0, h / 2.0
    # input = c + R (output - c), with R = [[cos, -sin], [sin, cos]] in y-down pixel coordinates.
    tx = cx - cos * cx + sin * cy
    ty = cy - sin * cx - cos * cy
    return _affine(x, _matrix(cos, -sin, tx, sin, cos, ty))


_APPLY = {
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x,
    "TranslateY": translate_y,
    "Rotate": rotate,
    "Color": color,
    "Posterize": posterize,
    "Solarize": solarize,
    "Contrast": contrast,
    "Sharpness": sharpness,
    "Brightness": brightness,
    "AutoContrast": lambda x, _m: autocontrast(x),
    "Equalize": lambda x, _m: equalize(x),
    "Invert": lambda x, _m: invert(x),
}


def apply_op(op: str, x: torch.Tensor, signed_magnitude: torch.Tensor | float) -> torch.Tensor:
    """Apply one named operation to uint8 images [k, C, H, W] with a (signed) magnitude, scalar or one per image:
    the factor for the enhance ops is 1 + magnitude; translations are in pixels, rotation in degrees."""
    if op not in _APPLY:
        raise ValueError(f"unknown operation {op!r}")
    m = torch.as_tensor(signed_magnitude, dtype=torch.float64, device=x.device).reshape(-1)
    m = m.expand(x.shape[0]) if m.numel() == 1 else m
    if op in ("Color", "Contrast", "Sharpness", "Brightness"):
        m = 1.0 + m
    return _APPLY[op](x, m)


def draw_subpolicies(
    generator: torch.Generator | None, n: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random draws of `cifar10_autoaugment`, in order: sub-policy [N] (0..24), probability coins [N, 2] in
    [0, 1), signs [N, 2] (True: negate the magnitude). Drawn on the generator's device, returned on `device`."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    choice = torch.randint(0, len(CIFAR10_POLICY), (n,), generator=generator, device=gen_device)
    coin = torch.rand(n, 2, generator=generator, device=gen_device)
    sign = torch.rand(n, 2, generator=generator, device=gen_device) < 0.5
    return choice.to(device), coin.to(device), sign.to(device)


def cifar10_autoaugment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """AutoAugment, CIFAR-10 policy, on a batch of uint8 images [N, 3, H, W]; returns a new uint8 tensor of the same
    shape. Per image: one of the 25 sub-policies uniformly, then each of its two operations in order with its
    probability, its magnitude bin and (where signed) a random sign. Draws, in this order from `generator` (on the
    generator's device; the global CPU generator if None): the sub-policy [N], the two probability coins [N, 2]
    and the two signs [N, 2]."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a batch [N, 3, H, W], got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {x.dtype}")
    n = x.shape[0]
    if n == 0:
        return x.clone()
    choice, coin, sign = draw_subpolicies(generator, n, x.device)
    return apply_subpolicies(x, choice, coin, sign)


def apply_subpolicies(x: torch.Tensor, choice: torch.Tensor, coin: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """The deterministic part of `cifar10_autoaugment`: image i gets sub-policy choice[i] (0..24); its operation
    s (0, 1) runs when coin[i, s] < its probability, with a negative magnitude when sign[i, s] is True (signed ops
    only). x: uint8 [N, 3, H, W]; choice [N]; coin [N, 2] float in [0, 1); sign [N, 2] bool. Returns a new tensor."""
    _, _, h, w = x.shape
    dev = x.device
    choice, coin, sign = choice.to(dev), coin.to(dev), sign.to(dev)
    out = x.clone()
    op_index = {op: i for i, op in enumerate(OPS)}
    for slot in range(2):
        ops = torch.tensor([op_index[sub[slot][0]] for sub in CIFAR10_POLICY], device=dev)
        probs = torch.tensor([sub[slot][1] for sub in CIFAR10_POLICY], dtype=torch.float32, device=dev)
        mags = torch.tensor(
            [magnitude(sub[slot][0], sub[slot][2], h if sub[slot][0] == "TranslateY" else w) for sub in CIFAR10_POLICY],
            dtype=torch.float64,
            device=dev,
        )
        op_of = ops[choice]
        applied = coin[:, slot].to(torch.float32) < probs[choice]
        unsigned = mags[choice]
        signed = torch.where(sign[:, slot], -unsigned, unsigned)
        for op in OPS:
            picked = torch.nonzero(applied & (op_of == op_index[op])).reshape(-1)
            if picked.numel() == 0:
                continue
            m = signed[picked] if op in SIGNED_OPS else unsigned[picked]
            out[picked] = apply_op(op, out[picked], m)
    return out
