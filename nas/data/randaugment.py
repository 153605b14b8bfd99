"""RandAugment on the training device, for a whole batch at once.

The operations and their magnitude scale are those of the released EfficientNetV2 code
(google/automl ``efficientnetv2/autoaugment.py``, ``distort_image_with_randaugment``), which V2's
progressive learning schedules. Each of ``layers`` rounds picks one of 16 operations uniformly
for every image, and applies it at the shared ``magnitude`` (the level; 10 is the paper's "maximum",
V2 goes to 15-20). The argument of each operation at level ``l``:

==============================  ====================================================================
Rotate                          +-30 * l/10 degrees about the centre (sign drawn per image)
ShearX, ShearY                  +-0.3 * l/10 (from the top-left corner, as the released code)
TranslateX, TranslateY          +-(100/224) * l/10 of the image side (the released 100 px at 224 px)
Cutout                          a square of side 2 * int(l/10 * 40/224 * side) at a random centre
Posterize                       keep int(4 * l/10) bits
Solarize                        invert pixels >= int(256 * l/10)
SolarizeAdd                     add int(110 * l/10) to pixels < 128
Color, Contrast, Brightness,    blend with the degenerate image (grey, mean grey, black, smoothed)
Sharpness                       by factor 1.8 * l/10 + 0.1
AutoContrast, Equalize, Invert  no magnitude
==============================  ====================================================================

Empty pixels of the geometric operations and the cutout square take the grey 128, as released.
Two deliberate departures: Contrast blends with the image's mean grey level (PIL's definition; the
released TensorFlow code divides the pixel *count* by 256 instead), and the translate and cutout
sizes are fractions of the image side rather than pixels, so that a 28-px image is not translated
by 100 px. Magnitude 0 means "off" (:class:`~nas.data.augment.Augmenter` skips RandAugment): at level
0 the released code posterizes to 0 bits and darkens to a tenth, which nobody wants.

How it stays batched: per round, every random number is drawn for the whole batch (so the draws do
not depend on the data), the batch is sorted by chosen operation, each operation runs once on its
contiguous chunk, and the five geometric operations share one gather (nearest neighbour, as
released). Pixel values stay on the 0..255 scale and are floored after blends, as the released
code's casts to uint8 do.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_LEVEL = 10.0
FILL = 128.0
TRANSLATE_FRACTION = 100 / 224
CUTOUT_FRACTION = 40 / 224
# Grouped so that the geometric operations are contiguous after sorting by operation index (a
# uniform choice over this order is the same distribution as over the released list).
PIXEL_OPS = ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
             "Brightness", "Sharpness", "Cutout")
GEOMETRIC_OPS = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
OPS = PIXEL_OPS + GEOMETRIC_OPS
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


def rand_augment(x: torch.Tensor, magnitude: float, layers: int, generator: torch.Generator) -> torch.Tensor:
    """``layers`` rounds of RandAugment on a float batch (N, C, H, W) with values in 0..255."""
    if magnitude <= 0 or layers <= 0 or x.shape[0] == 0:
        return x
    level = float(magnitude) / MAX_LEVEL
    for _ in range(layers):
        x = _one_round(x, level, generator)
    return x


def _one_round(x: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    n, device = x.shape[0], x.device
    op = torch.randint(0, len(OPS), (n,), generator=generator, device=device)
    sign = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    centre = torch.rand((n, 2), generator=generator, device=device)
    order = torch.argsort(op, stable=True)
    counts = torch.bincount(op, minlength=len(OPS)).tolist()
    xs, signs, centres = x[order], sign[order], centre[order]
    out, start = [], 0
    for k, name in enumerate(PIXEL_OPS):
        if counts[k]:
            part = slice(start, start + counts[k])
            out.append(_PIXEL[name](xs[part], level, centres[part]))
            start += counts[k]
    geometric = sum(counts[len(PIXEL_OPS):])
    if geometric:
        part = slice(start, start + geometric)
        out.append(_geometric(xs[part], op[order][part] - len(PIXEL_OPS), signs[part], level))
    result = torch.empty_like(x)
    result[order] = torch.cat(out)
    return result


def _blend(degenerate: torch.Tensor, image: torch.Tensor, factor: float) -> torch.Tensor:
    """The released ``blend``: degenerate + factor * (image - degenerate), clipped, cast to uint8."""
    return (degenerate + factor * (image - degenerate)).clamp_(0.0, 255.0).floor_()


def _enhance_factor(level: float) -> float:
    return level * 1.8 + 0.1


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(M, 1, H, W) grey levels; a one-channel image is its own grey."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True) if x.shape[1] > 1 else x
    w = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).floor_()


def _auto_contrast(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    scaled = ((x - lo) * (255.0 / (hi - lo).clamp_min(1e-6))).clamp_(0.0, 255.0).floor_()
    return torch.where(hi > lo, scaled, x)


def _equalize(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    """PIL's equalize per image and channel: a 256-bin histogram, its cumulative LUT, one gather."""
    m, c = x.shape[:2]
    values = x.round().clamp_(0, 255).long().flatten(2)  # (M, C, HW)
    hist = torch.zeros((m, c, 256), dtype=torch.long, device=x.device)
    hist.scatter_add_(2, values, torch.ones_like(values))
    last = hist.gather(2, values.amax(dim=2, keepdim=True))  # count of the highest value present
    step = (hist.sum(dim=2, keepdim=True) - last) // 255
    lut = (hist.cumsum(dim=2) + step // 2) // step.clamp_min(1)
    lut = torch.cat([torch.zeros_like(lut[..., :1]), lut[..., :-1]], dim=2).clamp_(0, 255)
    equalized = lut.gather(2, values).view_as(x).to(x.dtype)
    return torch.where(step.view(m, c, 1, 1) > 0, equalized, x)


def _invert(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    return 255.0 - x


def _posterize(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    shift = 8 - int(level * 4)
    if shift <= 0:
        return x
    unit = float(2 ** shift)
    return torch.floor(x / unit) * unit


def _solarize(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    threshold = int(level * 256)
    return torch.where(x < threshold, x, 255.0 - x)


def _solarize_add(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    addition = int(level * 110)
    return torch.where(x < 128, (x + addition).clamp(0.0, 255.0), x)


def _color(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    return _blend(_grey(x).expand_as(x), x, _enhance_factor(level))


def _contrast(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(mean.expand_as(x), x, _enhance_factor(level))


def _brightness(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, _enhance_factor(level))


def _sharpness(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    """Blend with PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13); borders keep the original."""
    c = x.shape[1]
    if x.shape[2] < 3 or x.shape[3] < 3:
        return x
    kernel = torch.ones((3, 3), dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(c, 1, 3, 3)
    smooth = F.conv2d(x, kernel, groups=c).clamp_(0.0, 255.0).floor_()
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, _enhance_factor(level))


def _cutout(x: torch.Tensor, level: float, centre: torch.Tensor) -> torch.Tensor:
    _, _, h, w = x.shape
    pad = int(level * CUTOUT_FRACTION * min(h, w))
    if pad <= 0:
        return x
    cy = (centre[:, 0] * h).long().clamp_(max=h - 1).view(-1, 1, 1, 1)
    cx = (centre[:, 1] * w).long().clamp_(max=w - 1).view(-1, 1, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    box = (rows >= cy - pad) & (rows < cy + pad) & (cols >= cx - pad) & (cols < cx + pad)
    return x.masked_fill(box, FILL)


_PIXEL = {"AutoContrast": _auto_contrast, "Equalize": _equalize, "Invert": _invert, "Posterize": _posterize,
          "Solarize": _solarize, "SolarizeAdd": _solarize_add, "Color": _color, "Contrast": _contrast,
          "Brightness": _brightness, "Sharpness": _sharpness, "Cutout": _cutout}


def geometric_matrices(kind: torch.Tensor, sign: torch.Tensor, level: float, h: int, w: int) -> torch.Tensor:
    """(M, 2, 3) maps from output pixel (x, y, 1) to input pixel coordinates, one per image.

    ``kind`` indexes :data:`GEOMETRIC_OPS`. Rotation turns about the image centre; shears start at the
    top-left corner and translations move by a fraction of the side, as the released operations.
    """
    m = kind.shape[0]
    dtype, device = sign.dtype, sign.device
    theta = torch.zeros((m, 2, 3), dtype=dtype, device=device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    angle = sign * (level * 30.0 * math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    rotation = torch.stack([torch.stack([cos, sin, cx - cos * cx - sin * cy], 1),
                            torch.stack([-sin, cos, cy + sin * cx - cos * cy], 1)], 1)
    theta = torch.where((kind == 0).view(m, 1, 1), rotation, theta)
    shear = sign * (level * 0.3)
    theta[:, 0, 1] = torch.where(kind == 1, shear, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(kind == 2, shear, theta[:, 1, 0])
    theta[:, 0, 2] = torch.where(kind == 3, sign * (level * TRANSLATE_FRACTION * w), theta[:, 0, 2])
    theta[:, 1, 2] = torch.where(kind == 4, sign * (level * TRANSLATE_FRACTION * h), theta[:, 1, 2])
    return theta


def warp_nearest(x: torch.Tensor, theta: torch.Tensor, fill: float = FILL) -> torch.Tensor:
    """Nearest-neighbour warp of (M, C, H, W) by per-image (2, 3) output->input pixel maps; pixels
    whose source lies outside the image take ``fill``. An identity map returns ``x`` exactly."""
    m, c, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=theta.dtype, device=x.device),
                            torch.arange(w, dtype=theta.dtype, device=x.device), indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, dtype=theta.dtype, device=x.device)])
    source = torch.floor(torch.matmul(theta, grid) + 0.5)  # (M, 2, HW); nearest, halves up (not to even)
    sx, sy = source[:, 0], source[:, 1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    index = (sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)).long()
    gathered = x.flatten(2).gather(2, index.unsqueeze(1).expand(m, c, h * w))
    return torch.where(inside.unsqueeze(1), gathered, torch.full_like(gathered, fill)).view(m, c, h, w)


def _geometric(x: torch.Tensor, kind: torch.Tensor, sign: torch.Tensor, level: float) -> torch.Tensor:
    return warp_nearest(x, geometric_matrices(kind, sign.to(x.dtype), level, x.shape[2], x.shape[3]))


def apply_op(name: str, x: torch.Tensor, magnitude: float, sign: float = 1.0,
             centre: tuple[float, float] = (0.5, 0.5)) -> torch.Tensor:
    """One named operation on every image of a 0..255 float batch, with a fixed sign (geometric
    operations) and cutout centre (fractions of the height and width): for tests and inspection."""
    level = float(magnitude) / MAX_LEVEL
    n = x.shape[0]
    if name in GEOMETRIC_OPS:
        kind = torch.full((n,), GEOMETRIC_OPS.index(name), device=x.device)
        return _geometric(x, kind, torch.full((n,), float(sign), device=x.device), level)
    if name not in _PIXEL:
        raise ValueError(f"unknown RandAugment operation {name!r}; valid: {', '.join(OPS)}")
    return _PIXEL[name](x, level, torch.tensor([centre], dtype=x.dtype, device=x.device).expand(n, 2))


__all__ = ["GEOMETRIC_OPS", "MAX_LEVEL", "OPS", "PIXEL_OPS", "apply_op", "geometric_matrices", "rand_augment",
           "warp_nearest"]
