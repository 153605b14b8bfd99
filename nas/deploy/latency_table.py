"""Per-device latency tables: time every piece a search space can produce once, then predict any
candidate's latency without running it (MnasNet's platform-aware search, HW-NAS-Bench's and
once-for-all's lookup tables).

Build (on the target device): enumerate every distinct :class:`~nas.deploy.pieces.Piece` the
space's full-size candidates can contain at the target resolution (each stage's variants x the
widths the previous stage can hand it, first block and repeated block), plus the stem and every
head; time each at batch 1 on the chosen runtime and thread count (:mod:`nas.deploy.measure`).

Calibrate: a network is more than the sum of its pieces timed alone (per-call overheads that a
whole network pays once, caches warm with one block's weights, the runtime fusing across block
boundaries, a piece timed alone paying to convert its input and output to the runtime's layout). The
build also times ``calibration_networks`` whole random candidates and fits ``measured = scale *
sum(pieces) + ms_per_boundary_million * boundary elements + offset_ms`` (:class:`Calibration`,
:func:`fit_calibration`); :meth:`LatencyTable.predict_ms` applies it. The networks are timed spread over the build, one
after every ``entries / (networks + 1)`` pieces, not all at its end: a build takes minutes to half
an hour, and a device's speed drifts by a few percent over that time (other tenants of a shared
host, clocks); networks timed at the end would fit the scale to the last minutes only.

Every latency here is the *fastest* of many timed calls (``min_ms``), pieces and networks alike: on
a machine shared with other processes it is the one figure they do not inflate (on this project's
busy 2-core machine the median of a 1 ms block doubled from one run to the next while its minimum
moved by a few percent), and on an idle device it lies within a few percent of the median. The validation (``benchmarks/latency_table.py``) measures candidates the fit never saw.

The file is JSON, rewritten atomically at most every second while building, so a killed build
resumes where it stopped; it records space, resolution, runtime, threads and machine, and a table
from another machine, runtime or space version is never extended silently.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from nas.builder import build_model
from nas.deploy.machine import machine_info, same_machine
from nas.deploy.measure import TimingPolicy, time_calls
from nas.deploy.pieces import Piece, block_piece, head_piece, spec_pieces, stem_piece
from nas.deploy.runtimes import build_runtime, check_runtime, check_threads, torch_threads
from nas.errors import ConfigError, StorageError
from nas.fileio import atomic_write_json, check_output_file
from nas.spec import ArchSpec
from nas.timing import steady_allocator
from search_spaces import make_space

TABLE_FORMAT = "scalenas-latency-table"
TABLE_VERSION = 2  # 2: timed with the allocator in a fixed state (nas.timing.steady_allocator)
PIECE_POLICY = TimingPolicy(warmup=5, min_repeats=20, min_seconds=0.3, max_repeats=2000)
NETWORK_POLICY = TimingPolicy(warmup=3, min_repeats=10, min_seconds=1.0, max_repeats=500)
CALIBRATION_NETWORKS = 25  # 10 measured too few: BENCHMARKS.md, latency tables, 2026-12-05
CALIBRATION_SEED = 1_000_003
SAVE_EVERY_S = 1.0


# ------------------------------------------------------------------------------ enumeration
def space_pieces(space: Any, resolution: int, in_chans: int = 3, num_classes: int = 1000,
                 norm: str = "batchnorm") -> dict[str, Piece]:
    """Every distinct piece (key -> piece) in full-size candidates of ``space`` at ``resolution``."""
    stem = stem_piece(resolution, in_chans, space.stem_channels, space.activation, norm)
    pieces: dict[str, Piece] = {stem.key: stem}
    size = math.ceil(resolution / 2)
    widths = {space.stem_channels}
    for index in range(len(space.stages)):
        variants = space.stage_variants(index)
        stride = space.stages[index].stride
        size_out = math.ceil(size / stride)
        for stage in variants:
            for in_ch in sorted(widths):
                first = block_piece(stage, in_ch, size, True, norm)
                if first.is_valid():
                    pieces.setdefault(first.key, first)
            if stage.repeats > 1:
                repeated = block_piece(stage, stage.out_channels, size_out, False, norm)
                if repeated.is_valid():
                    pieces.setdefault(repeated.key, repeated)
        widths = {stage.out_channels for stage in variants}
        size = size_out
    for width in sorted(widths):
        head = head_piece(size, width, space.head_channels, num_classes, space.activation, norm)
        pieces[head.key] = head
    return pieces


def fingerprint(keys: Any) -> str:
    """A short hash of a set of piece keys: equal when two space definitions produce the same pieces."""
    blob = "\n".join(sorted(keys)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# ------------------------------------------------------------------------------ measuring
def measure_module(module: Any, input_shape: tuple[int, ...], runtime: str, threads: int,
                   policy: TimingPolicy, workdir: str | Path | None = None, seed: int = 0) -> Any:
    """Latency (:class:`~nas.deploy.measure.Latency`) of ``module`` on ``runtime``, as a table
    entry or a whole network is timed: same runtime, same policy."""
    import torch  # torch: imported when used, not at module import

    x = torch.randn(input_shape, generator=torch.Generator().manual_seed(seed))
    with torch_threads(threads):
        if runtime == "onnxruntime":
            with tempfile.TemporaryDirectory(prefix="nas-latency-", dir=workdir) as tmp:
                compiled = build_runtime(runtime, module, x, threads, workdir=tmp)
        else:
            compiled = build_runtime(runtime, module, x, threads)
        prepared = compiled.prepare(x)
        return time_calls(lambda: compiled.run(prepared), policy)


def measure_network(spec: ArchSpec, runtime: str, threads: int, policy: TimingPolicy = NETWORK_POLICY,
                    seed: int = 0) -> Any:
    """Latency of the whole network of ``spec`` at batch 1 (seeded weights)."""
    import torch  # torch: imported when used, not at module import

    model = build_model(spec, generator=torch.Generator().manual_seed(seed)).eval()
    return measure_module(model, (1, spec.in_chans, spec.resolution, spec.resolution), runtime, threads, policy,
                          seed=seed)


MIN_NETWORKS_PER_TERM = 2  # fewer calibration networks than 2 per fitted term: the median ratio alone


@dataclass(frozen=True)
class Calibration:
    """``measured ~= scale * sum_ms + ms_per_boundary_million * boundary_millions + offset_ms``.

    ``scale``: pieces run a little slower or faster inside a network than alone (caches hold one
    block's weights, not the network's). ``ms_per_boundary_million``: what timing a piece alone adds
    per million elements of its input and output (:attr:`~nas.deploy.pieces.Piece.boundary_elements`;
    negative where a runtime reorders layouts around every piece, as ONNX Runtime does, about
    -0.25 ms per million on this project's CPU). ``offset_ms``: the constant for the rest.
    """

    scale: float = 1.0
    ms_per_boundary_million: float = 0.0
    offset_ms: float = 0.0

    def predict(self, sum_ms: float, boundary_millions: float) -> float:
        return self.scale * sum_ms + self.ms_per_boundary_million * boundary_millions + self.offset_ms

    def describe(self) -> str:
        """The fit as printed by ``nas latency-table build`` and the benchmark."""
        return (f"measured = {self.scale:.3f} x sum {self.ms_per_boundary_million:+.3f} ms x million boundary "
                f"elements {self.offset_ms:+.3f} ms")


def boundary_millions(spec: ArchSpec) -> float:
    """Millions of input and output elements summed over ``spec``'s pieces (the calibration's second term)."""
    return sum(piece.boundary_elements for _, piece in spec_pieces(spec)) / 1e6


def fit_calibration(sums: list[float], boundaries: list[float], measured: list[float]) -> Calibration:
    """The :class:`Calibration` of whole networks with these sums of entries (ms), boundary
    elements (millions) and measured latencies (ms).

    A robust least-squares fit of the relative error (scipy's ``soft_l1`` loss: beyond 5% a
    residual counts linearly, so one network timed while another process ran does not move the
    fit). With fewer than two networks per term it falls back to the median ratio of measured to
    summed latency and the median of what is left; with one network the scale is 1.
    """
    from scipy.optimize import least_squares  # scipy: imported when a statistic is computed

    if not sums:
        return Calibration()
    ratio = statistics.median(m / s for s, m in zip(sums, measured) if s > 0) if len(sums) > 1 else 1.0
    if len(sums) < MIN_NETWORKS_PER_TERM * 3:
        return Calibration(scale=float(ratio),
                           offset_ms=float(statistics.median(m - ratio * s for s, m in zip(sums, measured))))
    terms = np.column_stack([sums, boundaries, np.ones(len(sums))])
    target = np.asarray(measured, dtype=float)
    fit = least_squares(lambda w: terms @ w / target - 1.0, x0=[ratio, 0.0, 0.0], loss="soft_l1", f_scale=0.05)
    scale, per_million, offset = (float(v) for v in fit.x)
    return Calibration(scale, per_million, offset)


# ------------------------------------------------------------------------------ the table
@dataclass
class LatencyTable:
    """A latency table in memory: header, piece entries (key -> latency dict) and calibration."""

    header: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def space(self) -> str:
        return str(self.header["space"])

    @property
    def resolution(self) -> int:
        return int(self.header["resolution"])

    @property
    def runtime(self) -> str:
        return str(self.header["runtime"])

    @property
    def threads(self) -> int:
        return int(self.header["threads"])

    @property
    def expected(self) -> int:
        return int(self.header["expected_entries"])

    @property
    def complete(self) -> bool:
        networks = self.calibration.get("networks", [])
        return len(self.entries) >= self.expected and len(networks) >= int(self.header["calibration_networks"]) \
            and "scale" in self.calibration

    def to_dict(self) -> dict[str, Any]:
        return {**self.header, "entries": self.entries, "calibration": self.calibration}

    def save(self) -> None:
        self.header["updated"] = _now()
        atomic_write_json(self.path, self.to_dict())

    # ------------------------------------------------------------------ prediction
    def _where(self) -> str:
        return str(self.path) if self.path is not None else "latency table"

    def check_spec(self, spec: ArchSpec) -> None:
        """ConfigError naming the first property of ``spec`` that differs from what the table timed."""
        expected = {"resolution": self.resolution, "in_chans": self.header["in_chans"],
                    "num_classes": self.header["num_classes"], "norm": self.header["norm"]}
        for name, value in expected.items():
            if getattr(spec, name) != value:
                raise ConfigError(f"{self._where()}: built for {name} {value}, the network has {getattr(spec, name)} "
                                  f"(build a table with the network's {name})", field="latency_table")

    def sum_ms(self, spec: ArchSpec) -> tuple[float, list[tuple[str, str, float]]]:
        """Sum of the table entries of ``spec``'s pieces, and the breakdown ``(where, key, ms)``."""
        self.check_spec(spec)
        parts = []
        for where, piece in spec_pieces(spec):
            entry = self.entries.get(piece.key)
            if entry is None:
                raise ConfigError(f"{self._where()} has no entry for {where} ({piece.key}): the network is not "
                                  f"in space {self.space!r} as the table was built", field="latency_table")
            parts.append((where, piece.key, float(entry["ms"])))
        return sum(ms for _, _, ms in parts), parts

    @property
    def fitted(self) -> Calibration:
        """The calibration fitted at build time (tables fitted before the boundary term: weight 0)."""
        cal = self.calibration
        if "scale" not in cal:
            raise StorageError(f"{self._where()}: the table has no calibration yet (an unfinished build); run the "
                               "same nas latency-table build again to finish it", field="latency_table")
        return Calibration(float(cal.get("scale", 1.0)), float(cal.get("ms_per_boundary_million", 0.0)),
                           float(cal.get("offset_ms", 0.0)))

    def predict_ms(self, spec: ArchSpec) -> float:
        """Predicted batch-1 latency of the full-size network ``spec`` on the table's device and runtime:
        the fitted :class:`Calibration` of the sum of its entries (stem + blocks + head) and of its
        boundary elements."""
        calibration = self.fitted  # first: an unfinished table says so before naming a missing entry
        total, _ = self.sum_ms(spec)
        return calibration.predict(total, boundary_millions(spec))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_table(path: str | Path) -> LatencyTable:
    """Read a table file; one StorageError line for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"{path}: no such latency table", field="latency_table")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StorageError(f"{path}: unreadable latency table ({exc})", field="latency_table") from None
    if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
        raise StorageError(f"{path}: not a latency table (no format {TABLE_FORMAT!r}); build one with "
                           "nas latency-table build", field="latency_table")
    if data.get("version") != TABLE_VERSION:
        raise StorageError(f"{path}: latency table version {data.get('version')!r} is not supported (this toolkit "
                           f"reads version {TABLE_VERSION}); build it again with nas latency-table build",
                           field="latency_table")
    entries = data.pop("entries", None)
    calibration = data.pop("calibration", None)
    if not isinstance(entries, dict) or not isinstance(calibration, dict):
        raise StorageError(f"{path}: latency table without entries or calibration", field="latency_table")
    for name, kind in HEADER_FIELDS.items():
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise StorageError(f"{path}: latency table field {name!r} is {'missing' if value is None else 'invalid'} "
                               f"(expected {kind.__name__}, got {value!r}); build the table again",
                               field="latency_table")
    for key, entry in entries.items():
        if not (isinstance(entry, dict) and _finite(entry.get("ms")) and entry["ms"] >= 0):
            raise StorageError(f"{path}: entry {key!r} has no valid 'ms' value (a finite number >= 0)",
                               field="latency_table")
    for name in CALIBRATION_FIELDS:
        if name in calibration and not _finite(calibration[name]):
            raise StorageError(f"{path}: calibration {name!r} is not a finite number, got {calibration[name]!r}; "
                               "build the table again", field="latency_table")
    return LatencyTable(header=data, entries=entries, calibration=calibration, path=path)


# What a table's header must hold, and its calibration's numbers (checked on reading: a hand-edited or
# damaged file is one error line, not a traceback or an "inf ms" prediction).
HEADER_FIELDS = {"space": str, "space_fingerprint": str, "resolution": int, "in_chans": int, "num_classes": int,
                 "norm": str, "runtime": str, "threads": int, "expected_entries": int, "calibration_networks": int}
CALIBRATION_FIELDS = ("scale", "ms_per_boundary_million", "offset_ms")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_latency_table(path: str | Path, space: str, resolution: int) -> LatencyTable:
    """A complete table built for ``space`` (a name or YAML file, as given to the search) at ``resolution``.

    StorageError for a missing, unreadable or unfinished file; ConfigError (field ``latency_table``)
    naming the mismatch when it was built for another space, another version of the space, or another
    resolution.
    """
    table = read_table(path)
    target = make_space(space)
    if table.space != target.name:
        raise ConfigError(f"{path}: built for space {table.space!r}, not {target.name!r}", field="latency_table")
    if table.resolution != resolution:
        raise ConfigError(f"{path}: built at resolution {table.resolution}, not {resolution} (build one at the "
                          f"target resolution)", field="latency_table")
    pieces = space_pieces(target, resolution, table.header["in_chans"], table.header["num_classes"],
                          table.header["norm"])
    if fingerprint(pieces) != table.header.get("space_fingerprint"):
        raise ConfigError(f"{path}: built for another definition of space {target.name!r} (its blocks differ); "
                          "rebuild the table", field="latency_table")
    if not table.complete:
        raise StorageError(f"{path}: unfinished latency table ({len(table.entries)} of {table.expected} entries, "
                           f"{len(table.calibration.get('networks', []))} of {table.header['calibration_networks']} "
                           "calibration networks); run the same nas latency-table build again to finish it",
                           field="latency_table")
    return table


# ------------------------------------------------------------------------------ building
@dataclass(frozen=True)
class BuildConfig:
    """What to build: the space, target resolution, runtime and threads, the network's input
    channels / classes / norm, and how many whole networks calibrate the sum."""

    space: str
    resolution: int | None = None
    runtime: str = "torch"
    threads: int = 1
    in_chans: int = 3
    num_classes: int = 1000
    norm: str = "batchnorm"
    calibration_networks: int = CALIBRATION_NETWORKS
    piece_policy: TimingPolicy = PIECE_POLICY
    network_policy: TimingPolicy = NETWORK_POLICY


def _header(config: BuildConfig, space: Any, resolution: int, pieces: Mapping[str, Piece]) -> dict[str, Any]:
    return {"format": TABLE_FORMAT, "version": TABLE_VERSION, "space": space.name,
            "space_fingerprint": fingerprint(pieces), "resolution": resolution, "in_chans": config.in_chans,
            "num_classes": config.num_classes, "norm": config.norm, "batch": 1, "statistic": "min",
            "runtime": config.runtime,
            "threads": config.threads, "machine": machine_info(), "allocator": steady_allocator(),
            "expected_entries": len(pieces),
            "calibration_networks": config.calibration_networks,
            "piece_policy": config.piece_policy.__dict__, "network_policy": config.network_policy.__dict__,
            "created": _now(), "updated": _now()}


def _check_resumable(existing: LatencyTable, header: dict[str, Any]) -> None:
    for name in ("space", "resolution", "in_chans", "num_classes", "norm", "runtime", "threads",
                 "calibration_networks", "allocator"):
        if existing.header.get(name) != header[name]:
            raise StorageError(f"out {existing.path}: holds a table built with {name} {existing.header.get(name)!r}, "
                               f"this build has {header[name]!r}; choose another file", field="out")
    if existing.header.get("space_fingerprint") != header["space_fingerprint"]:
        raise StorageError(f"out {existing.path}: holds a table of another definition of space {header['space']!r} "
                           "(its blocks differ); choose another file", field="out")
    difference = same_machine(existing.header.get("machine", {}), header["machine"])
    if difference is not None:
        raise StorageError(f"out {existing.path}: was measured on another machine ({difference}); choose another "
                           "file", field="out")


Progress = Callable[[str, int, int], None]


def build_latency_table(config: BuildConfig, out: str | Path, progress: Progress | None = None) -> LatencyTable:
    """Build (or finish) the table at ``out``; ``progress(phase, done, total)`` is called as it goes.

    An existing file for the same space, resolution, runtime, threads and machine is resumed; one for
    anything else is an error and stays untouched.
    """
    check_runtime(config.runtime)
    check_threads(config.threads)
    if config.calibration_networks < 1:
        raise ConfigError(f"calibration_networks must be >= 1, got {config.calibration_networks}",
                          field="calibration_networks")
    space = make_space(config.space)
    resolution = config.resolution or space.resolution
    if not (isinstance(resolution, int) and 8 <= resolution <= 4096):
        raise ConfigError(f"resolution must be an integer between 8 and 4096, got {resolution!r}", field="resolution")
    if config.runtime == "onnxruntime":
        import onnxruntime  # noqa: F401 - fail before any work if it is missing
    path = Path(out)
    pieces = space_pieces(space, resolution, config.in_chans, config.num_classes, config.norm)
    header = _header(config, space, resolution, pieces)
    if path.exists():
        table = read_table(path)
        _check_resumable(table, header)
    else:
        check_output_file(path)
        table = LatencyTable(header=header, path=path)
        table.save()
    table.path = path

    networks = table.calibration.setdefault("networks", [])
    candidates = calibration_candidates(space, config, resolution)
    todo = [piece for key, piece in pieces.items() if key not in table.entries]
    every = len(pieces) / (len(candidates) + 1)  # one network after every `every` pieces

    def time_next_network() -> None:
        spec = candidates[len(networks)]
        latency = measure_network(spec, config.runtime, config.threads, config.network_policy)
        networks.append({"key": spec.key(), "measured_ms": latency.min_ms, "p50_ms": latency.p50_ms,
                         "after_entries": len(table.entries)})
        table.save()

    last_save = time.monotonic()
    try:
        for piece in todo:
            if progress is not None:
                progress("pieces", len(table.entries), len(pieces))
            latency = measure_module(piece.module(), piece.input_shape(), config.runtime, config.threads,
                                     config.piece_policy)
            table.entries[piece.key] = {"ms": latency.min_ms, "p50_ms": latency.p50_ms,
                                        "p90_ms": latency.p90_ms, "repeats": latency.repeats}
            if len(networks) < len(candidates) and len(table.entries) >= (len(networks) + 1) * every:
                time_next_network()
                last_save = time.monotonic()
            elif time.monotonic() - last_save >= SAVE_EVERY_S:
                table.save()
                last_save = time.monotonic()
        if progress is not None:
            progress("pieces", len(table.entries), len(pieces))
        while len(networks) < len(candidates):  # a resumed build whose pieces were all timed before
            if progress is not None:
                progress("calibration networks", len(networks), len(candidates))
            time_next_network()
        _fit(table, candidates)
    finally:
        table.save()
    return table


def calibration_candidates(space: Any, config: BuildConfig, resolution: int) -> list[ArchSpec]:
    """The whole random candidates a build times (seeded, distinct from any validation seed)."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    return [space.decode(space.sample(rng)).with_(resolution=resolution, in_chans=config.in_chans,
                                                  num_classes=config.num_classes, norm=config.norm)
            for _ in range(config.calibration_networks)]


def _fit(table: LatencyTable, candidates: list[ArchSpec]) -> None:
    """Each calibration network's sum of entries (known only once every piece is timed), then the fit."""
    networks = table.calibration["networks"]
    for network, spec in zip(networks, candidates):
        network["sum_ms"], _ = table.sum_ms(spec)
        network["boundary_millions"] = boundary_millions(spec)
    fitted = fit_calibration([n["sum_ms"] for n in networks], [n["boundary_millions"] for n in networks],
                             [n["measured_ms"] for n in networks])
    table.calibration.update({**asdict(fitted),
                              "fit": "measured = scale * sum_ms + ms_per_boundary_million * boundary_millions + "
                                     f"offset_ms, robust least squares of the relative error over {len(networks)} "
                                     "whole random candidates timed spread over the build"})


__all__ = ["BuildConfig", "CALIBRATION_NETWORKS", "Calibration", "boundary_millions", "LatencyTable", "NETWORK_POLICY", "PIECE_POLICY", "TABLE_FORMAT",
           "build_latency_table", "calibration_candidates", "fingerprint", "fit_calibration", "load_latency_table", "measure_module",
           "measure_network", "read_table", "space_pieces"]
