"""The thread plan: each training process takes its share of the cores, and a busy machine is noticed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.threads import (BusyMeter, ThreadPlan, busy_cores, busy_warning, fair_threads, plan_threads, ray_cpus_per_trial,
                         usable_cores)


def test_the_local_runner_takes_every_core_unless_the_user_fixed_the_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plan = plan_threads("local", {}, cores=8)
    assert (plan.processes, plan.threads) == (1, 8)
    assert plan.describe() == ("threads: 1 process x 8 intra-op thread(s) on 8 core(s) "
                               "(one candidate at a time takes every core)")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert plan_threads("local", {}, cores=8).threads == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a number: the toolkit's own plan
    assert plan_threads("local", {}, cores=8).threads == 8


def test_ray_workers_take_the_cpus_asked_or_a_fair_share():
    assert plan_threads("ray", {"cpus_per_trial": 3.0, "workers": 2}, cores=8).threads == 3
    shared = plan_threads("ray", {"workers": 3}, cores=8)
    assert (shared.processes, shared.threads, shared.why) == (3, 2, "cores / workers")
    assert shared.describe() == "threads: 3 Ray workers x 2 intra-op thread(s) on 8 core(s) (cores / workers)"
    assert plan_threads("ray", {}, cores=8).threads == 1  # workers fill the cluster, one CPU each
    assert "set when it answers" in plan_threads("ray", {"workers": 2, "address": "127.0.0.2:6379"}, cores=8).why
    assert ray_cpus_per_trial(None, 2, 2.0) == 1.0
    assert ray_cpus_per_trial(None, 1, 2.0) == 2.0
    assert ray_cpus_per_trial(None, 4, 2.0) == 1.0  # never below one CPU
    assert ray_cpus_per_trial(0.5, 4, 2.0) == 0.5  # what the user asked
    assert ray_cpus_per_trial(None, None, 64.0) == 1.0


def test_a_process_that_burns_a_core_is_seen_and_left_its_core():
    cores = usable_cores()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # past the interpreter's start
        busy = busy_cores(sample_s=0.5)
        threads = fair_threads(cores, sample_s=0.5)
    finally:
        burner.kill()
        burner.wait()
    assert busy is not None and busy >= 0.6
    assert threads == 1 if cores <= 2 else threads <= cores - 1  # a training takes what is left, at least one
    assert fair_threads(1) == 1


@pytest.mark.parametrize("busy, warned", [(0.0, False), (0.3, False), (0.6, True), (1.7, True), (None, False)])
def test_a_busy_machine_is_reported_once_in_one_line(busy, warned):
    plan = ThreadPlan("local", 1, 2, 2, "one candidate at a time takes every core")
    line = busy_warning(plan, busy)
    assert (line is not None) == warned
    if warned:
        assert line.startswith(f"warning: {busy:.1f} of 2 cores are already busy") and "\n" not in line
    # a plan that wants one core of two leaves room for one busy core
    assert busy_warning(ThreadPlan("ray", 1, 1, 2, "--cpus-per-trial"), 1.0) is None


def proc_stat_busy_cores() -> tuple[float, float]:
    """(busy, total) jiffies of this process's cores, read from /proc/stat here, apart from nas.threads."""
    mine = {f"cpu{n}" for n in os.sched_getaffinity(0)}
    busy = total = 0.0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in mine:
            ticks = [float(v) for v in values[:8]]
            busy, total = busy + sum(ticks) - ticks[3] - ticks[4], total + sum(ticks)
    return busy, total


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_the_meter_reads_the_time_since_its_last_reading_without_this_process_own_work():
    """Checked against /proc/stat over the same interval, so other work on the machine (other test
    workers, other users) changes the figures but not the check: the reading is every core's busy
    time less this process's own, and this process's spinning is its own."""
    meter = BusyMeter(first_sample_s=0.2)
    assert meter.read() is not None  # the first reading samples a moment
    (busy_a, total_a), own_a, wall_a = proc_stat_busy_cores(), time.process_time(), time.monotonic()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # this process's own work, as a trial's: not other work
        pass
    alone = meter.read()
    (busy_b, total_b), own_b, wall_b = proc_stat_busy_cores(), time.process_time(), time.monotonic()
    all_busy = (busy_b - busy_a) / (total_b - total_a) * len(os.sched_getaffinity(0))
    own = (own_b - own_a) / (wall_b - wall_a)
    assert alone is not None and own > 0.25  # this process did spin (a share of a core, at least)
    assert alone == pytest.approx(all_busy - own, abs=0.1)  # its own core time was taken out, not counted
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.8)  # the other process works between two readings, this one waits
        beside = meter.read()
    finally:
        burner.kill()
        burner.wait()
    assert beside is not None and beside >= 0.6  # the other process's core was seen busy