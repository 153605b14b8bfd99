"""The proxy trainer: brief, fast, reproducible training of one candidate, and its measurements.

:func:`train_candidate` is the one place where a spec meets data. Everything a search ranks on
comes out of it as :class:`~nas.metrics.Metrics`: minival accuracy and loss after a short budget,
counted cost (params, multiply-adds at the proxy and at the spec's own resolution), median train
step time, inference latency at batch 1 and at the training batch size, peak memory.

Why it is fast on a CPU: the images live on the device as uint8, resized once to the proxy
resolution; a batch is one index into that tensor plus a few fused tensor ops (no DataLoader, no
per-sample Python); the model runs channels_last; evaluation runs under ``torch.inference_mode``;
the optimizer uses its fused/foreach kernels. On CUDA it adds bf16 autocast. ``budget.compile``
wraps the training forward in ``torch.compile``.

Why it is reproducible: the weights are initialized from a ``torch.Generator`` seeded with the
budget's seed, batch order and augmentation draw from a second one, and dropout / drop-connect
(which use torch's global generator) run inside ``torch.random.fork_rng`` seeded the same way, so
the caller's global RNG state is untouched and two runs on the CPU give bit-identical metrics
(timings aside). Thread counts are the caller's business (``torch.set_num_threads`` is global).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas.data.augment import AugmentConfig, Augmenter, default_crop_padding, resize_images
from nas.data.base import Dataset
from nas.device import resolve_device, synchronize
from nas.errors import ConfigError
from nas.metrics import Metrics, pack_correct
from nas.spec import ArchSpec
from nas.timing import median_ms, rss_bytes, time_forward

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
# Learning rates per 256 images of batch (scaled linearly with the batch size) and weight decay.
DEFAULT_LR = {"sgd": 0.4, "rmsprop": 0.016, "adamw": 0.032}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-5, "rmsprop": 1e-5, "adamw": 0.05}
WARMUP_STEPS_TIMED = 3  # train steps excluded from the step-time median (allocation, oneDNN, compile)
MIN_TIMED_STEPS = 5
EVALUATE_ON = ("minival", "test")

EpochCallback = Callable[[int, float], Any]
Schedule = Callable[[int], Mapping[str, Any]]


@dataclass(frozen=True)
class TrainBudget:
    """How long and how a candidate trains. The defaults are the search's proxy budget.

    ``epochs`` may be fractional; ``steps``, when given, overrides it. ``lr`` / ``weight_decay`` of
    None take the optimizer's default (:data:`DEFAULT_LR` per 256 images, scaled by the batch size;
    :data:`DEFAULT_WEIGHT_DECAY`). The learning rate warms up linearly for ``warmup_epochs`` and
    then follows a cosine to zero. ``resolution`` is the proxy image size (None: the spec's own).
    ``hflip`` None takes the dataset's default; ``crop_padding`` None takes the dataset's default
    (``Dataset.crop_fraction`` of the resolution: 0 for digits and (Fashion-)MNIST, 1/8 else).
    ``magnitude`` (0..10 RandAugment scale, 0 = off) and ``mixup_alpha`` (0 = off) are the
    regularization knobs that progressive learning schedules. ``amp`` is bf16 autocast, used on CUDA
    only. ``bn_momentum`` None adapts BatchNorm's running-average momentum to the budget (see
    :func:`bn_momentum_for`).

    The defaults (AdamW at 0.016, 20 epochs of batch 128, label smoothing 0.1) bring the B0-like proxy
    (width 0.5, depth 0.5, 32 px) above 95% minival accuracy on ``digits`` in about 10 s on two
    CPU cores (see BENCHMARKS.md).
    """

    epochs: float = 20
    steps: int | None = None
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    seed: int = 0
    compile: bool = False
    resolution: int | None = None
    eval_batch_size: int = 512
    hflip: bool | None = None
    crop_padding: int | None = None
    magnitude: float = 0.0
    mixup_alpha: float = 0.0
    channels_last: bool = True
    amp: bool = True
    bn_momentum: float | None = None

    def __post_init__(self) -> None:
        def bad(name: str, message: str) -> ConfigError:
            return ConfigError(f"budget {name}: {message}, got {getattr(self, name)!r}")

        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        def integer(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not (number(self.epochs) and self.epochs > 0):
            raise bad("epochs", "must be a number > 0")
        if self.steps is not None and not (integer(self.steps) and self.steps >= 1):
            raise bad("steps", "must be an integer >= 1 or None")
        if not (integer(self.batch_size) and self.batch_size >= 1):
            raise bad("batch_size", "must be an integer >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"budget optimizer: unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not (number(self.lr) and self.lr > 0):
            raise bad("lr", "must be a number > 0")
        if self.weight_decay is not None and not (number(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "must be a number >= 0")
        if not (number(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise bad("warmup_epochs", "must be a number >= 0")
        if not (number(self.label_smoothing) and 0 <= self.label_smoothing < 1):
            raise bad("label_smoothing", "must be in [0, 1)")
        if not integer(self.seed):
            raise bad("seed", "must be an integer")
        if self.resolution is not None and not (integer(self.resolution) and 8 <= self.resolution <= 4096):
            raise bad("resolution", "must be an integer between 8 and 4096")
        if not (integer(self.eval_batch_size) and self.eval_batch_size >= 1):
            raise bad("eval_batch_size", "must be an integer >= 1")
        if self.crop_padding is not None and not (integer(self.crop_padding) and self.crop_padding >= 0):
            raise bad("crop_padding", "must be an integer >= 0")
        if not (number(self.magnitude) and 0 <= self.magnitude <= 30):
            raise bad("magnitude", "must be in [0, 30]")
        if not (number(self.mixup_alpha) and self.mixup_alpha >= 0):
            raise bad("mixup_alpha", "must be a number >= 0")
        if self.bn_momentum is not None and not (number(self.bn_momentum) and 0 < self.bn_momentum <= 1):
            raise bad("bn_momentum", "must be in (0, 1]")
        for flag in ("compile", "channels_last", "amp"):
            if not isinstance(getattr(self, flag), bool):
                raise bad(flag, "must be true or false")
        if self.hflip is not None and not isinstance(self.hflip, bool):
            raise bad("hflip", "must be true, false or None")

    @property
    def learning_rate(self) -> float:
        """The peak learning rate actually used."""
        if self.lr is not None:
            return float(self.lr)
        return DEFAULT_LR[self.optimizer] * self.batch_size / 256

    @property
    def decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else float(self.weight_decay)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainBudget":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"budget: unknown field(s) {', '.join(unknown)}")
        return cls(**dict(data))


def bn_momentum_for(steps_per_epoch: int, floor: float = 0.01) -> float:
    """BatchNorm running-average momentum for epochs of ``steps_per_epoch`` steps (the trainer passes
    the total step count when a budget is shorter than one epoch).

    The builder uses TF's 0.99 decay (momentum 0.01): the running statistics average the last ~100
    steps, fine for ImageNet's thousands of steps per epoch but stale for a proxy, whose network
    changes fast and is evaluated after every short epoch (an early-stopping scheduler ranks on
    those numbers). Momentum 20 / steps_per_epoch (between 0.01 and 0.1) makes them average the last
    twentieth of an epoch; long epochs keep the official value. On Fashion-MNIST's proxy this lifts
    epoch-1 minival accuracy from 0.49 to 0.83 (BENCHMARKS.md).
    """
    return min(0.1, max(floor, 20.0 / max(steps_per_epoch, 1)))


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from ~0 to 1, then cosine from 1 to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def make_optimizer(model: nn.Module, budget: TrainBudget, device: torch.device) -> torch.optim.Optimizer:
    """The budget's optimizer; weight decay applies to conv / linear weights, not to norms and biases."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": budget.decay}, {"params": no_decay, "weight_decay": 0.0}]
    lr = budget.learning_rate
    if budget.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True, fused=True)
    if budget.optimizer == "rmsprop":
        # The EfficientNet recipe: decay 0.9, momentum 0.9, epsilon 1e-3 (TF puts epsilon inside the
        # square root, torch outside: close, not identical).
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=0.9, eps=1e-3, foreach=True)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=True)


@dataclass
class _Split:
    x: torch.Tensor  # uint8 on the device, at the evaluation resolution
    y: torch.Tensor


def evaluate(model: nn.Module, split: _Split, augmenter: Augmenter, batch_size: int,
             autocast: bool) -> tuple[float, float, torch.Tensor]:
    """Top-1 accuracy, mean cross-entropy (no label smoothing) and the per-image correctness (a bool
    tensor on the CPU, in split order) over a split, in inference mode."""
    was_training = model.training
    model.eval()
    hits = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=split.x.device)
    device_type = split.x.device.type
    try:
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
            for start in range(0, split.x.shape[0], batch_size):
                xb = augmenter.to_float(split.x[start:start + batch_size])
                yb = split.y[start:start + batch_size]
                logits = model(xb).float()
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
                hits.append(logits.argmax(1) == yb)
    finally:
        model.train(was_training)
    correct = torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool)
    n = max(int(split.y.shape[0]), 1)
    return int(correct.sum().item()) / n, float(loss_sum.item()) / n, correct


class _Stop(Exception):
    """Internal: ends the training loop with a status other than ``ok``."""

    def __init__(self, status: str, error: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _fork_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _check_args(spec: Any, data: Any, budget: Any, evaluate_on: str) -> None:
    if not isinstance(spec, ArchSpec):
        raise ConfigError(f"train_candidate: spec must be an ArchSpec, got {type(spec).__name__}")
    if not isinstance(data, Dataset):
        raise ConfigError(f"train_candidate: data must be a nas.data.Dataset, got {type(data).__name__}")
    if not isinstance(budget, TrainBudget):
        raise ConfigError(f"train_candidate: budget must be a TrainBudget, got {type(budget).__name__}")
    if evaluate_on not in EVALUATE_ON:
        raise ConfigError(f"train_candidate: evaluate_on must be one of {', '.join(EVALUATE_ON)}, got {evaluate_on!r}")


def train_candidate(spec: ArchSpec, data: Dataset, budget: TrainBudget | None = None,
                    device: torch.device | str = "cpu", on_epoch: EpochCallback | None = None, *,
                    evaluate_on: str = "minival", schedule: Schedule | None = None) -> Metrics:
    """Train ``spec`` briefly on ``data`` and measure it; never raises for a model or training failure.

    ``spec`` is trained with the dataset's classes and channels (``spec.with_(num_classes=...,
    in_chans=...)``) at ``budget.resolution`` (default: ``spec.resolution``); ``macs`` counts that
    network at ``spec.resolution`` and ``proxy_macs`` at the training resolution.

    ``on_epoch(epoch, accuracy)`` is called after each completed epoch (1, 2, ...) with that epoch's
    minival top-1 accuracy; if it returns a truthy value the candidate stops at once with status
    ``pruned``, keeping what was measured so far (accuracy and loss of that epoch, history, step
    time; no latency). An exception raised by the callback ends the candidate as ``failed``.

    Status ``diverged``: the training loss became NaN or inf (checked every step on the CPU, every
    8 steps on CUDA); ``failed``: any exception during building or training, with its message.
    Both keep ``params`` / ``macs`` and the history so far; ``accuracy`` is None for them.

    ``evaluate_on="test"`` reports the final ``accuracy`` / ``loss`` on the dataset's test split
    (read on request; ``history`` and ``on_epoch`` stay on minival). A search never asks for it.

    ``schedule(epoch) -> {"magnitude": m, "mixup_alpha": a, "resolution": r}`` (any subset) is the
    hook of progressive learning: called at the start of each epoch (0-based), it overrides the
    budget's augmentation strength and training resolution for that epoch; evaluation stays at the
    budget's resolution.

    Timings: ``step_time_ms`` is the median of the training steps after the first
    :data:`WARMUP_STEPS_TIMED` (at least :data:`MIN_TIMED_STEPS` steps; a budget too short for
    that gets extra steps timed on a throwaway copy of the model); ``latency_ms`` /
    ``latency_batch_ms`` are medians of inference passes at batch 1 / ``batch_size``.
    ``peak_memory_mb``: CUDA's ``max_memory_allocated``; on the CPU the growth of the process's
    resident set size sampled after every forward pass (an approximation, None where /proc is
    missing).

    Bad arguments (not an ArchSpec / Dataset / TrainBudget, unknown ``evaluate_on``, bad device
    name) raise :class:`~nas.errors.ConfigError`.
    """
    budget = TrainBudget() if budget is None else budget
    _check_args(spec, data, budget, evaluate_on)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    start = time.perf_counter()
    resolution = budget.resolution or spec.resolution
    known: dict[str, Any] = {}
    state: dict[str, Any] = {"history": [], "step_times": [], "epochs": 0.0}
    try:
        from nas.counting import count

        spec = spec.with_(num_classes=data.num_classes, in_chans=data.in_chans)
        cost = count(spec)
        known = {"params": cost.params, "macs": cost.macs, "proxy_macs": count(spec, resolution).macs}
        with torch.random.fork_rng(devices=_fork_devices(device), device_type=device.type):
            torch.manual_seed(budget.seed)
            return _train(spec, data, budget, device, resolution, on_epoch, evaluate_on, schedule, known, state,
                          start)
    except _Stop as stop:
        return _partial(stop.status, stop.error, known, state, start)
    except Exception as exc:  # noqa: BLE001 - a broken candidate must never stop a search
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return _partial("failed", message[:2000], known, state, start)


def _partial(status: str, error: str, known: dict[str, Any], state: dict[str, Any], start: float) -> Metrics:
    times = state["step_times"][WARMUP_STEPS_TIMED:]
    pruned = status == "pruned"
    correct = state.get("correct") if pruned else None
    if correct is not None:
        known = {**known, "minival_size": int(correct.numel()), "correct": pack_correct(correct)}
    return Metrics(status=status, error=error, accuracy=state.get("accuracy") if pruned else None,
                   loss=state.get("loss") if pruned else None,
                   step_time_ms=median_ms(times) if times else None, wall_time_s=time.perf_counter() - start,
                   train_time_s=state.get("train_time", 0.0), epochs=round(state["epochs"], 4),
                   peak_memory_mb=state.get("peak_memory_mb"), history=tuple(state["history"]), **known)


def _train(spec: ArchSpec, data: Dataset, budget: TrainBudget, device: torch.device, resolution: int,
           on_epoch: EpochCallback | None, evaluate_on: str, schedule: Schedule | None, known: dict[str, Any],
           state: dict[str, Any], start: float) -> Metrics:
    from nas.builder import build_model

    cuda = device.type == "cuda"
    autocast = cuda and budget.amp
    fmt = torch.channels_last if budget.channels_last else torch.contiguous_format
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = rss_bytes()

    model = build_model(spec, generator=torch.Generator().manual_seed(budget.seed))
    model = model.to(device=device, memory_format=fmt)

    n_train = int(data.train_y.shape[0])
    batch = min(budget.batch_size, n_train)
    steps_per_epoch = max(n_train // batch, 1)  # the last partial batch is dropped
    total_steps = budget.steps if budget.steps is not None else max(1, round(budget.epochs * steps_per_epoch))
    warmup_steps = min(round(budget.warmup_epochs * steps_per_epoch), total_steps // 2)
    momentum = budget.bn_momentum or bn_momentum_for(min(steps_per_epoch, total_steps))
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = max(module.momentum or 0.0, momentum) if budget.bn_momentum is None else momentum

    train_src = data.train_x.to(device)
    train_y = data.train_y.to(device)
    resized: dict[int, torch.Tensor] = {}

    def train_images(res: int) -> torch.Tensor:
        if res not in resized:
            resized.clear()  # keep one copy; schedules change resolution rarely
            resized[res] = resize_images(train_src, res)
        return resized[res]

    minival = _Split(resize_images(data.minival_x.to(device), resolution), data.minival_y.to(device))
    augmenter = Augmenter(data.mean, data.std, device, budget.channels_last)
    base_aug = AugmentConfig(
        crop_padding=(default_crop_padding(resolution, data.crop_fraction) if budget.crop_padding is None
                      else budget.crop_padding),
        hflip=data.hflip if budget.hflip is None else budget.hflip,
        magnitude=float(budget.magnitude), mixup_alpha=float(budget.mixup_alpha))

    optimizer = make_optimizer(model, budget, device)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    criterion = nn.CrossEntropyLoss(label_smoothing=budget.label_smoothing)
    forward = torch.compile(model) if budget.compile else model
    generator = torch.Generator(device=device).manual_seed(budget.seed + 1)

    rss_peak = rss0 or 0
    step_times: list[float] = state["step_times"]
    timed_window = range(WARMUP_STEPS_TIMED, WARMUP_STEPS_TIMED + 20)  # CUDA: synchronize only here
    check_every = 8 if cuda else 1
    train_time = 0.0
    perm = None
    aug = base_aug
    res = resolution
    model.train()
    for step in range(total_steps):
        epoch_index, position = divmod(step, steps_per_epoch)
        if position == 0:
            perm = torch.randperm(n_train, generator=generator, device=device)
            if schedule is not None:
                aug, res = _scheduled(schedule(epoch_index), base_aug, resolution, data.crop_fraction)
        t0 = time.perf_counter()
        if cuda and step in timed_window:
            synchronize(device)
        idx = perm[position * batch:(position + 1) * batch]
        images, labels, mixed, lam = augmenter.train_batch(train_images(res)[idx], train_y[idx], aug, generator)
        for group, base_lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base_lr * lr_factor(step, warmup_steps, total_steps)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = forward(images)
        logits = logits.float()
        loss = criterion(logits, labels)
        if mixed is not None:
            loss = lam * loss + (1.0 - lam) * criterion(logits, mixed)
        if rss0 is not None and not cuda:
            rss_peak = max(rss_peak, rss_bytes() or 0)
        if (step + 1) % check_every == 0 or step + 1 == total_steps or position + 1 == steps_per_epoch:
            value = float(loss.detach())
            if not math.isfinite(value):
                state["epochs"] = step / steps_per_epoch
                raise _Stop("diverged", f"training loss became {value} at step {step + 1} "
                                        f"(epoch {epoch_index + 1}); lr {optimizer.param_groups[0]['lr']:.3g}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if cuda and step in timed_window:
            synchronize(device)
        elapsed = time.perf_counter() - t0
        train_time += elapsed
        if not cuda or step in timed_window:
            step_times.append(elapsed)
        done = step + 1
        state["epochs"] = done / steps_per_epoch
        state["train_time"] = train_time
        state["peak_memory_mb"] = _peak_mb(device, rss0, rss_peak)
        if done % steps_per_epoch == 0 or done == total_steps:
            accuracy, val_loss, correct = evaluate(model, minival, augmenter, budget.eval_batch_size, autocast)
            state["history"].append(accuracy)
            state["accuracy"], state["loss"], state["correct"] = accuracy, val_loss, correct
            if done % steps_per_epoch == 0 and on_epoch is not None and on_epoch(done // steps_per_epoch, accuracy):
                raise _Stop("pruned", f"stopped by the scheduler after epoch {done // steps_per_epoch}")
            model.train()

    if len(step_times) < WARMUP_STEPS_TIMED + MIN_TIMED_STEPS:
        step_times += _extra_step_times(model, train_images(resolution), train_y, batch, augmenter, base_aug,
                                        criterion, budget, device, autocast,
                                        WARMUP_STEPS_TIMED + MIN_TIMED_STEPS - len(step_times))
    accuracy, loss_value, correct = state["accuracy"], state["loss"], state["correct"]
    if evaluate_on == "test":
        test_x, test_y = data.test()
        test = _Split(resize_images(test_x.to(device), resolution), test_y.to(device))
        accuracy, loss_value, correct = evaluate(model, test, augmenter, budget.eval_batch_size, autocast)

    latency = time_forward(model, 1, resolution, spec.in_chans, device, channels_last=budget.channels_last,
                           autocast=autocast)
    latency_batch = time_forward(model, batch, resolution, spec.in_chans, device, warmup=1, repeats=5,
                                 channels_last=budget.channels_last, autocast=autocast)
    return Metrics(status="ok", accuracy=accuracy, loss=loss_value,
                   step_time_ms=median_ms(step_times[WARMUP_STEPS_TIMED:]), latency_ms=latency,
                   latency_batch_ms=latency_batch, wall_time_s=time.perf_counter() - start, train_time_s=train_time,
                   epochs=round(state["epochs"], 4), peak_memory_mb=_peak_mb(device, rss0, rss_peak),
                   history=tuple(state["history"]), minival_size=int(correct.numel()),
                   correct=pack_correct(correct), **known)


def _scheduled(values: Mapping[str, Any], base: AugmentConfig, resolution: int, fraction: float) -> tuple[AugmentConfig, int]:
    unknown = sorted(set(values) - {"magnitude", "mixup_alpha", "resolution"})
    if unknown:
        raise ConfigError(f"schedule: unknown key(s) {', '.join(unknown)}; valid: magnitude, mixup_alpha, resolution")
    aug = replace(base, magnitude=float(values.get("magnitude", base.magnitude)),
                  mixup_alpha=float(values.get("mixup_alpha", base.mixup_alpha)))
    res = int(values.get("resolution", resolution))
    if res != resolution and "resolution" in values:
        aug = replace(aug, crop_padding=round(base.crop_padding * res / resolution))
    return aug, res


def _peak_mb(device: torch.device, rss0: int | None, rss_peak: int) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if rss0 is None:
        return None
    return max(rss_peak - rss0, 0) / 2**20


def _extra_step_times(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, augmenter: Augmenter,
                      aug: AugmentConfig, criterion: nn.Module, budget: TrainBudget, device: torch.device,
                      autocast: bool, count: int) -> list[float]:
    """Time ``count`` more train steps on a copy of the model, for budgets shorter than the timing needs.

    The copy and its throwaway optimizer leave the trained model (and its reported accuracy) alone.
    """
    import copy

    clone = copy.deepcopy(model).train()
    optimizer = make_optimizer(clone, budget, device)
    generator = torch.Generator(device=device).manual_seed(budget.seed + 2)
    times = []
    for _ in range(count):
        idx = torch.randint(0, images.shape[0], (batch,), generator=generator, device=device)
        synchronize(device)
        t0 = time.perf_counter()
        x, y, _, _ = augmenter.train_batch(images[idx], labels[idx], aug, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = criterion(clone(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


__all__ = ["DEFAULT_LR", "DEFAULT_WEIGHT_DECAY", "OPTIMIZERS", "TrainBudget", "bn_momentum_for", "evaluate",
           "lr_factor", "make_optimizer", "train_candidate"]
