"""Controllers: the ask/tell contract, state round trips, never-asked tells, and the RL learning claim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.controllers import CONTROLLERS, Decision, Proposal, controller_options, make_controller, proposal_seed
from nas.controllers.synthetic import HiddenTarget, best_so_far, drive, factorized_decisions
from nas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMALL = factorized_decisions(2)  # 12 decisions, 2-4 options each
FAST = {"rl": {"batch_size": 5, "epochs": 2, "hidden": 16}, "nsga2": {"population_size": 6}, "tpe": {"n_startup_trials": 4}}


def _values(choices, reward):
    return {"accuracy": reward, "macs": float(sum(choices)) * 1e6, "params": 1e6}


def _experiments(*runs: dict) -> list[dict]:
    """Run nas.controllers.synthetic (each of ``runs``, one after another) in one child process with one
    OpenMP/MKL thread.

    The PPO update is a long chain of tiny matrix products; on a 2-core machine shared with other
    test processes, MKL's spinning worker threads make it 10-20x slower. The library never sets
    torch's thread count, so the test picks it for its own child process through the environment.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "nas.controllers.synthetic", *map(json.dumps, runs)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    return found if len(runs) > 1 else [found]


# ------------------------------------------------------------------------------ learning
@pytest.mark.slow(reason="PPO learning over 400 samples and several seeds")
@pytest.mark.parametrize("in_flight", [1, 4])
def test_rl_learns_the_hidden_target_where_random_search_does_not(in_flight):
    # 18 decisions (3 stages x 6), 400 samples; with in_flight=4 rewards come back in shuffled order.
    common = dict(stages=3, samples=400, seeds=[0, 1, 2] if in_flight == 1 else [3, 4], in_flight=in_flight)
    rl, rand = (run["rewards"] for run in _experiments(dict(controller="rl", **common),
                                                         dict(controller="random", **common)))
    for rl_run, random_run in zip(rl, rand):
        rl_last, random_last = np.mean(rl_run[-100:]), np.mean(random_run[-100:])
        assert max(rl_run) >= 0.95, f"rl best {max(rl_run):.3f}"
        assert rl_last >= 0.85 and rl_last > random_last + 0.35, (rl_last, random_last)
        assert abs(random_last - 0.4) < 0.1  # uniform: mean of 1/options over (4, 2, 2, 2, 3, 3)


def test_synthetic_target_has_optimum_one():
    decisions = factorized_decisions()
    assert len(decisions) == 42 and {d.size for d in decisions} == {2, 3, 4}
    target = HiddenTarget(decisions, seed=3)
    assert target(target.target) == 1.0
    assert target(tuple((t + 1) % d.size for t, d in zip(target.target, decisions))) == 0.0
    coupled = HiddenTarget(decisions, seed=3, coupling=2.0)
    half = tuple(t if i % 6 < 3 else (t + 1) % decisions[i].size for i, t in enumerate(coupled.target))
    assert coupled(coupled.target) == 1.0 and coupled(half) == pytest.approx(0.25)
    assert best_so_far([0.1, 0.3, 0.2]) == [0.1, 0.3, 0.3]


# ------------------------------------------------------------------------- the contract
def test_decision_and_proposal_are_plain_frozen_data():
    decision = Decision("kernel", [3, 5])
    assert decision.options == (3, 5) and decision.size == 2
    proposal = Proposal(np.int64(3), [np.int64(1), 0])
    assert proposal == Proposal(3, (1, 0)) and type(proposal.choices[0]) is int
    with pytest.raises(Exception):
        proposal.id = 4  # type: ignore[misc]
    with pytest.raises(ConfigError, match="at least one option"):
        Decision("kernel", ())
    with pytest.raises(ConfigError, match="not an int, float, str or bool"):
        Decision("kernel", (3, None))


def test_registry_names_and_option_errors():
    assert set(CONTROLLERS) == {"random", "rl", "tpe", "nsga2"}
    with pytest.raises(ConfigError, match=r"unknown controller 'genetic'; valid: nsga2, random, rl, tpe"):
        make_controller("genetic", SMALL)
    with pytest.raises(ConfigError, match=r"controller 'rl': unknown option\(s\) lr_decay; valid: .*batch_size"):
        make_controller("rl", SMALL, lr_decay=0.5)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        make_controller("rl", SMALL, batch_size=0)
    with pytest.raises(ConfigError, match="failure_reward"):
        make_controller("rl", SMALL, failure_reward="worst")
    with pytest.raises(ConfigError, match="population_size"):
        make_controller("nsga2", SMALL, population_size=1)
    with pytest.raises(ConfigError, match="duplicate decision name"):
        make_controller("random", [Decision("a", (1, 2)), Decision("a", (1, 2))])
    assert controller_options("rl")["hidden"] == 100


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_asks_are_valid_seeded_and_have_distinct_ids(name):
    a = make_controller(name, SMALL, seed=7, **FAST.get(name, {}))
    b = make_controller(name, SMALL, seed=7, **FAST.get(name, {}))
    target = HiddenTarget(SMALL, seed=1)
    ra = drive(a, target, 12, in_flight=3, seed=4, values=_values)
    rb = drive(b, target, 12, in_flight=3, seed=4, values=_values)
    assert ra == rb  # same seed, same tells -> same proposals
    proposals = [a.ask() for _ in range(5)]
    assert len({p.id for p in proposals}) == 5
    for p in proposals:
        assert all(0 <= c < d.size for c, d in zip(p.choices, SMALL)) and len(p.choices) == len(SMALL)


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_each_process_of_a_study_draws_its_own_stream(name):
    """Process 0 keeps the study's seed (a lone search proposes what it always did); processes 1, 2, ...
    of the same seed draw streams of their own, the same ones every time, that Optuna's samplers accept."""
    assert proposal_seed(7, 0) == 7
    seeds = [proposal_seed(7, k) for k in range(6)]
    assert seeds == [proposal_seed(7, k) for k in range(6)] and len(set(seeds)) == 6
    assert all(0 <= s < 2 ** 32 for s in seeds[1:]) and proposal_seed(8, 1) != seeds[1]

    def stream(seed: int) -> tuple:
        controller = make_controller(name, SMALL, seed=seed, **FAST.get(name, {}))
        return tuple(controller.ask().choices for _ in range(4))

    streams = [stream(s) for s in seeds[:3]]
    assert streams == [stream(s) for s in seeds[:3]]  # deterministic: a resumed process draws the same
    assert len(set(streams)) == 3  # three processes, three different sequences of proposals


def test_random_is_uniform():
    controller = make_controller("random", [Decision("op", ("conv", "ds", "mb3", "mb6")), Decision("k", (3, 5))],
                                 seed=0)
    counts = np.zeros(4)
    for _ in range(4000):
        counts[controller.ask().choices[0]] += 1
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03)


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_state_dict_round_trips_through_torch_save(name, tmp_path):
    options = FAST.get(name, {})
    original = make_controller(name, SMALL, seed=11, **options)
    target = HiddenTarget(SMALL, seed=2)
    drive(original, target, 23, in_flight=4, seed=1, values=_values)
    original.tell(Proposal(-1, target.target), 1.0, _values(target.target, 1.0))  # a replayed trial
    bad = original.ask()
    original.tell(bad, None)  # a failure
    path = tmp_path / "controller.pt"
    torch.save(original.state_dict(), path)
    resumed = make_controller(name, SMALL, seed=11, **options)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    for _ in range(15):
        p, q = original.ask(), resumed.ask()
        assert p == q
        reward = target(p.choices)
        original.tell(p, reward, _values(p.choices, reward))
        resumed.tell(q, reward, _values(q.choices, reward))


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_never_asked_and_forgotten_proposals_are_accepted(name, tmp_path):
    controller = make_controller(name, SMALL, seed=0, **FAST.get(name, {}))
    pending = [controller.ask() for _ in range(3)]
    state = controller.state_dict()
    fresh = make_controller(name, SMALL, seed=0, **FAST.get(name, {}))
    fresh.load_state_dict(state)
    for i, p in enumerate(pending):  # asked before the restore: the fresh controller never saw them
        fresh.tell(p, None if i == 0 else 0.5, _values(p.choices, 0.5))
    for k in range(8):  # a resumed run replaying stored trials with negative ids
        choices = tuple((k + j) % d.size for j, d in enumerate(SMALL))
        fresh.tell(Proposal(-1 - k, choices), 0.1 * k, _values(choices, 0.1 * k))
    assert len(fresh.ask().choices) == len(SMALL)
    with pytest.raises(ConfigError, match="outside"):
        fresh.tell(Proposal(-99, (9,) * len(SMALL)), 0.5)


def test_checkpoints_of_another_controller_or_space_are_refused():
    rl = make_controller("rl", SMALL)
    with pytest.raises(ConfigError, match="belongs to controller 'random'"):
        rl.load_state_dict(make_controller("random", SMALL).state_dict())
    with pytest.raises(ConfigError, match="different search space"):
        rl.load_state_dict(make_controller("rl", factorized_decisions(1)).state_dict())


# ---------------------------------------------------------------------------------- rl
def test_rl_touches_no_global_random_state():
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    controller = make_controller("rl", SMALL, seed=3, batch_size=4, epochs=1, hidden=16)
    drive(controller, HiddenTarget(SMALL), 9, in_flight=2)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    assert controller.updates == 2


def test_rl_failure_policies():
    choices = tuple(0 for _ in SMALL)
    skip = make_controller("rl", SMALL, failure_reward="skip", batch_size=100)
    skip.tell(Proposal(-1, choices), 0.5)
    skip.tell(Proposal(-2, choices), None)
    assert len(skip.buffer) == 1
    worst = make_controller("rl", SMALL, batch_size=100)  # "min": lowest reward seen, never moves the baseline
    for i, r in enumerate((0.5, 0.7, 0.6)):
        worst.tell(Proposal(-1 - i, choices), r)
    baseline = worst.baseline
    worst.tell(Proposal(-9, choices), float("nan"))
    assert worst.baseline == baseline and worst.buffer[-1][2] < 0
    fixed = make_controller("rl", SMALL, failure_reward=0.0, batch_size=100, normalize=False)
    fixed.tell(Proposal(-1, choices), 0.5)
    fixed.tell(Proposal(-2, choices), None)
    assert fixed.buffer[-1][2] == pytest.approx(-0.5)


def test_rl_policy_shape_matches_mnasnet():
    controller = make_controller("rl", SMALL)
    policy = controller.policy
    assert policy.cell.hidden_size == 100
    assert [h.out_features for h in policy.heads] == [d.size for d in SMALL]
    assert [e.num_embeddings for e in policy.embeddings] == [d.size for d in SMALL]
    probs = controller.probabilities()
    assert all(abs(sum(p) - 1) < 1e-5 for p in probs)


# ------------------------------------------------------------------------------ optuna
def test_nsga2_optimizes_the_values_it_is_given_with_their_directions():
    controller = make_controller("nsga2", SMALL, seed=0, population_size=4)  # default: accuracy up, MACs down
    assert controller.study.directions[0].name == "MAXIMIZE" and controller.study.directions[1].name == "MINIMIZE"
    controller.tell(controller.ask(), 0.3, {"accuracy": 0.8, "macs": 2e8, "params": 1e6})
    controller.tell(controller.ask(), 0.3, {"params": 5e6})  # lacks the values it optimizes: a failure
    trials = controller.study.get_trials()
    assert trials[0].values == [0.8, 2e8] and trials[1].state.name == "FAIL"

    v2 = make_controller("nsga2", SMALL, seed=0, population_size=4,
                         objectives={"accuracy": "max", "step_time_ms": "min", "params": "min"})
    assert [d.name for d in v2.study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    v2.tell(v2.ask(), 0.5, {"accuracy": 0.9, "step_time_ms": 12.0, "params": 3e6, "macs": 1e8})
    assert v2.study.get_trials()[0].values == [0.9, 12.0, 3e6]
    state = v2.state_dict()
    again = make_controller("nsga2", SMALL, seed=0, population_size=4,
                            objectives={"accuracy": "max", "step_time_ms": "min", "params": "min"})
    again.load_state_dict(state)
    assert again.study.get_trials()[0].values == [0.9, 12.0, 3e6]
    with pytest.raises(ConfigError, match="objectives"):
        make_controller("nsga2", SMALL, objectives={"accuracy": "up"})


def test_tpe_maximizes_reward_and_fails_quietly(capsys):
    controller = make_controller("tpe", SMALL, seed=0, n_startup_trials=3)
    target = HiddenTarget(SMALL, seed=0)
    drive(controller, target, 10)
    controller.tell(controller.ask(), None)
    states = [t.state.name for t in controller.study.get_trials()]
    assert states.count("COMPLETE") == 10 and states.count("FAIL") == 1
    assert controller.study.best_value == max(t.value for t in controller.study.get_trials() if t.value is not None)
    captured = capsys.readouterr()
    assert "Trial" not in captured.err + captured.out


def test_rl_whitens_each_batch_and_warms_up_uniformly():
    """A whitened update is the plain update on the batch's advantages minus their mean over their std."""
    rng = np.random.default_rng(0)
    whitened = make_controller("rl", SMALL, seed=1, batch_size=100)
    plain = make_controller("rl", SMALL, seed=1, batch_size=100, whiten=False)
    for i, r in enumerate((0.5, 0.52, 0.51, 0.55, 0.49, 0.58)):
        proposal = Proposal(-1 - i, tuple(int(rng.integers(d.size)) for d in SMALL))
        whitened.tell(proposal, r)
        plain.tell(proposal, r)
    advantage = torch.tensor([b[2] for b in plain.buffer])
    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
    for b, a in zip(plain.buffer, advantage.tolist()):
        b[2] = a
    whitened._update()
    plain._update()
    for p, q in zip(whitened.policy.parameters(), plain.policy.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    with pytest.raises(ConfigError, match="whiten must be true or false"):
        make_controller("rl", SMALL, whiten="yes")
    with pytest.raises(ConfigError, match="warmup must be a non-negative integer"):
        make_controller("rl", SMALL, warmup=-1)
    # warm-up proposals come from the seed, not from the policy: two policies with other weights agree
    a = make_controller("rl", SMALL, seed=4, warmup=3)
    b = make_controller("rl", SMALL, seed=4, warmup=3)
    with torch.no_grad():
        for param in b.policy.parameters():
            param.add_(1.0)
    assert [a.ask().choices for _ in range(3)] == [b.ask().choices for _ in range(3)]
