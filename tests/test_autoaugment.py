"""AutoAugment (CIFAR-10 policy): each operation against hand-worked values or a brute-force loop reference,
the policy table and magnitudes, the sub-policy dispatch, and determinism. An optional cross-check against
Pillow runs when Pillow is installed."""
from __future__ import annotations

import math

import pytest
import torch

from snnlib.data import autoaugment as aa
from snnlib.data.autoaugment import (
    CIFAR10_POLICY,
    OPS,
    apply_op,
    apply_subpolicies,
    cifar10_autoaugment,
    draw_subpolicies,
    magnitude,
)


def _img(values, channels: int = 3) -> torch.Tensor:
    """A [1, C, H, W] uint8 batch with the same H x W plane in every channel."""
    plane = torch.tensor(values, dtype=torch.uint8)
    if plane.ndim == 1:
        plane = plane[None]
    return plane.expand(channels, *plane.shape)[None].clone()


def _rand(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------- policy table


def test_policy_table():
    assert len(CIFAR10_POLICY) == 25
    for sub in CIFAR10_POLICY:
        assert len(sub) == 2
        for op, p, b in sub:
            assert op in OPS and 0.0 <= p <= 1.0 and 0 <= b <= 9
    assert CIFAR10_POLICY[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    assert CIFAR10_POLICY[14] == (("Solarize", 0.5, 2), ("Invert", 0.0, 3))
    assert CIFAR10_POLICY[24] == (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1))


def test_magnitudes():
    assert magnitude("ShearX", 0) == 0.0 and magnitude("ShearY", 9) == pytest.approx(0.3)
    assert magnitude("ShearY", 8) == pytest.approx(0.3 * 8 / 9)
    assert magnitude("Rotate", 9) == pytest.approx(30.0) and magnitude("Rotate", 2) == pytest.approx(30 * 2 / 9)
    assert magnitude("Brightness", 9) == pytest.approx(0.9) and magnitude("Color", 3) == pytest.approx(0.3)
    # Translate: 150/331 of the size, whole pixels.
    assert [magnitude("TranslateX", b, 32) for b in range(10)] == [0, 2, 3, 5, 6, 8, 10, 11, 13, 15]
    assert magnitude("TranslateY", 9, 331) == 150
    # Posterize: 8 -> 4 bits, linear and rounded.
    assert [magnitude("Posterize", b) for b in range(10)] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    # Solarize: threshold 256 -> 0.
    assert magnitude("Solarize", 0) == 256.0 and magnitude("Solarize", 9) == 0.0
    assert magnitude("Solarize", 2) == pytest.approx(256 * 7 / 9)
    for op in ("AutoContrast", "Equalize", "Invert"):
        assert magnitude(op, 5) == 0.0
    with pytest.raises(ValueError):
        magnitude("Rotate", 10)
    with pytest.raises(ValueError):
        magnitude("Blur", 1)


# ---------------------------------------------------------------------------------------------- pixel ops


def test_invert():
    x = _img([[0, 1, 128, 255]])
    assert apply_op("Invert", x, 0).tolist() == _img([[255, 254, 127, 0]]).tolist()


def test_posterize_bits():
    x = _img([[0b10110111, 0b01111111, 255, 0]])
    assert apply_op("Posterize", x, 5)[0, 0, 0].tolist() == [0b10110000, 0b01111000, 0b11111000, 0]
    assert apply_op("Posterize", x, 4)[0, 0, 0].tolist() == [0b10110000, 0b01110000, 0b11110000, 0]
    assert apply_op("Posterize", x, 1)[0, 0, 0].tolist() == [128, 0, 128, 0]
    assert torch.equal(apply_op("Posterize", x, 8), x)
    # per-image bits
    xx = torch.cat([x, x])
    out = apply_op("Posterize", xx, torch.tensor([8.0, 4.0]))
    assert torch.equal(out[0], x[0]) and out[1, 0, 0].tolist() == [0b10110000, 0b01110000, 0b11110000, 0]


def test_solarize_threshold():
    x = _img([[0, 100, 127, 128, 200, 255]])
    assert apply_op("Solarize", x, 128)[0, 0, 0].tolist() == [0, 100, 127, 127, 55, 0]
    assert torch.equal(apply_op("Solarize", x, 256), x)  # bin 0 changes nothing
    assert torch.equal(apply_op("Solarize", x, 0), 255 - x)  # bin 9 inverts everything
    # fractional threshold 199.1 (bin 2): 200 is inverted, 199 is not
    y = _img([[199, 200]])
    assert apply_op("Solarize", y, magnitude("Solarize", 2))[0, 0, 0].tolist() == [199, 55]


def test_autocontrast_hand_worked():
    x = _img([[50, 100], [100, 50]])
    assert apply_op("AutoContrast", x, 0)[0, 0].tolist() == [[0, 255], [255, 0]]
    # three values: 20 -> floor((20 - 10) * 255 / 20) = 127
    y = _img([[10, 20, 30]])
    assert apply_op("AutoContrast", y, 0)[0, 0, 0].tolist() == [0, 127, 255]
    # per channel; a constant channel is unchanged
    z = torch.tensor([[[[0, 10]], [[7, 7]], [[200, 100]]]], dtype=torch.uint8)
    assert apply_op("AutoContrast", z, 0)[0].tolist() == [[[0, 255]], [[7, 7]], [[255, 0]]]


def _equalize_reference(plane: list[int]) -> list[int]:
    """PIL's equalize lookup table, written as loops over one channel."""
    hist = [0] * 256
    for v in plane:
        hist[v] += 1
    nonzero = [c for c in hist if c]
    if len(nonzero) <= 1:
        return list(plane)
    step = (sum(nonzero) - nonzero[-1]) // 255
    if step == 0:
        return list(plane)
    lut, n = [], step // 2
    for i in range(256):
        lut.append(min(255, n // step))
        n += hist[i]
    return [lut[v] for v in plane]


def test_equalize_known_histogram():
    # 1020 pixels: 510 at 5, 255 at 100, 255 at 200. step = (1020 - 255) // 255 = 3, n0 = 1:
    # lut[5] = 1 // 3 = 0, lut[100] = (1 + 510) // 3 = 170, lut[200] = (1 + 765) // 3 = 255.
    plane = torch.tensor([5] * 510 + [100] * 255 + [200] * 255, dtype=torch.uint8).reshape(4, 255)
    x = plane.expand(3, 4, 255)[None].clone()
    out = apply_op("Equalize", x, 0)
    expected = torch.tensor([0] * 510 + [170] * 255 + [255] * 255, dtype=torch.uint8).reshape(4, 255)
    assert torch.equal(out[0, 1], expected)
    # two values, 255 pixels each: step 1 -> 0 and 255
    y = torch.tensor([10] * 255 + [20] * 255, dtype=torch.uint8).reshape(2, 255).expand(3, 2, 255)[None]
    assert set(apply_op("Equalize", y, 0).unique().tolist()) == {0, 255}
    # a single value, or too few pixels (step 0): unchanged
    assert torch.equal(apply_op("Equalize", _img([[9, 9], [9, 9]]), 0), _img([[9, 9], [9, 9]]))
    small = _img([[0, 0, 1, 2]])
    assert torch.equal(apply_op("Equalize", small, 0), small)


def test_equalize_brute_force():
    g = torch.Generator().manual_seed(3)
    # skewed histograms with a few hundred to a few thousand pixels per channel
    x = (torch.rand(3, 3, 40, 50, generator=g) ** 3 * 180).to(torch.uint8)
    x[2, 1] = 77  # one constant channel
    out = apply_op("Equalize", x, 0)
    for i in range(x.shape[0]):
        for c in range(3):
            ref = _equalize_reference(x[i, c].flatten().tolist())
            assert out[i, c].flatten().tolist() == ref


# ---------------------------------------------------------------------------------------------- enhance ops


def test_brightness():
    x = _rand(2, 5, 6)
    assert torch.equal(apply_op("Brightness", x, -1.0), torch.zeros_like(x))  # factor 0 -> black
    assert torch.equal(apply_op("Brightness", x, 0.0), x)  # factor 1 -> unchanged
    y = _img([[10, 11, 255, 0]])
    assert apply_op("Brightness", y, -0.5)[0, 0, 0].tolist() == [5, 5, 127, 0]  # truncated
    assert apply_op("Brightness", y, 0.5)[0, 0, 0].tolist() == [15, 16, 255, 0]  # clipped at 255


def test_color():
    x = torch.tensor([[[[255, 0, 10]], [[0, 255, 20]], [[0, 0, 30]]]], dtype=torch.uint8)  # pixels R, G, (10,20,30)
    gray = apply_op("Color", x, -1.0)  # factor 0 -> grayscale in all channels
    # L = 0.299 R + 0.587 G + 0.114 B, rounded: 76.2 -> 76, 149.7 -> 150, 18.1 -> 18
    for c in range(3):
        assert gray[0, c, 0].tolist() == [76, 150, 18]
    assert torch.equal(apply_op("Color", x, 0.0), x)
    # factor 2: 2 x - gray, clipped: R pixel -> (255, 0, 0) clipped; (10,20,30) -> (2, 22, 42)
    assert apply_op("Color", x, 1.0)[0, :, 0, 2].tolist() == [2, 22, 42]


def test_contrast():
    x = torch.tensor([[[[0, 255]]] * 3], dtype=torch.uint8)  # black and white pixels, gray mean 127.5 -> 128
    assert apply_op("Contrast", x, -1.0).unique().tolist() == [128]
    assert torch.equal(apply_op("Contrast", x, 0.0), x)
    # factor 0.5: 128 + 0.5 (v - 128) -> 64, 191.5 -> 191
    assert apply_op("Contrast", x, -0.5)[0, 0, 0].tolist() == [64, 191]
    r = _rand(3, 4, 4)
    assert torch.equal(apply_op("Contrast", r, 0.0), r)


def _smooth_reference(plane: list[list[int]]) -> list[list[int]]:
    h, w = len(plane), len(plane[0])
    out = [row[:] for row in plane]
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            s = sum(plane[i + di][j + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1)) + 4 * plane[i][j]
            out[i][j] = math.floor(s / 13 + 0.5)
    return out


def test_sharpness():
    # factor 0 -> the smoothed image; a lone 13 in the middle of a 3x3 becomes 5, the border is unchanged
    x = _img([[0, 0, 0], [0, 13, 0], [0, 0, 0]])
    assert apply_op("Sharpness", x, -1.0)[0, 0].tolist() == [[0, 0, 0], [0, 5, 0], [0, 0, 0]]
    r = _rand(2, 5, 7, seed=4)
    smoothed = apply_op("Sharpness", r, -1.0)
    for i in range(2):
        for c in range(3):
            assert smoothed[i, c].tolist() == _smooth_reference(r[i, c].tolist())
    assert torch.equal(apply_op("Sharpness", r, 0.0), r)
    # factor 2 (sharpen): 2 x - smooth, clipped, truncated; the border stays unchanged
    sharp = apply_op("Sharpness", r, 1.0)
    ref = (2 * r.int() - smoothed.int()).clamp(0, 255)
    assert torch.equal(sharp.int(), ref)
    assert torch.equal(sharp[..., 0, :], r[..., 0, :]) and torch.equal(sharp[..., :, -1], r[..., :, -1])


# ---------------------------------------------------------------------------------------------- geometric ops


def _affine_reference(img: torch.Tensor, a, b, tx, d, e, ty) -> torch.Tensor:
    """Nearest pixel of input (a x + b y + tx, d x + e y + ty) for each output pixel centre (x, y), fill 128."""
    c, h, w = img.shape
    out = torch.full_like(img, 128)
    for i in range(h):
        for j in range(w):
            x, y = j + 0.5, i + 0.5
            sx, sy = math.floor(a * x + b * y + tx), math.floor(d * x + e * y + ty)
            if 0 <= sx < w and 0 <= sy < h:
                out[:, i, j] = img[:, sy, sx]
    return out


def test_translate_shifts_and_fills():
    x = _rand(1, 4, 6, seed=5)
    k = 2
    out = apply_op("TranslateX", x, k)  # content moves left by k
    assert torch.equal(out[..., : 6 - k], x[..., k:]) and (out[..., 6 - k :] == 128).all()
    out = apply_op("TranslateX", x, -k)  # and right for a negative magnitude
    assert torch.equal(out[..., k:], x[..., : 6 - k]) and (out[..., :k] == 128).all()
    out = apply_op("TranslateY", x, 1)
    assert torch.equal(out[..., :3, :], x[..., 1:, :]) and (out[..., 3:, :] == 128).all()
    out = apply_op("TranslateY", x, -3)
    assert torch.equal(out[..., 3:, :], x[..., :1, :]) and (out[..., :3, :] == 128).all()
    assert torch.equal(apply_op("TranslateX", x, 0), x)
    assert (apply_op("TranslateX", x, 6) == 128).all()  # shifted fully out
    # per-image amounts in one call
    xx = torch.cat([x, x])
    out = apply_op("TranslateX", xx, torch.tensor([1.0, -1.0]))
    assert torch.equal(out[0, :, :, :5], x[0, :, :, 1:]) and torch.equal(out[1, :, :, 1:], x[0, :, :, :5])


def test_rotate():
    x = _rand(2, 6, 6, seed=6)
    assert torch.equal(apply_op("Rotate", x, 0.0), x)
    # +90 degrees is counter-clockwise on screen: the top-right corner goes to the top-left
    out = apply_op("Rotate", x, 90.0)
    assert torch.equal(out, torch.rot90(x, 1, dims=(2, 3)))
    assert torch.equal(out[..., 0, 0], x[..., 0, 5])
    assert torch.equal(apply_op("Rotate", x, -90.0), torch.rot90(x, -1, dims=(2, 3)))
    assert torch.equal(apply_op("Rotate", x, 180.0), x.flip(2, 3))
    # a policy angle against the loop reference: input = c + R (output - c)
    deg = magnitude("Rotate", 2)
    y = _rand(1, 8, 10, seed=7)
    out = apply_op("Rotate", y, deg)
    t = math.radians(deg)
    cs, sn = math.cos(t), math.sin(t)
    cx, cy = 5.0, 4.0
    ref = _affine_reference(y[0], cs, -sn, cx - cs * cx + sn * cy, sn, cs, cy - sn * cx - cs * cy)
    assert torch.equal(out[0], ref)
    corners = apply_op("Rotate", y, 30.0)[0, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 128).all()  # the corners are filled


def test_shear():
    x = _rand(2, 7, 9, seed=8)
    assert torch.equal(apply_op("ShearX", x, 0.0), x)
    assert torch.equal(apply_op("ShearY", x, 0.0), x)
    for m in (0.3, -0.3, magnitude("ShearX", 8), -magnitude("ShearX", 7)):
        out_x = apply_op("ShearX", x, m)
        out_y = apply_op("ShearY", x, m)
        for i in range(2):
            assert torch.equal(out_x[i], _affine_reference(x[i], 1, m, 0, 0, 1, 0))
            assert torch.equal(out_y[i], _affine_reference(x[i], 1, 0, 0, m, 1, 0))
    # hand-worked: ShearX 0.3, row 6 (centre y = 6.5) reads x + 1.95, i.e. column j + 2; fill on the right
    out = apply_op("ShearX", x, 0.3)
    assert torch.equal(out[:, :, 6, :7], x[:, :, 6, 2:]) and (out[:, :, 6, 7:] == 128).all()
    assert torch.equal(out[:, :, 0], x[:, :, 0])  # row 0 shifts by floor(0.5 + 0.15) = 0


# ---------------------------------------------------------------------------------------------- full policy


def test_shape_dtype_range_and_input_untouched():
    x = _rand(32, 32, 32, seed=9)
    before = x.clone()
    out = cifar10_autoaugment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert int(out.min()) >= 0 and int(out.max()) <= 255
    assert torch.equal(x, before)
    assert not torch.equal(out, x)
    assert cifar10_autoaugment(x[:0]).shape == (0, 3, 32, 32)
    # non-square images
    assert cifar10_autoaugment(_rand(8, 12, 20)).shape == (8, 3, 12, 20)
    with pytest.raises(ValueError):
        cifar10_autoaugment(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError):
        cifar10_autoaugment(torch.zeros(2, 3, 8, 8))


def test_determinism():
    x = _rand(64, 16, 16, seed=10)
    a = cifar10_autoaugment(x, torch.Generator().manual_seed(123))
    b = cifar10_autoaugment(x, torch.Generator().manual_seed(123))
    c = cifar10_autoaugment(x, torch.Generator().manual_seed(124))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = cifar10_autoaugment(x)
    torch.manual_seed(5)
    assert torch.equal(d, cifar10_autoaugment(x))
    # the draws are exactly those of draw_subpolicies, then the deterministic dispatch
    choice, coin, sign = draw_subpolicies(torch.Generator().manual_seed(123), 64, x.device)
    assert torch.equal(a, apply_subpolicies(x, choice, coin, sign))


def _expected(x, sub_index, coins, signs):
    out = x
    h, w = x.shape[-2:]
    for slot, (op, p, b) in enumerate(CIFAR10_POLICY[sub_index]):
        if coins[slot] < p:
            m = magnitude(op, b, h if op == "TranslateY" else w)
            if op in aa.SIGNED_OPS and signs[slot]:
                m = -m
            out = apply_op(op, out, m)
    return out


@pytest.mark.parametrize("negative", [False, True])
def test_every_subpolicy_dispatch(negative):
    """Force each of the 25 sub-policies with both operations on: the result is op2(op1(x)) with the table's
    magnitudes (and signs)."""
    x = _rand(25, 16, 20, seed=11)
    choice = torch.arange(25)
    coin = torch.zeros(25, 2)
    sign = torch.full((25, 2), negative)
    out = apply_subpolicies(x, choice, coin, sign)
    for k in range(25):
        assert torch.equal(out[k : k + 1], _expected(x[k : k + 1], k, (0.0, 0.0), (negative, negative))), k
    # mixed coins: only the first / only the second operation
    coin1 = torch.tensor([[0.0, 0.999]] * 25)
    out1 = apply_subpolicies(x, choice, coin1, sign)
    for k in range(25):
        assert torch.equal(out1[k : k + 1], _expected(x[k : k + 1], k, (0.0, 0.999), (negative, negative))), k
    # coins at 0.9999 switch everything off (the largest probability is 0.9)
    assert torch.equal(apply_subpolicies(x, choice, torch.full((25, 2), 0.9999), sign), x)


def test_random_draws_match_dispatch_and_reach_all_subpolicies():
    n = 2000
    x = _rand(n, 8, 8, seed=12)
    g = torch.Generator().manual_seed(7)
    choice, coin, sign = draw_subpolicies(torch.Generator().manual_seed(7), n, x.device)
    assert set(choice.tolist()) == set(range(25))  # every sub-policy is reachable
    counts = torch.bincount(choice, minlength=25).float()
    assert counts.min() > 40 and counts.max() < 125  # roughly uniform (expected 80)
    assert sign.float().mean().item() == pytest.approx(0.5, abs=0.05)
    out = cifar10_autoaugment(x, g)
    for i in range(0, n, 97):  # spot-check against the per-image reference
        k = int(choice[i])
        ref = _expected(x[i : i + 1], k, coin[i].tolist(), sign[i].tolist())
        assert torch.equal(out[i : i + 1], ref), i


def test_invert_with_probability_zero_is_never_applied():
    """Sub-policy 14 is (Solarize, 0.5, 2), (Invert, 0.0, 3): the result is x or solarize(x), never inverted,
    even with a coin of exactly 0."""
    n = 400
    x = _rand(n, 6, 6, seed=13)
    choice = torch.full((n,), 14)
    g = torch.Generator().manual_seed(1)
    coin = torch.rand(n, 2, generator=g)
    coin[:50, 1] = 0.0
    sign = torch.rand(n, 2, generator=g) < 0.5
    out = apply_subpolicies(x, choice, coin, sign)
    solarized = apply_op("Solarize", x, magnitude("Solarize", 2))
    first_on = coin[:, 0] < 0.5
    assert torch.equal(out[first_on], solarized[first_on])
    assert torch.equal(out[~first_on], x[~first_on])
    # through the random path too: images that drew sub-policy 14 are never inverted
    y = _rand(3000, 4, 4, seed=14)
    ch, _, _ = draw_subpolicies(torch.Generator().manual_seed(2), 3000, y.device)
    res = cifar10_autoaugment(y, torch.Generator().manual_seed(2))
    picked = ch == 14
    assert picked.sum() > 50
    sol_y = apply_op("Solarize", y[picked], magnitude("Solarize", 2))
    same = (res[picked] == y[picked]).flatten(1).all(1) | (res[picked] == sol_y).flatten(1).all(1)
    assert same.all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_generator_gives_same_result_on_gpu():
    x = _rand(256, 32, 32, seed=15)
    cpu = cifar10_autoaugment(x, torch.Generator().manual_seed(0))
    gpu = cifar10_autoaugment(x.cuda(), torch.Generator().manual_seed(0)).cpu()
    # integer ops are exact; float blends/autocontrast may differ by 1 on the GPU (fused multiply-add)
    assert (cpu.int() - gpu.int()).abs().max() <= 1
    assert (cpu != gpu).float().mean() < 1e-3


# ---------------------------------------------------------------------------------------------- Pillow cross-check


def test_matches_pillow():
    """Agreement with Pillow's ImageOps / ImageEnhance / AFFINE / rotate (NEAREST, fill 128) on random images at
    the policy's magnitudes: bit-exact except at PIL's rounding artefacts (autocontrast, fixed-point affine).
    Skipped without Pillow (it is an optional dependency)."""
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    ImageOps = pytest.importorskip("PIL.ImageOps")
    ImageEnhance = pytest.importorskip("PIL.ImageEnhance")
    fill = (128, 128, 128)
    g = torch.Generator().manual_seed(16)
    for trial in range(6):
        h, w = 32 - trial, 32 + trial
        x = torch.randint(0, 256, (1, 3, h, w), generator=g, dtype=torch.uint8)
        if trial % 2:  # a narrow range, so autocontrast / equalize have work to do
            x = (x // 5 + 40).to(torch.uint8)
        im = Image.fromarray(x[0].permute(1, 2, 0).numpy())
        b = trial + 3
        f = 1 + (-1) ** trial * magnitude("Color", b)
        s = (-1) ** trial * magnitude("ShearX", b)
        t = (-1) ** trial * magnitude("TranslateX", b, w)
        r = (-1) ** trial * magnitude("Rotate", b)
        cases = {
            "Invert": (ImageOps.invert(im), 0),
            "Posterize": (ImageOps.posterize(im, int(magnitude("Posterize", b))), magnitude("Posterize", b)),
            "Solarize": (ImageOps.solarize(im, magnitude("Solarize", b)), magnitude("Solarize", b)),
            "AutoContrast": (ImageOps.autocontrast(im), 0),
            "Equalize": (ImageOps.equalize(im), 0),
            "Color": (ImageEnhance.Color(im).enhance(f), f - 1),
            "Contrast": (ImageEnhance.Contrast(im).enhance(f), f - 1),
            "Brightness": (ImageEnhance.Brightness(im).enhance(f), f - 1),
            "Sharpness": (ImageEnhance.Sharpness(im).enhance(f), f - 1),
            "ShearX": (im.transform(im.size, Image.AFFINE, (1, s, 0, 0, 1, 0), Image.NEAREST, fillcolor=fill), s),
            "ShearY": (im.transform(im.size, Image.AFFINE, (1, 0, 0, s, 1, 0), Image.NEAREST, fillcolor=fill), s),
            "TranslateX": (im.transform(im.size, Image.AFFINE, (1, 0, t, 0, 1, 0), Image.NEAREST, fillcolor=fill), t),
            "TranslateY": (im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, t), Image.NEAREST, fillcolor=fill), t),
            "Rotate": (im.rotate(r, Image.NEAREST, fillcolor=fill), r),
        }
        for op, (ref, m) in cases.items():
            got = apply_op(op, x, m)[0].permute(1, 2, 0).numpy().astype(int)
            ref = np.asarray(ref).astype(int)
            if op == "AutoContrast":  # PIL's double arithmetic is one lower at a few values
                assert np.abs(got - ref).max() <= 1 and (got != ref).mean() < 0.05, trial
            elif op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
                # PIL's nearest affine runs in 16.16 fixed point: it may pick a neighbour at near-ties
                assert (got != ref).any(-1).mean() < 0.01, (op, trial)
            else:
                assert np.array_equal(got, ref), (op, trial)
