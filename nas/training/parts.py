"""Named parts of a built network that recipes act on: its classifier, its first convolution, its
BatchNorm layers. Found by structure (the last ``nn.Linear``, the first ``nn.Conv2d``), so recipes
do not depend on the builder's attribute names."""

from __future__ import annotations

from torch import nn


def classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The (qualified name, module) of the last linear layer: the classification head."""
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not found:
        raise ValueError("the model has no linear classifier")
    return found[-1]


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier's tensors."""
    name, module = classifier(model)
    return {f"{name}.{key}" for key in module.state_dict()}


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The (qualified name, module) of the first convolution: the stem, which sees the input channels."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError("the model has no convolution")


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


__all__ = ["batch_norms", "classifier", "classifier_keys", "first_conv"]
