"""The one loop every search-like job runs on: ask, plan, dedupe, train, reward, tell, store.

::

    Stage.controller.ask() -> choices -> Stage.plan(choices) -> (full-size spec, proxy spec, budget)
        -> store.reserve (RUNNING trial: a unique number, counted against the stage's budget)
        -> trained before (same training key, in any stage or process)?  yes: reuse its metrics
           in flight here, or reserved earlier by another process?  wait for it, then reuse
           no: runner.submit(proxy, budget) ... runner.wait() -> Metrics
    Metrics + counted cost of the full-size network (+ the plan's extra values) -> objective.reward
        -> controller.tell -> store.complete (persisted before the next ask) -> trials.csv, b0.json

A *stage* is one pass with its own controller and trial budget: a search's ``search`` stage (a
space and a learning controller), its ``rerank`` stage (the leaders again at a higher fidelity,
proposed in order), the compound-scaling grid (the α/β/γ points in order), a fidelity check. They
share the store, the runner and the dedupe: a network trained once with one budget is never
trained again, whichever stage asks for it.

**Training key.** What decides that two proposals are the same training job: the proxy network
(its key), the budget (epochs, seed, ...) and, when the reward measures the full-size network's
latency on the worker, the full-size network too. Two grid points whose proxies round to the
same network train once; two search proposals that build the same network train once.

**Resume.** A killed process loses only what was training. Its reservations stay RUNNING in the
study; the same run folder resumed adopts and trains them first, under their original numbers, so
trial numbers stay contiguous. Finished trials the controller checkpoint had not seen are replayed.
A process that stops on purpose (Ctrl-C, SIGTERM, an error) releases what it holds when the engine
closes; released reservations are claimed before anything new is proposed, by a resume or by any
process sharing the study, and train under their original numbers.

**Several processes on one study.** Each process draws its own proposals (its controller's seed is
derived from the study's seed and the process's number in the study) and, before each proposal, is
told the trials the others finished, so every controller learns from the whole study. Reservations
carry a heartbeat (Optuna's RDB heartbeat). A process counts every reservation below its own before
training (exact totals), reuses what any process trained, waits for what another process is
training, and takes over a reservation whose owner's heartbeat stopped.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from nas.blockstrings import spec_to_block_strings
from nas.checkpoint import read_torch_file
from nas.controllers.sequence import SequenceController
from nas.counting import count
from nas.decisions import Decision, Proposal
from nas.errors import StorageError
from nas.fileio import Paced, atomic_torch_save, atomic_write_bytes
from nas.metrics import Metrics
from nas.spec import ArchSpec
from nas.store import GRACE_S, HEARTBEAT_S, RunStore, TrialRecord
from nas.training.budget import TrainBudget
from runners.base import Runner, TrainJob

CHECKPOINT = "controller.pt"
CHECKPOINTS = "checkpoints"  # rungs' training states, RUN/checkpoints/<training key>.pt
# Look for reservations of dead processes twice per grace period (at most every 10 s): a network a dead
# process held waits at most half a grace period longer than the grace itself.
STALE_CHECK_S = min(10.0, GRACE_S / 2)
FOREIGN_POLL_S = 1.0


@dataclass(frozen=True)
class Plan:
    """What one proposal becomes: the network whose cost counts, the one that trains, and how."""

    full: ArchSpec
    proxy: ArchSpec
    budget: TrainBudget
    extra: Mapping[str, float] = field(default_factory=dict)  # values stored with the trial (grid ratios)
    resume_from: "Plan | None" = None  # a rung: continue this plan's checkpoint (when the run holds it)
    keep_state: bool = False  # a rung a promotion may continue: keep the training state


@dataclass
class Stage:
    """One pass of the engine.

    ``plan(choices)`` turns a proposal into a :class:`Plan`; ``trials`` is the stage's budget of
    trials (reuses count); ``checkpoint`` is where the controller's state is saved after every trial
    (None for controllers that are rebuilt from the store, such as a fixed list of points).
    ``rewarded`` False stores measurements only (the reference network of an objective that
    measures its references: it has no reward until they are known).
    """

    name: str
    decisions: tuple[Decision, ...]
    controller: Any
    trials: int
    plan: Callable[[tuple[int, ...]], Plan]
    checkpoint: Path | None = None
    rewarded: bool = True


@dataclass
class StageResult:
    trained: int = 0  # candidates trained by this process in this call
    reused: int = 0  # proposals answered by an earlier identical training job
    failed: int = 0
    wall_time_s: float = 0.0
    first_errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # kind -> (trial, message)


def train_key(plan: Plan, measures_full_network: bool) -> str:
    """The dedupe key of a training job (see the module docstring)."""
    blob = {"proxy": plan.proxy.key(), "budget": plan.budget.to_dict()}
    if measures_full_network:
        blob["full"] = plan.full.key()
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def arch_string(spec: ArchSpec) -> str:
    return " ".join(spec_to_block_strings(spec, style="typed"))


def error_kind(message: str) -> str:
    """``'RuntimeError: CUDA out of memory ...'`` -> ``'RuntimeError'``: failures are grouped by kind."""
    head = message.split(":", 1)[0].strip()
    return head if head and " " not in head else (message.split()[0] if message.split() else "unknown")


class _Heartbeat:
    """Keeps this process's reservations alive while they train or wait (a background thread)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.numbers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="nas-heartbeat", daemon=True)
        self._thread.start()

    def add(self, number: int) -> None:
        with self._lock:
            self.numbers.add(number)

    def remove(self, number: int) -> None:
        with self._lock:
            self.numbers.discard(number)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with self._lock:
                numbers = sorted(self.numbers)
            if numbers:
                self.store.heartbeat(numbers)

    def held(self) -> list[int]:
        with self._lock:
            return sorted(self.numbers)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S + 1)


@dataclass
class _Job:
    number: int
    proposal: Proposal
    plan: Plan
    key: str
    stage: "Stage"


class Promotions(Protocol):
    """What :meth:`Engine.run` asks before it asks the stage's controller: a job of another stage that
    is due now (successive halving's promotions, :mod:`nas.jobs.rungs`)."""

    stages: list[Stage]

    def next(self) -> tuple[Stage, tuple[int, ...]] | None:
        """The stage and choices of the next promotion, or None when none is due now."""

    def finished(self, record: TrialRecord) -> None:
        """Called after every result."""


@dataclass
class _Pass:
    """The state of one :meth:`Engine.run`."""

    stage: Stage
    promotions: Promotions | None
    result: StageResult = field(default_factory=StageResult)
    told: dict[str, set[int]] = field(default_factory=dict)
    adopt: list[tuple[Stage, Any]] = field(default_factory=list)
    in_flight: dict[int, _Job] = field(default_factory=dict)
    waiting: dict[str, list[_Job]] = field(default_factory=dict)  # training key in flight -> jobs waiting on it

    @property
    def stages(self) -> list[Stage]:
        return [self.stage, *(self.promotions.stages if self.promotions is not None else [])]


class Engine:
    """Runs stages against one store, one objective and one runner.

    ``runner`` builds the runner (``runners.runner_factory``, whose options were checked before the
    run folder existed); it is called when the first job really trains. ``latency`` predicts the
    full-size network's latency (a latency table) instead of timing it on the worker. ``outputs``
    rewrites the job's files after each trial (default: trials.csv).
    """

    def __init__(self, store: RunStore, objective: Any, runner: Callable[[], Runner], data_ref: Any, device: str,
                 latency: Callable[[ArchSpec], float] | None = None,
                 on_trial: Callable[[TrialRecord, int, int], None] | None = None,
                 outputs: Callable[[], None] | None = None) -> None:
        self.store = store
        self.objective = objective
        self.data_ref = data_ref
        self.device = device
        self.measure_full_latency = bool(getattr(objective, "needs_latency", False)) and latency is None
        self.latency = latency
        self.on_trial = on_trial
        self.outputs = outputs or store.write_trials_csv
        self._make_runner = runner
        self._runner: Runner | None = None
        self._heartbeat = _Heartbeat(store)
        self._checkpoint_pace: dict[str, Paced] = {}
        self._replayed: dict[str, int] = {}  # stage -> how far along the log's arrivals _replay has gone

    # ----------------------------------------------------------------------------- runner
    def runner(self) -> Runner:
        """The runner, started at the first job that really trains (a fully reused stage starts none)."""
        if self._runner is None:
            self._runner = self._make_runner()
        return self._runner

    def _capacity(self) -> int:
        """Jobs the runner takes at once; 1 until it exists. Read again after every dispatch: the first
        dispatch starts the runner, and its other workers must get jobs at once, not after the first ends."""
        return self._runner.capacity if self._runner is not None else 1

    def close(self) -> None:
        """Stop: reservations still held (an interrupt, an error) are released at once for a resume or
        another process, then the runner's workers are stopped."""
        self._heartbeat.stop()
        for number in self._heartbeat.held():
            self.store.release(number)
            self._heartbeat.remove(number)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.close()

    # ------------------------------------------------------------------------------ stage
    def run(self, stage: Stage, promotions: Promotions | None = None) -> StageResult:
        """Drive ``stage`` until it holds ``stage.trials`` trials (counting every process's); with
        ``promotions``, a due promotion goes before each new proposal, until none is left either."""
        start = time.perf_counter()
        run = _Pass(stage, promotions)
        for s in run.stages:
            run.told[s.name] = self._restore(s)
            run.adopt += [(s, r) for r in self.store.reservations(s.name)
                          if r.owner == self.store.owner and not r.released]
        try:
            self._drive(run)
        finally:
            for s in run.stages:  # paced during the stage (_next_job): complete now
                self._save_checkpoint(s, run.told[s.name], force=True)
        run.result.wall_time_s = time.perf_counter() - start
        return run.result

    def _drive(self, run: _Pass) -> None:
        stage, promotions = run.stage, run.promotions
        last_stale_check = 0.0
        while True:
            while len(run.in_flight) < self._capacity():
                job = self._next_job(run)
                if job is None:
                    break
                self._dispatch(run, job)
            if not run.in_flight and not run.waiting:
                if run.adopt or self.store.counted(stage.name) < stage.trials or (
                        promotions is not None and promotions.next() is not None):
                    continue  # room left (a reservation elsewhere was given up, a promotion due): ask again
                break
            if run.in_flight:
                for job_done, metrics in self.runner().wait():
                    job = run.in_flight.pop(job_done.trial)
                    record = self._finish(run, job, metrics, None)
                    run.result.trained += 1
                    for repeat in run.waiting.pop(job.key, []):
                        self._finish(run, repeat, record.metrics, record.number)
                        run.result.reused += 1
            else:
                time.sleep(FOREIGN_POLL_S)
            if time.perf_counter() - last_stale_check > STALE_CHECK_S:
                self.store.fail_stale()
                last_stale_check = time.perf_counter()
            self._resolve_foreign(run)

    def _next_job(self, run: _Pass) -> _Job | None:
        """An adopted reservation, a due promotion, or a new proposal reserved within the stage's budget
        (None: nothing to start now)."""
        adopted = run.adopt.pop(0) if run.adopt else self._claim_released(run)
        if adopted is not None:
            stage, reservation = adopted
            self._heartbeat.add(reservation.number)
            self.store.heartbeat([reservation.number])  # its last beat may be old: alive from now on
            indices = tuple(reservation.indices)
            plan = stage.plan(indices)
            return _Job(reservation.number, Proposal(-1 - reservation.number, indices), plan,
                        train_key(plan, self.measure_full_latency), stage)
        due = run.promotions.next() if run.promotions is not None else None
        if due is not None:
            stage, choices = due
            proposal = Proposal(-1, choices)
        # The study was just read (_claim_released): the count and the replay are as of that read, and
        # within_budget reads again after the reservation, which is what makes the budget exact.
        elif self.store.counted(run.stage.name, refresh=False) < run.stage.trials:
            stage = run.stage
            self._replay(stage, run.told[stage.name])  # what other processes of the study finished meanwhile
            proposal = stage.controller.ask()
            # Saved now, with what it was told since the last save: a process killed while this proposal
            # trains resumes past it (it adopts the reservation) instead of asking for the same network
            # again. Paced (nas.fileio.Paced): when trials take no time, every few asks; then a resumed
            # random or rl controller may propose a few networks again, which are reused, not trained.
            self._save_checkpoint(stage, run.told[stage.name])
        else:
            return None
        plan = stage.plan(proposal.choices)
        key = train_key(plan, self.measure_full_latency)
        choices = {d.name: d.options[i] for d, i in zip(stage.decisions, proposal.choices)}
        number = self.store.reserve(stage.name, choices, proposal.choices, stage.decisions, plan.full,
                                    arch_string(plan.full), key)
        self._heartbeat.add(number)  # held from now on: released if the process stops before it finishes
        if not self.store.within_budget(number, stage.name, stage.trials):
            self.store.give_up(number, "another process filled the stage's budget first")
            self._heartbeat.remove(number)
            return None
        if due is not None:
            proposal = Proposal(-1 - number, proposal.choices)
        return _Job(number, proposal, plan, key, stage)

    def _claim_released(self, run: _Pass) -> tuple[Stage, Any] | None:
        """A reservation released by a process that stopped (this run folder's earlier process, or another
        sharing the study), claimed for this pass's stages; None when there is none left to claim. Reads
        what changed in the study (the one read before a new proposal)."""
        stages = {s.name: s for s in run.stages}
        for reservation in self.store.reservations():
            stage = stages.get(reservation.stage)
            if (reservation.released and stage is not None and len(reservation.indices) == len(stage.decisions)
                    and self.store.claim(reservation.number)):
                return stage, reservation
        return None

    def _dispatch(self, run: _Pass, job: _Job) -> None:
        done, elsewhere = self._trained_or_training_elsewhere(job.key, job.number)
        if done is not None:
            self._finish(run, job, done.metrics, done.number)
            run.result.reused += 1
            return
        busy_here = any(j.key == job.key for j in run.in_flight.values())
        if busy_here or elsewhere:
            run.waiting.setdefault(job.key, []).append(job)
            return
        run.in_flight[job.number] = job
        self.runner().submit(TrainJob(trial=job.number, spec=job.plan.proxy, dataset=self.data_ref,
                                      budget=job.plan.budget, device=self.device, full_spec=job.plan.full,
                                      measure_full_latency=self.measure_full_latency,
                                      resume_state=self._checkpoint_of(job.plan), keep_state=job.plan.keep_state))

    def _checkpoint_path(self, key: str) -> Path:
        folder = Path(self.store.run_dir) / CHECKPOINTS
        folder.mkdir(exist_ok=True)
        return folder / f"{key}.pt"

    def _checkpoint_of(self, plan: Plan) -> bytes | None:
        """The training state a rung continues, when this run folder holds it (else it trains from scratch)."""
        if plan.resume_from is None:
            return None
        path = self._checkpoint_path(train_key(plan.resume_from, self.measure_full_latency))
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _trained_or_training_elsewhere(self, key: str, number: int) -> tuple[TrialRecord | None, bool]:
        """The finished trial that trained ``key``, else whether another process is training it.

        Both come from one read of the study (:meth:`nas.store.TrialLog.refresh`: one query for the
        states of every trial not seen to end), so a network another process finishes meanwhile is in
        one or the other. Read as two queries, reservations first, then finished records, it would
        be too; the other way round it could be in neither, and the network would train twice (seen
        once in two processes sharing a SQLite study).
        """
        reservations = self.store.reservations()
        done = self.store.trained_record(key, refresh=False)
        return done, done is None and self._trains_elsewhere(key, number, reservations)

    def _trains_elsewhere(self, key: str, number: int, reservations: list | None = None) -> bool:
        """Whether another process holds an earlier reservation of the same network, which trains it.

        Two processes can reserve the same network at the same moment; each then sees the other's
        reservation. The earliest reservation (lowest trial number) trains and the later ones wait for
        it, so exactly one of them trains and neither waits for the other. ``reservations``: the
        store's, when the caller already read them (one query per pass, not one per network).
        """
        if reservations is None:
            reservations = self.store.reservations()
        return any(r.train_key == key and r.number < number and r.owner != self.store.owner and not r.released
                   for r in reservations)

    def _resolve_foreign(self, run: _Pass) -> None:
        """Jobs waiting on another process: reuse its result, or train it here if that process died."""
        if not run.waiting:
            return
        local = {j.key for j in run.in_flight.values()}
        reservations = self.store.reservations()
        for key in [k for k in run.waiting if k not in local]:
            done = self.store.trained_record(key)
            jobs = run.waiting.pop(key)
            if done is not None:
                for job in jobs:
                    self._finish(run, job, done.metrics, done.number)
                    run.result.reused += 1
            elif not self._trains_elsewhere(key, min(j.number for j in jobs), reservations):
                # its trainer died or gave up: train it here, the others wait on us
                first, rest = jobs[0], jobs[1:]
                self._dispatch(run, first)
                if rest:
                    run.waiting.setdefault(key, []).extend(rest)
            else:
                run.waiting[key] = jobs

    # ---------------------------------------------------------------------------- results
    def values(self, plan: Plan, metrics: Metrics) -> dict[str, float]:
        """The objective's inputs: the full-size network's counted cost, the proxy's measurements, extras."""
        cost = count(plan.full)
        values = {"macs": float(cost.macs), "params": float(cost.params)}
        for name in ("accuracy", "step_time_ms", "latency_ms"):
            value = getattr(metrics, name)
            if value is not None:
                values[name] = float(value)
        if self.latency is not None:  # predicted for the target device: nothing was timed on the worker
            values["latency_ms"] = values["predicted_latency_ms"] = float(self.latency(plan.full))
        values.update({f"score_{name}": float(v) for name, v in metrics.scores.items()})
        values.update({k: float(v) for k, v in plan.extra.items()})
        quality = self.objective.quality(values)
        if quality is not None:
            values["score"] = quality  # the quality term the reward used
        return values

    def _finish(self, run: _Pass, job: _Job, metrics: Metrics, reused_from: int | None) -> TrialRecord:
        stage, result = job.stage, run.result
        if metrics.checkpoint is not None:  # a rung's state, for a later promotion; never stored with the trial
            atomic_write_bytes(self._checkpoint_path(job.key), metrics.checkpoint)
            metrics = replace(metrics, checkpoint=None)
        values = self.values(job.plan, metrics)
        reward = None
        if stage.rewarded and metrics.status in ("ok", "pruned") and metrics.accuracy is not None:
            reward = self.objective.reward(values)
        choices = {d.name: d.options[i] for d, i in zip(stage.decisions, job.proposal.choices)}
        record = TrialRecord(choices=choices, indices=job.proposal.choices, metrics=metrics, spec=job.plan.full,
                             arch=arch_string(job.plan.full), key=job.plan.full.key(),
                             reward=reward if metrics.ok else None, values=values, reused_from=reused_from,
                             stage=stage.name, train_key=job.key)
        record = self.store.complete(job.number, record)
        self._heartbeat.remove(job.number)
        if not metrics.ok and metrics.status != "pruned":
            result.failed += 1
            result.first_errors.setdefault(error_kind(metrics.error or metrics.status),
                                           (job.number, metrics.error or metrics.status))
        stage.controller.tell(job.proposal, reward, values)
        run.told[stage.name].add(job.number)  # saved with the next ask, or when the stage ends (a resume
        # replays what a checkpoint has not been told)
        if run.promotions is not None:
            run.promotions.finished(record)
        self.outputs()
        if self.on_trial is not None:
            self.on_trial(record, self.store.finished(stage.name), stage.trials)
        return record

    # ------------------------------------------------------------------------------ resume
    def _restore(self, stage: Stage) -> set[int]:
        """Load the controller checkpoint and replay stored trials it has not seen; returns the told set."""
        told: set[int] = set()
        if stage.checkpoint is not None and stage.checkpoint.exists():
            checkpoint = read_torch_file(stage.checkpoint, "controller checkpoint")
            try:
                stage.controller.load_state_dict(checkpoint["controller"])
            except (KeyError, TypeError, ValueError) as exc:
                raise StorageError(f"{stage.checkpoint}: unusable controller checkpoint ({exc})") from None
            told = set(checkpoint.get("told", []))
        self._replayed[stage.name] = 0  # the controller is as the checkpoint left it: go over every record
        self._replay(stage, told, refresh=True)
        return told

    def _replay(self, stage: Stage, told: set[int], refresh: bool = False) -> None:
        """Tell the stage's controller the stored trials it has not been told (adding them to ``told``):
        on resume, what the checkpoint had not seen; before every proposal, what the other processes of
        a shared study finished, so each controller learns from the whole study and not only its own.

        Only the records that joined the store's log since the last replay are gone over (the log's
        arrival order, :meth:`nas.store.RunStore.arrived`), so a replay before each proposal costs the
        same at the 10,000th trial as at the 10th. Before a proposal the log is as of the read just
        made (``_claim_released``); ``refresh`` reads the storage first (on resume)."""
        start = self._replayed.get(stage.name, 0)
        records = self.store.arrived(start, refresh=refresh)
        self._replayed[stage.name] = start + len(records)
        for record in records:
            if (record.stage == stage.name and record.number not in told
                    and len(record.indices) == len(stage.decisions)):
                reward = record.reward if record.metrics.status in ("ok", "pruned") else None
                stage.controller.tell(Proposal(-1 - record.number, record.indices), reward,
                                      dict(record.values) or None)
                told.add(record.number)

    def _save_checkpoint(self, stage: Stage, told: set[int], force: bool = False) -> None:
        if stage.checkpoint is None:
            return
        path = stage.checkpoint

        def save() -> None:
            atomic_torch_save({"controller": stage.controller.state_dict(), "told": sorted(told),
                               "controller_name": getattr(stage.controller, "name", "")}, path)

        self._checkpoint_pace.setdefault(stage.name, Paced(share=0.05)).run(save, force=force)


def proposals_in_order(decisions: Sequence[Decision], points: Sequence[Sequence[int]]) -> Any:
    """A controller that proposes ``points`` one after the other (see :mod:`nas.controllers.sequence`)."""
    return SequenceController(decisions, points=points)


__all__ = ["CHECKPOINT", "CHECKPOINTS", "Engine", "Plan", "Promotions", "Stage", "StageResult", "arch_string",
           "error_kind", "proposals_in_order", "train_key"]
