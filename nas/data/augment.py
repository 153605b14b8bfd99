"""Batched augmentation on the training device: one tensor program per batch, no per-sample loop.

The dataset is resized once to the training resolution (:func:`resize_images`, uint8 kept), then
every batch goes through :meth:`Augmenter.train_batch`, in the order of the released EfficientNetV2
input pipeline:

1. random crop with zero padding and horizontal flip, fused into a single gather (uint8); with
   ``scale_min`` < 1 also an Inception-style random-resized crop (:func:`random_resized_crop`);
2. RandAugment (:mod:`nas.data.randaugment`) at ``magnitude`` on the 0..255 scale;
3. conversion to float with normalization folded into one multiply-add;
4. mixup and / or cutmix within the batch, with soft labels (:func:`mix`).

``magnitude``, ``mixup_alpha`` and ``cutmix_alpha`` are the regularization knobs that progressive
learning schedules; 0 turns each off. Every random number comes from the ``torch.Generator`` passed
in, so a seeded run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.randaugment import rand_augment

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
    """What :class:`Augmenter` does to a training batch. ``magnitude`` (RandAugment's level, with
    ``ra_layers`` operations per image), ``mixup_alpha`` and ``cutmix_alpha`` of 0 turn those off;
    ``crop_padding`` 0 turns the random crop off; ``scale_min`` 1 turns the random-resized crop off."""

    crop_padding: int = 0
    hflip: bool = False
    magnitude: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    ra_layers: int = 2
    scale_min: float = 1.0

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


class Augmenter:
    """Normalization constants on the device plus the batched random transforms."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device | str,
                 channels_last: bool = True, num_classes: int | None = None) -> None:
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.num_classes = num_classes

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0..255 float) batch -> normalized float32 in the model's memory format."""
        x = x.contiguous(memory_format=self.memory_format)
        return torch.addcmul(self.shift, x.float(), self.scale)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, config: AugmentConfig,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one uint8 batch already at the training resolution.

        Returns ``(images, targets)``: ``targets`` are the int64 labels, or (N, num_classes) soft
        labels that sum to 1 when mixup or cutmix is on (``cross_entropy`` takes either).
        """
        if config.crop_padding > 0 or config.hflip:
            x = crop_flip(x, config.crop_padding, config.hflip, generator)
        if config.scale_min < 1:
            x = random_resized_crop(x, config.scale_min, generator)
        if config.magnitude > 0:
            x = rand_augment(x.float(), config.magnitude, config.ra_layers, generator)
        images = self.to_float(x)
        if not config.mixes:
            return images, y
        if self.num_classes is None:
            raise ValueError("Augmenter: mixup / cutmix need num_classes")
        return mix(images, y, self.num_classes, config.mixup_alpha, config.cutmix_alpha, generator)


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


def random_resized_crop(x: torch.Tensor, scale_min: float, generator: torch.Generator,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Inception-style crop of every image, resized back to its size: area ~ U(scale_min, 1) of the
    image, aspect ratio log-uniform in ``ratio``, position uniform inside the image, bilinear.

    One ``affine_grid`` + ``grid_sample`` for the batch; returns floats on the 0..255 scale. Objects
    look larger than in the whole image: the train / test discrepancy that FixRes corrects by testing
    at a higher resolution.
    """
    n, device = x.shape[0], x.device
    draws = torch.rand((4, n), generator=generator, device=device)
    area = scale_min + (1.0 - scale_min) * draws[0]
    low, high = torch.log(torch.tensor(ratio, device=device))
    aspect = torch.exp(low + (high - low) * draws[1])
    w = torch.sqrt(area * aspect).clamp(max=1.0)
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    theta = torch.zeros((n, 2, 3), device=device)
    theta[:, 0, 0], theta[:, 1, 1] = w, h
    theta[:, 0, 2] = (2.0 * draws[2] - 1.0) * (1.0 - w)
    theta[:, 1, 2] = (2.0 * draws[3] - 1.0) * (1.0 - h)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False).clamp_(0.0, 255.0)


def _beta(alpha: float, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n draws of Beta(alpha, alpha). torch's Beta sampler takes no generator, so a numpy Generator
    seeded from the torch one draws them: still a pure function of the run's seed."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=n)
    return torch.from_numpy(draws).to(device=device, dtype=torch.float32)


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The released V2 mixup: image i is blended with image N-1-i (the batch reversed) with its own
    weight w ~ Beta(alpha, alpha), w = max(w, 1 - w); ``targets`` (N, K) are blended alike."""
    w = _beta(alpha, x.shape[0], generator, x.device)
    w = torch.maximum(w, 1.0 - w)
    images = x * w.view(-1, 1, 1, 1) + x.flip(0) * (1.0 - w).view(-1, 1, 1, 1)
    return images, targets * w.view(-1, 1) + targets.flip(0) * (1.0 - w).view(-1, 1)


def cutmix_masks(n: int, h: int, w: int, alpha: float, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """(N, 1, H, W) float boxes of the released V2 cutmix: a random centre, a box of side
    sqrt(1 - a) * size with a ~ Beta(alpha, alpha), clipped at the borders."""
    centre_y = torch.randint(0, h, (n, 1, 1, 1), generator=generator, device=device)
    centre_x = torch.randint(0, w, (n, 1, 1, 1), generator=generator, device=device)
    ratio = torch.sqrt(1.0 - _beta(alpha, n, generator, device)).view(n, 1, 1, 1)
    half_h = (ratio * h).long() // 2
    half_w = (ratio * w).long() // 2
    rows = torch.arange(h, device=device).view(1, 1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, 1, w)
    box = ((rows >= centre_y - half_h) & (rows < centre_y + half_h)
           & (cols >= centre_x - half_w) & (cols < centre_x + half_w))
    return box.float()


def cutmix(x: torch.Tensor, targets: torch.Tensor, alpha: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The released V2 cutmix: a box of image N-1-i is pasted into image i; its label weight is the
    box's actual area (after clipping)."""
    mask = cutmix_masks(x.shape[0], x.shape[2], x.shape[3], alpha, generator, x.device)
    area = mask.mean(dim=(1, 2, 3)).view(-1, 1)
    images = x * (1.0 - mask) + x.flip(0) * mask
    return images, targets * (1.0 - area) + targets.flip(0) * area


def mix(x: torch.Tensor, y: torch.Tensor, num_classes: int, mixup_alpha: float, cutmix_alpha: float,
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup and / or cutmix as the released V2 ``mixing``: with both on, the first half of the batch
    is mixed up and the second half cut-mixed (each within its half). Returns soft labels (N, K)."""
    targets = F.one_hot(y, num_classes).to(x.dtype)
    if mixup_alpha > 0 and cutmix_alpha > 0:
        half = x.shape[0] // 2
        a, ta = mixup(x[:half], targets[:half], mixup_alpha, generator)
        b, tb = cutmix(x[half:], targets[half:], cutmix_alpha, generator)
        return torch.cat([a, b]).contiguous(memory_format=_format_of(x)), torch.cat([ta, tb])
    if mixup_alpha > 0:
        return mixup(x, targets, mixup_alpha, generator)
    return cutmix(x, targets, cutmix_alpha, generator)


def _format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4 \
        and not x.is_contiguous() else torch.contiguous_format


__all__ = ["AugmentConfig", "Augmenter", "crop_flip", "cutmix", "cutmix_masks", "default_crop_padding", "mix",
           "mixup", "random_resized_crop", "resize_images"]
