"""On-device batched augmentation: crop/flip, RandAugment (against PIL), mixup and cutmix, batch sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from nas.data import load_dataset
from nas.data.augment import (AugmentConfig, Augmenter, crop_flip, cutmix, mix, mixup, random_resized_crop,
                              resize_images)
from nas.data.randaugment import GEOMETRIC_OPS, OPS, apply_op, rand_augment
from nas.data.sources import TensorSource, ordered_batches


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    """Four random 3-channel images, 0..255 integral floats."""
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (4, 3, 12, 12), generator=g).float()


def test_resize_and_crop_flip_are_batched_and_seeded():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8).to(torch.uint8)
    big = resize_images(x, 32)
    assert big.shape == (2, 1, 32, 32) and big.dtype == torch.uint8
    assert resize_images(big, 8).shape == (2, 1, 8, 8)
    batch = torch.randint(0, 255, (64, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = crop_flip(batch, 2, True, torch.Generator().manual_seed(5))
    b = crop_flip(batch, 2, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == batch.shape
    flipped = crop_flip(batch, 0, True, torch.Generator().manual_seed(1))
    same = (flipped == batch).flatten(1).all(1)
    mirrored = (flipped == batch.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    shifted = crop_flip(batch, 3, False, torch.Generator().manual_seed(2))
    # Each output is a translated copy: its centre appears in the source at some offset within +-3.
    for i in range(4):
        centre = shifted[i, 0, 5:11, 5:11]
        assert any(torch.equal(centre, batch[i, 0, 5 + dy:11 + dy, 5 + dx:11 + dx])
                   for dy in range(-3, 4) for dx in range(-3, 4))


def _pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x.permute(1, 2, 0).to(torch.uint8).numpy(), "RGB")


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()


@pytest.mark.parametrize("name, magnitude, reference, tolerance", [
    ("Invert", 10, lambda im, m: ImageOps.invert(im), 0),
    ("Posterize", 5, lambda im, m: ImageOps.posterize(im, int(m / 10 * 4)), 0),
    ("Posterize", 10, lambda im, m: ImageOps.posterize(im, int(m / 10 * 4)), 0),
    ("Solarize", 6, lambda im, m: ImageOps.solarize(im, int(m / 10 * 256)), 0),
    ("Equalize", 10, lambda im, m: ImageOps.equalize(im), 0),
    ("AutoContrast", 10, lambda im, m: ImageOps.autocontrast(im), 1),
    ("Brightness", 7, lambda im, m: ImageEnhance.Brightness(im).enhance(m / 10 * 1.8 + 0.1), 1),
    ("Color", 3, lambda im, m: ImageEnhance.Color(im).enhance(m / 10 * 1.8 + 0.1), 2),
    ("Contrast", 8, lambda im, m: ImageEnhance.Contrast(im).enhance(m / 10 * 1.8 + 0.1), 2),
    ("Sharpness", 9, lambda im, m: ImageEnhance.Sharpness(im).enhance(m / 10 * 1.8 + 0.1), 2),
])
def test_pixel_operations_agree_with_pil(rgb, name, magnitude, reference, tolerance):
    """The released operations are PIL's (ImageOps / ImageEnhance) with the released magnitude scale;
    PIL rounds its grey conversion and mean, hence the small tolerances of the blends."""
    ours = apply_op(name, rgb, magnitude)
    for i in range(rgb.shape[0]):
        theirs = _tensor(reference(_pil(rgb[i]), magnitude))
        assert (ours[i] - theirs).abs().max().item() <= tolerance, name


def test_solarize_add_and_cutout_follow_the_released_code():
    x = torch.arange(0, 256, dtype=torch.float32).view(1, 1, 16, 16)
    added = apply_op("SolarizeAdd", x, 10)  # + int(110) below 128, clipped
    assert torch.equal(added, torch.where(x < 128, (x + 110).clamp(max=255), x))
    cut = apply_op("Cutout", torch.zeros(1, 1, 32, 32), 10, centre=(0.5, 0.5))
    pad = int(40 / 224 * 32)  # the released 40 px at 224 px, as a fraction of the side
    assert int((cut == 128).sum()) == (2 * pad) ** 2 and cut[0, 0, 16, 16] == 128 and cut[0, 0, 0, 0] == 0


def test_geometric_operations(rgb):
    for name in GEOMETRIC_OPS:  # level 0: no motion at all, exactly
        assert torch.equal(apply_op(name, rgb, 0), rgb), name
    square = torch.randint(0, 256, (2, 1, 9, 9), generator=torch.Generator().manual_seed(1)).float()
    quarter = apply_op("Rotate", square, 30, sign=1.0)  # 30 * 30/10 = 90 degrees about the centre
    assert torch.equal(quarter, torch.rot90(square, 1, dims=(2, 3))) or \
        torch.equal(quarter, torch.rot90(square, -1, dims=(2, 3)))
    ramp = torch.arange(8).float().view(1, 1, 1, 8).expand(1, 1, 8, 8)
    sheared = apply_op("ShearX", ramp, 10, sign=1.0)  # x_in = x + 0.3 y: row y shifts by round(0.3 y)
    for y in range(8):
        k = int(0.3 * y + 0.5)
        assert torch.equal(sheared[0, 0, y, :8 - k], ramp[0, 0, y, k:]), y
    shift = 100 / 224 * 9 * 0.5  # TranslateX at magnitude 5: +-(100/224) * 0.5 of the side
    moved = apply_op("TranslateX", square, 5, sign=1.0)
    k = round(shift)
    assert torch.equal(moved[..., :9 - k], square[..., k:]) and bool((moved[..., 9 - k:] == 128).all())


def test_rand_augment_keeps_shape_range_and_is_seeded(digits):
    x = resize_images(digits.train_x[:64], 16).float()
    a = rand_augment(x, 9, 2, torch.Generator().manual_seed(0))
    b = rand_augment(x, 9, 2, torch.Generator().manual_seed(0))
    c = rand_augment(x, 9, 2, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 255
    changed = (a != x).flatten(1).any(1)
    assert int(changed.sum()) > 48  # two operations per image: almost every image changes
    assert torch.equal(rand_augment(x, 0, 2, torch.Generator().manual_seed(0)), x)
    assert len(OPS) == 16


@pytest.mark.parametrize("config", [AugmentConfig(), AugmentConfig(magnitude=10), AugmentConfig(mixup_alpha=0.2),
                                    AugmentConfig(cutmix_alpha=1.0), AugmentConfig(scale_min=0.25),
                                    AugmentConfig(2, True, 15, 0.2, 0.2, 3, 0.5)])
def test_train_batch_shapes_soft_labels_and_seed(digits, config):
    aug = Augmenter(digits.mean, digits.std, "cpu", num_classes=10)
    x, y = resize_images(digits.train_x[:50], 16), digits.train_y[:50]
    images, targets = aug.train_batch(x, y, config, torch.Generator().manual_seed(3))
    again, targets2 = aug.train_batch(x, y, config, torch.Generator().manual_seed(3))
    assert images.shape == (50, 1, 16, 16) and images.dtype == torch.float32
    assert images.is_contiguous(memory_format=torch.channels_last) or config.mixes
    assert torch.equal(images, again) and torch.equal(targets, targets2)
    if config.mixes:
        assert targets.shape == (50, 10) and torch.allclose(targets.sum(1), torch.ones(50))
        assert bool((targets >= 0).all())
    else:
        assert torch.equal(targets, y)
    if config == AugmentConfig():  # magnitude 0, no crop, no flip, no mixing: exactly the plain input
        assert torch.equal(images, aug.to_float(x))


def test_random_resized_crop_magnifies():
    # A white square in the middle of a black image: every crop shows it at least as large.
    x = torch.zeros(32, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 255
    crops = random_resized_crop(x, 0.25, torch.Generator().manual_seed(0))
    again = random_resized_crop(x, 0.25, torch.Generator().manual_seed(0))
    assert crops.shape == x.shape and torch.equal(crops, again)
    assert float(crops.min()) >= 0 and float(crops.max()) <= 255
    bright = (crops > 127).flatten(1).sum(1)
    assert float(bright.float().mean()) > 16  # the 4 x 4 square covers more pixels on average


def test_mixup_and_cutmix_weights_match_the_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 10, 10, generator=g)
    t = torch.eye(8)
    mixed, labels = mixup(x, t, 0.4, torch.Generator().manual_seed(1))
    w = labels.diagonal()  # image i keeps weight w_i of itself, gives 1 - w_i to image 7 - i
    assert bool((w >= 0.5).all()) and torch.allclose(labels[torch.arange(8), 7 - torch.arange(8)], 1 - w)
    assert torch.allclose(mixed, x * w.view(-1, 1, 1, 1) + x.flip(0) * (1 - w).view(-1, 1, 1, 1))
    cut, labels = cutmix(x, t, 1.0, torch.Generator().manual_seed(2))
    pasted = (cut != x).flatten(1).float().mean(1)  # share of pixels taken from the partner
    assert torch.allclose(pasted, labels[torch.arange(8), 7 - torch.arange(8)], atol=1e-6)
    both, labels = mix(x, torch.arange(8), 8, 0.2, 1.0, torch.Generator().manual_seed(3))
    assert both.shape == x.shape and torch.allclose(labels.sum(1), torch.ones(8))
    assert bool((labels[:4, 4:] == 0).all())  # each half mixes within itself


def test_tensor_source_reads_by_index_at_a_resolution(digits):
    source = TensorSource(digits.minival_x, digits.minival_y, "cpu")
    index = torch.tensor([5, 0, 3])
    images, labels = source.batch(index, 16)
    assert images.shape == (3, 1, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(labels, digits.minival_y[index])
    assert torch.equal(images, resize_images(digits.minival_x, 16)[index])
    seen = torch.cat([y for _, y in ordered_batches(source, 100, 8)])
    assert torch.equal(seen, digits.minival_y) and len(source) == len(digits.minival_y)
    assert len(digits.source("train")) == len(digits.train_y)
