"""How long a contributor waits for the test suite: the README's test command on a fresh clone.

Clones the repository (its committed HEAD) into a temporary folder, runs ``bash scripts/test.sh``
there (creating ``.venv`` and installing everything: the install is part of the wait), then the fast
lane ``bash scripts/test.sh -m "not slow"`` in the same clone, and prints:

* the wall time of the whole command (install included) and pytest's own time;
* the 10 slowest tests (pytest's ``--durations``);
* the fast lane's pytest time and how many tests it ran out of all collected.

The shared datasets are found through ``SCALENAS_SHARED_DATA`` (this checkout's ``../shared/data``
unless it is set), so the data tests run as they do next to the shared folder. Run it alone: other
processes on the two cores change the figure a lot. It asserts nothing; BENCHMARKS.md records it.

    python benchmarks/test_suite.py [--repeat 1] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.data.shared import ENV_VAR, shared_data_root  # noqa: E402

SUMMARY = re.compile(r"(\d+) passed(?:, (\d+) skipped)?(?:, (\d+) deselected)?.* in ([\d.]+)s")
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", re.M)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, int]:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout + proc.stderr, proc.returncode


def summary(output: str) -> dict:
    found = SUMMARY.findall(output)
    if not found:
        return {}
    passed, skipped, deselected, seconds = found[-1]
    return {"passed": int(passed), "skipped": int(skipped or 0), "deselected": int(deselected or 0),
            "pytest_s": float(seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="fresh clones to time, one after another")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the clones")
    args = parser.parse_args()
    env = {**os.environ, ENV_VAR: str(shared_data_root()), "CI": "true"}
    env.pop("VIRTUAL_ENV", None)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    runs = []
    for i in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="suite-clone-"))
        clone = root / "scalenas"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        wall, output, code = run(["bash", "scripts/test.sh"], clone, env)
        full = {**summary(output), "wall_s": round(wall, 1), "exit": code,
                "slowest": [f"{s}s {when} {name}" for s, when, name in DURATION.findall(output)[:10]]}
        fast_wall, fast_output, fast_code = run(["bash", "scripts/test.sh", "-m", "not slow"], clone, env)
        fast = {**summary(fast_output), "wall_s": round(fast_wall, 1), "exit": fast_code}
        runs.append({"full": full, "fast": fast})
        print(f"run {i + 1}: full suite exit {code}, {full.get('passed')} passed, {full.get('skipped')} skipped, "
              f"{wall:.0f} s wall with the install ({full.get('pytest_s')} s of pytest)")
        for line in full["slowest"]:
            print(f"    {line}")
        # with xdist the summary line does not count the deselected tests: the whole suite's count is the total
        collected = max(full.get("passed", 0) + full.get("skipped", 0),
                        fast.get("passed", 0) + fast.get("skipped", 0) + fast.get("deselected", 0))
        share = (fast.get("passed", 0) + fast.get("skipped", 0)) / collected if collected else float("nan")
        print(f"  fast lane exit {fast_code}: {fast.get('passed')} passed of {collected} collected ({share:.0%}), "
              f"{fast.get('pytest_s')} s of pytest, {fast_wall:.0f} s wall")
        for failed in re.findall(r"^(?:FAILED|ERROR) .*$", output + fast_output, re.M):
            print(f"  {failed}")  # pytest's own summary lines: the install's stderr follows them in the output
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report = {"date": dt.date.today().isoformat(), "commit": head.strip(), "machine": platform.platform(),
              "cpus": os.cpu_count(), "runs": runs}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if all(r["full"]["exit"] == 0 and r["fast"]["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
