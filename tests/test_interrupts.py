"""SIGTERM stops like Ctrl-C, a second signal stops at once (nas/interrupts.py), in processes of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nas.interrupts import Terminated, exit_code, keep_signal_handlers, message

REPO = Path(__file__).resolve().parents[1]

# Raises the signal it is given inside stop_signals(), says what it caught, then (with "twice") raises a
# second one while "cleaning up": that one must end the process on the spot.
SCRIPT = """
import os, signal, sys, time
from nas.interrupts import stop_signals
sig, twice = getattr(signal, sys.argv[1]), sys.argv[2] == "twice"
with stop_signals():
    try:
        os.kill(os.getpid(), sig)
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 60)
        print("not raised", flush=True)
    except KeyboardInterrupt as exc:
        print(type(exc).__name__, flush=True)
        if twice:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()
            print("cleanup went on after the second signal", flush=True)
print("restored", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
"""


def _default_sigint() -> None:
    """A child with Ctrl-C's default handler: a test run started in the background (`cmd &` in a script)
    ignores SIGINT, every child inherits that, and stop_signals() rightly leaves an ignored SIGINT alone."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("preexec_fn", _default_sigint)
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs)


def test_sigterm_raises_like_ctrl_c_and_the_handlers_are_put_back():
    term = run("SIGTERM", "once")
    assert term.returncode == 0 and term.stdout.split("\n")[:2] == ["Terminated", "restored True"], term
    assert run("SIGINT", "once").stdout.startswith("KeyboardInterrupt\n")
    assert issubclass(Terminated, KeyboardInterrupt)  # every Ctrl-C clean-up runs for SIGTERM too
    assert (exit_code(Terminated()), message(Terminated())) == (143, "error: terminated")
    assert (exit_code(KeyboardInterrupt()), message(KeyboardInterrupt())) == (130, "error: interrupted")


def test_a_second_signal_exits_at_once():
    proc = run("SIGINT", "twice")
    assert proc.returncode == 143 and proc.stdout == "KeyboardInterrupt\n", proc
    assert proc.stderr == "error: terminated\n"


def test_an_ignored_sigint_stays_ignored():
    """A background job of a shell ignores SIGINT; stop_signals must not turn it back on."""
    proc = run("SIGINT", "once", "0.3", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.returncode == 0 and proc.stdout.startswith("not raised\n"), proc


def test_handlers_replaced_by_a_library_are_put_back():
    mine = signal.getsignal(signal.SIGTERM)
    with keep_signal_handlers():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(15))  # what ray.init does
    assert signal.getsignal(signal.SIGTERM) is mine
