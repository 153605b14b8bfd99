"""Batched augmentation on the training device: one tensor program per batch, no per-sample loop.

The dataset is resized once to the proxy resolution (:func:`resize_images`, uint8 kept), then every
batch goes through :meth:`Augmenter.train_batch`: random crop with zero padding and horizontal flip
fused into a single gather, conversion to float with normalization folded into one multiply-add,
then the two regularizers that progressive learning schedules: a magnitude-controlled photometric
op plus random erasing (``magnitude``, RandAugment's 0..10 scale) and mixup (``mixup_alpha``).
Every random number comes from the ``torch.Generator`` passed in, so a seeded run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_MAGNITUDE = 30.0  # RandAugment's scale is 0..10; progressive schedules go beyond (V2 uses up to 15-20)


def default_crop_padding(resolution: int, fraction: float = 0.125) -> int:
    """4 pixels at 32 for the default fraction 1/8 (the usual CIFAR recipe), proportionally elsewhere."""
    return round(resolution * fraction)


def resize_images(x: torch.Tensor, resolution: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, R, R), bilinear (antialiased when shrinking), in chunks.

    Done once per run on the device, so the per-step work is only the random part of augmentation.
    """
    if x.shape[2] == resolution and x.shape[3] == resolution:
        return x
    shrink = x.shape[2] > resolution or x.shape[3] > resolution
    out = torch.empty((x.shape[0], x.shape[1], resolution, resolution), dtype=torch.uint8, device=x.device)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].float()
        part = F.interpolate(part, size=(resolution, resolution), mode="bilinear", align_corners=False,
                             antialias=shrink)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


@dataclass(frozen=True)
class AugmentConfig:
    """What :class:`Augmenter` does to a training batch. ``magnitude`` 0 and ``mixup_alpha`` 0 turn
    those two off; ``crop_padding`` 0 turns the random crop off."""

    crop_padding: int = 0
    hflip: bool = False
    magnitude: float = 0.0
    mixup_alpha: float = 0.0


class Augmenter:
    """Normalization constants on the device plus the batched random transforms."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str,
                 channels_last: bool = True) -> None:
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> normalized float32 in the model's memory format (evaluation path)."""
        x = x.contiguous(memory_format=self.memory_format)
        return torch.addcmul(self.shift, x.float(), self.scale)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, config: AugmentConfig,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float]:
        """Augment one uint8 batch already at the proxy resolution.

        Returns ``(images, labels, mixed_labels, lam)``: the loss is
        ``lam * CE(out, labels) + (1 - lam) * CE(out, mixed_labels)``; without mixup ``mixed_labels`` is
        None and ``lam`` is 1.
        """
        if config.crop_padding > 0 or config.hflip:
            x = crop_flip(x, config.crop_padding, config.hflip, generator)
        images = self.to_float(x)
        if config.magnitude > 0:
            images = photometric(images, config.magnitude, self.shift, generator)
            images = random_erase(images, config.magnitude, generator)
        mixed, lam = None, 1.0
        if config.mixup_alpha > 0:
            images, mixed, lam = mixup(images, y, config.mixup_alpha, generator)
        return images, y, mixed, lam


def crop_flip(x: torch.Tensor, padding: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded batch and optional horizontal flip, as one indexed gather."""
    n, c, h, w = x.shape
    device = x.device
    if padding > 0:
        x = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    ox = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    rows = oy + torch.arange(h, device=device)
    ramp = torch.arange(w, device=device)
    if hflip:
        flip = torch.rand((n, 1), generator=generator, device=device) < 0.5
        ramp = torch.where(flip, ramp.flip(0), ramp)
    cols = ox + ramp
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    chans = torch.arange(c, device=device).view(1, c, 1, 1)
    return x[batch, chans, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def _level(magnitude: float) -> float:
    return min(float(magnitude), MAX_MAGNITUDE) / 10.0


def photometric(x: torch.Tensor, magnitude: float, zero: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-image brightness and contrast jitter; factors in 1 +- 0.5 * magnitude / 10.

    Works on normalized images: brightness scales the image about black (``zero``, where a pixel of
    value 0 lands after normalization), contrast about the image's own mean.
    """
    n = x.shape[0]
    spread = 0.5 * _level(magnitude)
    factors = 1.0 + spread * (2.0 * torch.rand((2, n, 1, 1, 1), generator=generator, device=x.device) - 1.0)
    brightness, contrast = factors[0].clamp_min(0.0), factors[1].clamp_min(0.0)
    x = (x - zero) * brightness + zero
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def random_erase(x: torch.Tensor, magnitude: float, generator: torch.Generator, probability: float = 0.5) -> torch.Tensor:
    """Zero (the dataset mean after normalization) a random square of side 0.05 * magnitude * R on
    about half the images: half the side at magnitude 10."""
    n, _, h, w = x.shape
    side = min(int(round(0.05 * min(float(magnitude), MAX_MAGNITUDE) * min(h, w))), min(h, w))
    if side <= 0:
        return x
    device = x.device
    top = torch.randint(0, h - side + 1, (n, 1, 1, 1), generator=generator, device=device)
    left = torch.randint(0, w - side + 1, (n, 1, 1, 1), generator=generator, device=device)
    chosen = (torch.rand((n, 1, 1, 1), generator=generator, device=device) < probability)
    r = torch.arange(h, device=device).view(1, 1, h, 1)
    q = torch.arange(w, device=device).view(1, 1, 1, w)
    box = (r >= top) & (r < top + side) & (q >= left) & (q < left + side) & chosen
    return x.masked_fill(box, 0.0)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend each image with another of the batch, weight lam ~ Beta(alpha, alpha) (one per batch).

    torch's Beta sampler takes no generator, so lam is drawn by a numpy Generator seeded from the
    torch one: still a pure function of the run's seed.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator, device=x.device)
    return x * lam + x[perm] * (1.0 - lam), y[perm], lam


__all__ = ["AugmentConfig", "Augmenter", "crop_flip", "default_crop_padding", "mixup", "photometric",
           "random_erase", "resize_images"]
