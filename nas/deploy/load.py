"""MODEL -> a network in eval mode: the one argument every deployment command takes.

A ``model.pt`` is read only through :func:`nas.checkpoint.load_model_checkpoint` and
:func:`~nas.checkpoint.build_trained_model`, so a missing, corrupt or foreign file is one
StorageError line. Anything else goes through :func:`nas.api.load_spec` (a preset, a spec JSON, a
run's ``b0.json``, block strings) and gets seeded random weights: enough to measure latency and to
check that an exported file computes what PyTorch computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.api import load_spec
from nas.checkpoint import build_trained_model, load_model_checkpoint
from nas.errors import ConfigError, SpecError
from nas.spec import ArchSpec


@dataclass(frozen=True)
class LoadedModel:
    """A network ready for inference and where it came from.

    ``trained`` is False for a spec given without weights; ``checkpoint`` is the ``model.pt`` read
    (its config and metrics travel with it), None otherwise.
    """

    model: Any  # torch.nn.Module in eval mode
    spec: ArchSpec
    trained: bool
    source: str
    checkpoint: Any = None

    @property
    def description(self) -> str:
        weights = "trained weights" if self.trained else "random weights"
        name = self.spec.name or "spec"
        return (f"{name} ({weights}, {self.spec.in_chans}x{self.spec.resolution}x{self.spec.resolution}, "
                f"{self.spec.num_classes} classes)")


def is_checkpoint_path(source: Any) -> bool:
    """A MODEL argument naming a ``.pt`` file is a checkpoint, whether or not the file exists (a
    missing one must say 'no such model checkpoint', not 'not a preset')."""
    return isinstance(source, (str, Path)) and str(source).strip().lower().endswith(".pt")


def with_resolution(spec: ArchSpec, resolution: int | None) -> ArchSpec:
    """``spec`` at another input size; a bad size is a ConfigError on ``resolution``."""
    if resolution is None or resolution == spec.resolution:
        return spec
    try:
        return spec.with_(resolution=resolution)
    except SpecError as exc:
        raise ConfigError(str(exc), field="resolution") from None


def randomize_norm_statistics(model: Any, spec: ArchSpec, generator: Any, max_resolution: int = 64) -> None:
    """Give a randomly initialized network BatchNorm statistics that keep its activations in scale.

    Freshly initialized BatchNorms are identities in eval mode (mean 0, variance 1): activations
    of deep random networks then vanish (B0's logits ~1e-6) or explode (EfficientNetV2-L's ~1e4,
    where float32 rounding changes the logits by as much as their size, so no export could be
    checked), and a BatchNorm that an exporter dropped or folded wrongly would go unnoticed.
    Per-channel statistics measured on random images do not help: deep random networks map all
    inputs to nearly the same features, and dividing by those tiny variances amplifies any other
    input without bound. So each BatchNorm gets, in one forward pass on two seeded images (at most
    ``max_resolution`` pixels), a variance of its input's mean square (one number per layer) times
    a random factor in [0.5, 2), a random mean offset, and a random scale and shift.
    """
    import torch  # torch: imported when used, not at module import
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def set_statistics(norm: Any, args: tuple) -> None:
        mean_square = args[0].detach().pow(2).mean().clamp_min(1e-12)
        n = norm.num_features
        norm.running_mean.copy_(torch.randn(n, generator=generator) * 0.1 * mean_square.sqrt())
        norm.running_var.copy_(mean_square * (torch.rand(n, generator=generator) * 1.5 + 0.5))

    hooks = [norm.register_forward_pre_hook(set_statistics) for norm in norms]
    try:
        with torch.no_grad():
            for norm in norms:
                norm.weight.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
                norm.bias.copy_(torch.randn(norm.num_features, generator=generator) * 0.1)
            if norms:
                size = min(spec.resolution, max_resolution)
                model.eval()(torch.randn((2, spec.in_chans, size, size), generator=generator))
    finally:
        for hook in hooks:
            hook.remove()


def load_model(source: Any, *, resolution: int | None = None, ema: bool = False, seed: int = 0) -> LoadedModel:
    """The network named by ``source`` in eval mode, at ``resolution`` (default: the spec's own).

    ``ema`` takes a checkpoint's exponential-moving-average weights. ``seed`` draws the weights of a
    spec given without them (:func:`randomize_norm_statistics` included).
    """
    import torch  # torch: imported when used, not at module import

    from nas.builder import build_model  # torch: imported when used, not at module import

    if is_checkpoint_path(source):
        checkpoint = load_model_checkpoint(Path(str(source).strip()).expanduser())
        model = build_trained_model(checkpoint, ema=ema)
        spec = with_resolution(checkpoint.spec, resolution)
        return LoadedModel(model.eval(), spec, True, str(source), checkpoint)
    if ema:
        raise ConfigError("ema applies to a model.pt checkpoint only; a spec has no trained weights", field="ema")

    spec = with_resolution(load_spec(source), resolution)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(spec, generator=generator)
    randomize_norm_statistics(model, spec, generator)
    return LoadedModel(model.eval(), spec, False, str(source))


def example_input(spec: ArchSpec, batch: int = 1, seed: int = 0) -> Any:
    """A seeded standard-normal batch shaped like the network's input (NCHW, contiguous)."""
    import torch  # torch: imported when used, not at module import

    generator = torch.Generator().manual_seed(seed)
    return torch.randn((batch, spec.in_chans, spec.resolution, spec.resolution), generator=generator)


__all__ = ["LoadedModel", "example_input", "is_checkpoint_path", "load_model", "randomize_norm_statistics",
           "with_resolution"]
