"""The proxy trainer: real training steps of built specs on real data (digits, Fashion-MNIST)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nas.data import load_dataset
from nas.errors import ConfigError
from nas.presets import preset
from nas.scaling import scale_spec
from nas.training import TrainBudget, bn_momentum_for, lr_factor, train_candidate, warmup_steps_for

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def proxy(width: float = 0.5, depth: float = 0.5, resolution: int = 32):
    """The search's default proxy: B0 at width 0.5, depth 0.5, 32 px, digits' classes and channels."""
    spec = scale_spec(preset("efficientnet-b0"), width=width, depth=depth, resolution=resolution)
    return spec.with_(num_classes=10, in_chans=1)


@pytest.mark.slow(reason="the default search budget's accuracy on digits (20 epochs)")
def test_default_budget_reaches_95_percent_on_digits(digits):
    # Acceptance of issue 3: the search's default budget on the B0-like proxy (about 10 s on 2 cores;
    # no time is asserted here, BENCHMARKS.md records it).
    m = train_candidate(proxy(), digits, TrainBudget(), "cpu")
    assert m.status == "ok", m.error
    assert m.accuracy >= 0.95
    assert m.epochs == TrainBudget().epochs and len(m.history) == TrainBudget().epochs
    assert m.params > 0 and m.macs == m.proxy_macs > 0  # spec at its own (proxy) resolution
    assert m.step_time_ms > 0 and m.latency_ms > 0 and m.latency_batch_ms > m.latency_ms
    assert m.train_time_s > 0 and m.wall_time_s >= m.train_time_s
    assert m.peak_memory_mb is not None and m.peak_memory_mb >= 0


def test_same_seed_is_bit_identical_and_global_rng_untouched(digits):
    budget = TrainBudget(steps=12, batch_size=64, magnitude=5, mixup_alpha=0.2, hflip=True, crop_padding=2)
    state = torch.get_rng_state()
    small = proxy(0.25, 0.25)  # every block kind, SE, dropout and drop-connect of the default proxy, at 1/3 the time
    a = train_candidate(small, digits, budget, "cpu")
    b = train_candidate(small, digits, budget, "cpu")
    assert torch.equal(state, torch.get_rng_state())
    assert a.ok and b.ok
    assert (a.accuracy, a.loss, a.history) == (b.accuracy, b.loss, b.history)
    c = train_candidate(small, digits, replace(budget, seed=1), "cpu")
    assert c.loss != a.loss


def test_cost_fields_count_full_and_proxy_resolution(digits):
    spec = proxy(resolution=64)
    m = train_candidate(spec, digits, TrainBudget(steps=2, batch_size=32, resolution=16), "cpu")
    assert m.ok, m.error
    from nas.counting import count

    assert m.macs == count(spec).macs and m.proxy_macs == count(spec, 16).macs < m.macs
    assert m.step_time_ms > 0  # short budgets get extra timed steps on a copy


def test_timings_grow_with_model_size(digits):
    budget = TrainBudget(steps=8, batch_size=64)
    small = train_candidate(proxy(0.25, 0.25), digits, budget, "cpu")
    large = train_candidate(proxy(1.0, 1.0), digits, budget, "cpu")
    assert small.ok and large.ok
    assert large.params > 4 * small.params
    assert large.step_time_ms > small.step_time_ms > 0
    assert large.latency_batch_ms > small.latency_batch_ms > 0


def test_divergence_stops_at_once(digits):
    m = train_candidate(proxy(), digits, TrainBudget(epochs=5, optimizer="sgd", lr=1e12), "cpu")
    assert m.status == "diverged"
    assert "loss became" in m.error and m.accuracy is None
    assert m.epochs < 5 and m.params > 0


def test_exception_in_training_is_a_failed_candidate(digits):
    broken = replace(digits, train_y=torch.full_like(digits.train_y, 99))  # labels beyond the classifier
    m = train_candidate(proxy(), broken, TrainBudget(steps=3), "cpu")
    assert m.status == "failed" and "IndexError" in m.error and "99" in m.error
    assert m.params > 0

    def explode(epoch, accuracy):
        raise RuntimeError("scheduler crashed")

    m = train_candidate(proxy(), digits, TrainBudget(epochs=1, batch_size=512), "cpu", on_epoch=explode)
    assert m.status == "failed" and "scheduler crashed" in m.error


def test_on_epoch_reports_and_prunes(digits):
    seen = []

    def on_epoch(epoch, accuracy):
        seen.append((epoch, accuracy))
        return epoch == 2  # an ASHA rung says stop

    m = train_candidate(proxy(0.25, 0.25), digits, TrainBudget(epochs=4, batch_size=256), "cpu", on_epoch=on_epoch)
    assert m.status == "pruned" and m.epochs == 2
    assert [e for e, _ in seen] == [1, 2] and m.history == tuple(a for _, a in seen)
    assert m.accuracy == seen[-1][1] and m.step_time_ms > 0 and m.latency_ms is None


def test_test_split_only_on_request_and_schedule_hook(digits):
    calls = []

    def schedule(epoch):
        calls.append(epoch)
        return {"resolution": 16 if epoch == 0 else 32, "magnitude": 2.0 * epoch, "mixup_alpha": 0.1}

    budget = TrainBudget(epochs=2, batch_size=512)
    m = train_candidate(proxy(0.25, 0.25), digits, budget, "cpu", evaluate_on="test", schedule=schedule)
    assert m.ok, m.error
    assert calls == [0, 1]
    # The reported accuracy is the test split's (360 images, minival has 287), counted from its bitmap. What
    # it reaches says nothing here: five steps of batch 512 stay near chance (measured 0.12-0.19, seeds 0-4).
    test_images = len(digits.test()[1])
    assert test_images != len(digits.minival_y) and m.minival_size == test_images
    assert m.accuracy == m.correct_mask().mean() and len(m.history) == 2


def test_bad_arguments_raise_config_errors(digits):
    with pytest.raises(ConfigError, match="epochs must be a number > 0, got 0") as caught:
        TrainBudget(epochs=0)
    assert caught.value.field == "epochs"
    with pytest.raises(ConfigError, match="unknown optimizer 'adam'; valid: sgd, rmsprop, adamw"):
        TrainBudget(optimizer="adam")
    with pytest.raises(ConfigError, match="evaluate_on"):
        train_candidate(proxy(), digits, TrainBudget(steps=1), "cpu", evaluate_on="train")
    with pytest.raises(ConfigError, match="device 'tpu'"):
        train_candidate(proxy(), digits, TrainBudget(steps=1), "tpu")
    assert TrainBudget.from_dict(TrainBudget(lr=0.1).to_dict()) == TrainBudget(lr=0.1)


def test_schedules():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1) and lr_factor(9, 10, 100) == 1.0
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)
    assert bn_momentum_for(8) == 0.1 and bn_momentum_for(400) == 0.05 and bn_momentum_for(10_000) == 0.01
    # A short training keeps at most 0.1% of the initial statistics: (1 - m) ** steps <= 0.001.
    for steps in (1, 8, 16, 32):
        m = bn_momentum_for(min(8, steps), total_steps=steps)
        assert (1 - m) ** steps == pytest.approx(0.001) or m == 1.0
    assert bn_momentum_for(8, total_steps=160) == 0.1  # the default budget is unchanged
    # The warm-up is scaled to the budget: one epoch, but never more than the fraction of the steps.
    assert warmup_steps_for(1.0, 8, 160, 0.25) == 8
    assert warmup_steps_for(1.0, 8, 8, 0.25) == 2 and warmup_steps_for(1.0, 8, 3, 0.25) == 0


def test_one_epoch_beats_chance(digits):
    # `nas search --epochs 1` on digits: 8 steps. Before the budget-aware warm-up and BatchNorm
    # momentum every candidate ended at chance (0.10); benchmarks/warmup.py has the figures.
    m = train_candidate(proxy(), digits, TrainBudget(epochs=1), "cpu")
    assert m.ok and m.accuracy > 0.3  # chance is 0.1; measured 0.38-0.51 (seeds 0-4)


# Chance is 0.1. On the quarter-width, quarter-depth proxy (2.3x cheaper than the default one, and it learns
# more in 6 epochs), seeds 0-2 (this test uses seed 0): sgd at its default 0.1 per 256 images 0.923-0.927,
# rmsprop 0.906-0.941. The default proxy gave sgd 0.84-0.88 and rmsprop 0.64-0.89 (its bound was 0.6).
LEARNS = {"sgd": 0.8, "rmsprop": 0.8}


@pytest.mark.parametrize("optimizer", sorted(LEARNS))
def test_other_optimizers_learn(digits, optimizer):
    m = train_candidate(proxy(0.25, 0.25), digits, TrainBudget(epochs=6, optimizer=optimizer), "cpu")
    assert m.ok and m.accuracy > LEARNS[optimizer]


@pytest.mark.slow(reason="real Fashion-MNIST (60,000 images decoded)")
def test_fashion_mnist_proxy_learns(fashion_dir):
    data = load_dataset("fashion-mnist", fashion_dir)
    m = train_candidate(proxy(0.25, 0.25), data, TrainBudget(steps=60, warmup_epochs=0.02), "cpu")
    # chance is 0.1; after 0.14 epoch the quarter proxy reaches 0.68-0.73 (measured, seeds 0-2; the default
    # proxy, 3x slower, reached 0.53-0.62 and the bound was 0.45)
    assert m.ok and m.accuracy > 0.55


def test_the_default_peak_rate_follows_the_norm_kind():
    """Batch-independent norms train at a quarter of BatchNorm's default rate (BENCHMARKS.md, norm kinds)."""
    from nas.training.budget import peak_learning_rate

    budget = TrainBudget()
    assert peak_learning_rate(budget, "batchnorm") == budget.learning_rate
    for norm in ("groupnorm", "layernorm", "layernorm_pn", "groupnorm_pn"):
        assert peak_learning_rate(budget, norm) == pytest.approx(budget.learning_rate / 4)
    assert peak_learning_rate(replace(budget, lr=0.01), "layernorm_pn") == 0.01  # an explicit rate wins
