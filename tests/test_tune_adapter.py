"""Our controllers inside a real Ray Tune run, through ControllerSearcher (local Ray, 2 CPUs)."""

from __future__ import annotations

import shutil
import sys

import pytest

import ray  # Ray is a core dependency: an import failure fails this module, it never skips

from ray import tune  # noqa: E402

from nas.controllers import make_controller  # noqa: E402
from nas.controllers.tune_adapter import CHOICES_KEY, ControllerSearcher  # noqa: E402
from runners.ray_support import temp_root  # noqa: E402
from search_spaces import make_space  # noqa: E402


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(temp_root(folder)))
    # Tune's workers cannot import this test module by name: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield folder
    ray.shutdown()
    shutil.rmtree(temp_root(folder), ignore_errors=True)


def score(config: dict) -> None:
    """A cheap stand-in for training: rewards small kernels and few layers, so order is learnable."""
    kernels = [v for k, v in config.items() if k.endswith("kernel")]
    tune.report({"reward": 1.0 / (1.0 + sum(kernels)), "accuracy": 0.5, "macs": 1e6 * sum(kernels)})


def fit(searcher: ControllerSearcher, folder, name: str, samples: int):
    tuner = tune.Tuner(score, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=samples,
                                                          max_concurrent_trials=2, metric="reward", mode="max"),
                       run_config=tune.RunConfig(name=name, storage_path=str(folder), verbose=0))
    return tuner.fit()


@pytest.mark.slow(reason="our controller inside a real ray.tune.Tuner")
def test_tune_runs_trials_suggested_by_our_controller(local_ray):
    space = make_space("efficientnet")
    searcher = ControllerSearcher(make_controller("random", space.decisions, seed=3), space.decisions)
    results = fit(searcher, local_ray, "random", 6)
    assert len(results) == 6 and not results.errors
    assert searcher.told == 6 and not searcher._pending
    for result in results:
        config = result.config
        choices = config[CHOICES_KEY]
        assert len(choices) == len(space.decisions)
        # every named value is the option its index points at, and the choices decode to a network
        for decision, index in zip(space.decisions, choices):
            assert config[decision.name] == decision.options[index]
        space.decode(choices)
        assert result.metrics["reward"] == pytest.approx(
            1.0 / (1.0 + sum(v for k, v in config.items() if k.endswith("kernel"))))
    # the same seed proposes the same networks as the controller asked directly
    twin = make_controller("random", space.decisions, seed=3)
    asked = {tuple(twin.ask().choices) for _ in range(6)}
    assert {tuple(r.config[CHOICES_KEY]) for r in results} == asked


@pytest.mark.slow(reason="Tune's searcher save / restore through a real Tuner")
def test_save_and_restore_continue_the_controller(local_ray, tmp_path):
    space = make_space("efficientnet")
    searcher = ControllerSearcher(make_controller("rl", space.decisions, seed=1), space.decisions)
    fit(searcher, local_ray, "rl", 4)
    path = tmp_path / "searcher.pt"
    searcher.save(str(path))
    restored = ControllerSearcher(make_controller("rl", space.decisions, seed=99), space.decisions)
    restored.restore(str(path))
    assert restored.told == 4
    # after a restore both propose the same next networks: the whole controller state came back
    assert [restored.suggest(f"r{i}")[CHOICES_KEY] for i in range(3)] == \
           [searcher.suggest(f"s{i}")[CHOICES_KEY] for i in range(3)]
    # a trial suggested before the restore is unknown afterwards and is ignored, not an error
    restored.restore(str(path))
    restored.on_trial_complete("r0", {"reward": 1.0})
    assert restored.told == 4


def test_errors_and_minimised_metrics_reach_the_controller_as_rewards():
    space = make_space("efficientnet")

    class Recorder:
        def __init__(self):
            self.inner = make_controller("random", space.decisions, seed=0)
            self.told = []

        def ask(self):
            return self.inner.ask()

        def tell(self, proposal, reward, values=None):
            self.told.append((reward, values))

    recorder = Recorder()
    searcher = ControllerSearcher(recorder, space.decisions, metric="loss", mode="min")
    for trial in "abcd":
        searcher.suggest(trial)
    searcher.on_trial_complete("a", {"loss": 0.25, "accuracy": 0.9, "macs": 2e6})
    searcher.on_trial_complete("b", None, error=True)
    searcher.on_trial_complete("c", {"accuracy": 0.9})  # no metric reported
    searcher.on_trial_complete("d", {"loss": float("nan")})
    assert recorder.told == [(-0.25, {"accuracy": 0.9, "macs": 2e6}), (None, None), (None, {"accuracy": 0.9}),
                             (None, None)]
