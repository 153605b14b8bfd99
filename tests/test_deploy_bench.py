"""``nas bench`` and the timing helpers: every runtime x batch x thread row, consistent figures, JSON."""

from __future__ import annotations

import json
import platform

import pytest

from nas.cli import main
from nas.deploy.measure import TimingPolicy, percentile, time_calls

SMALL = "r1_k3_s11_e1_i8_o8_se0.25 r1_k3_s22_e3_i8_o16"


def test_percentile_matches_numpy():
    import numpy as np

    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    for q in (0, 10, 50, 90, 100):
        assert percentile(samples, q) == pytest.approx(np.percentile(samples, q))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the allocator's state is set through glibc's mallopt")
def test_timed_calls_of_a_warmed_network_take_no_page_faults():
    """With glibc's adaptive defaults a network's multi-megabyte activations can come from fresh
    pages on every call (the same efficientnet candidate took 16 or 32 ms depending on what ran
    before); in the state every measurement uses, a warmed network faults no page at all."""
    import resource

    import torch

    from nas.timing import steady_allocator

    assert steady_allocator().startswith("glibc malloc")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 96, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(96, 16, 1))
    x = torch.randn(1, 3, 112, 112)  # activations of 4.8 MB, above glibc's initial 128 KiB mmap threshold

    def call() -> None:
        with torch.inference_mode():
            model(x)

    time_calls(call, TimingPolicy(warmup=3, min_repeats=1, min_seconds=0, max_repeats=1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    time_calls(call, TimingPolicy(warmup=0, min_repeats=20, min_seconds=0, max_repeats=20))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Fresh pages would cost one activation's pages per call, 20 x 1,176 at least. The count is the
    # whole process's: other threads of a test worker fault now and then (118 once in CI), so the
    # bound is one activation's pages over all 20 calls, still 20 times below what a broken state takes.
    one_activation_pages = 96 * 112 * 112 * 4 // resource.getpagesize()
    assert faults < one_activation_pages


def test_time_calls_follows_the_policy():
    calls = []
    latency = time_calls(lambda: calls.append(1), TimingPolicy(warmup=2, min_repeats=5, min_seconds=0, max_repeats=5))
    assert len(calls) == 7 and latency.repeats == 5
    assert latency.min_ms <= latency.p50_ms <= latency.p90_ms


def test_bench_every_runtime_with_int8_writes_json(tmp_path, capsys, one_thread):
    out = tmp_path / "bench.json"
    argv = ["bench", SMALL, "--resolution", "16", "--int8", "--batch", "1,2", "--threads", "1", "--warmup", "1",
            "--repeats", "3", "--min-seconds", "0", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "torchscript" in text and "onnxruntime int8" in text
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [
        (runtime, batch) for batch in (1, 2) for runtime in ("torch", "torchscript", "onnxruntime", "onnxruntime int8")]
    for row in rows:
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"]
        assert row["throughput"] == pytest.approx(row["batch"] / (row["p50_ms"] / 1000))
        assert row["threads"] == 1 and row["repeats"] >= 3
    assert [r["speedup"] for r in rows if r["runtime"] == "torch"] == [1.0, 1.0]
    assert data["machine"]["cpu"] and data["resolution"] == 16 and data["trained"] is False


@pytest.mark.parametrize("args, message", [
    (["--runtime", "tflite"], "error: --runtime: unknown runtime 'tflite'; valid: onnxruntime, torch, torchscript"),
    (["--batch", "1,x"], "error: --batch '1,x': expected a comma-separated list of int values"),
    (["--threads", "0"], "error: --threads values must be integers between 1 and 1024, got 0"),
    (["--repeats", "0"], "error: --repeats must be an integer >= 1"),
    (["--repeats", "1000000000"], "error: --repeats must be at most 1,000,000 calls"),
])
def test_bench_bad_flags_are_one_line_errors(capsys, args, message):
    assert main(["bench", SMALL, "--resolution", "16", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_bench_unwritable_json_fails_before_measuring(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", SMALL, "--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --json {blocker / 'out.json'}: cannot write there") and "benchmarking" not in err
