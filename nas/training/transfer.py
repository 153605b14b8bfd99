"""Transfer learning: start from a trained ``model.pt`` on another dataset.

:func:`load_pretrained` puts a checkpoint's weights into a freshly built network of the same
backbone:

- the classifier is always new (the new dataset's classes; its fresh initialization is kept);
- the EMA weights are used when the checkpoint has them (the released EfficientNetV2 code's
  ``ft_init_ema=True``);
- when the number of input channels differs, the stem is adapted by averaging its kernels over the
  input channels and spreading the mean over the new channels, scaled by old / new channels: an
  image whose channels are equal gives the same stem response as before (1 -> 3: each RGB kernel is
  the grey kernel / 3; 3 -> 1: the grey kernel is the sum of the RGB kernels);
- anything else that does not fit is an error naming the first tensor
  (:func:`nas.checkpoint.first_mismatch`).

:func:`freeze_backbone` leaves only the classifier trainable, and :func:`frozen_train_mode` runs the
frozen backbone as at inference (BatchNorm's running statistics, no drop-connect) while the head's
dropout still regularizes the classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nas.checkpoint import ModelCheckpoint, first_mismatch, load_model_checkpoint
from nas.errors import StorageError
from nas.training.parts import classifier, classifier_keys, first_conv

FREEZE = ("none", "backbone")


def adapt_stem(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A stem kernel (out, c0, k, k) for ``in_chans`` input channels: the mean over the c0 channels,
    repeated, times c0 / in_chans."""
    old = weight.shape[1]
    if old == in_chans:
        return weight
    mean = weight.mean(dim=1, keepdim=True) * (old / in_chans)
    return mean.repeat(1, in_chans, 1, 1).contiguous()


def load_checkpoint_for_init(path: str | Path) -> ModelCheckpoint:
    """The checkpoint to start from; errors name the ``init`` argument."""
    try:
        return load_model_checkpoint(path)
    except StorageError as exc:
        raise StorageError(f"init: {exc}", field="init") from None


def load_pretrained(model: nn.Module, checkpoint: ModelCheckpoint) -> dict[str, str]:
    """Load ``checkpoint`` into ``model`` (new classifier, adapted stem); returns what was done."""
    ema = checkpoint.ema_state_dict is not None
    weights = dict(checkpoint.weights(ema=ema))
    target = model.state_dict()
    fresh = classifier_keys(model)
    stem = f"{first_conv(model)[0]}.weight"
    report = {"init_weights": "ema" if ema else "raw"}
    if stem in weights and stem in target and weights[stem].dim() == 4 and target[stem].dim() == 4 \
            and weights[stem].shape[1] != target[stem].shape[1]:
        report["stem"] = f"adapted from {weights[stem].shape[1]} to {target[stem].shape[1]} input channels"
        weights[stem] = adapt_stem(weights[stem].float(), target[stem].shape[1]).to(weights[stem].dtype)
    for key in fresh:
        weights.pop(key, None)  # the old classes' head
    expected = {k: v for k, v in target.items() if k not in fresh}
    problem = first_mismatch(expected, weights)
    if problem is not None:
        raise StorageError(f"init: {checkpoint.path}: does not fit this network: {problem}", field="init")
    model.load_state_dict(weights, strict=False)
    return report


def freeze_backbone(model: nn.Module) -> None:
    """Only the classifier keeps ``requires_grad``."""
    head = {id(p) for p in classifier(model)[1].parameters()}
    for param in model.parameters():
        param.requires_grad_(id(param) in head)


def frozen_train_mode(model: nn.Module) -> None:
    """Training mode of a frozen backbone: everything in eval mode except dropout layers."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.train()


__all__ = ["FREEZE", "adapt_stem", "freeze_backbone", "frozen_train_mode", "load_checkpoint_for_init",
           "load_pretrained"]
