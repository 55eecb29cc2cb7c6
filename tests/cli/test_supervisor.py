"""The process supervisor behind `orchestrator up`, with small stand-in children."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.cli.supervisor import Child, Supervisor

SLEEPER = "import time; print('hello', flush=True); time.sleep(120)"
# Ignores SIGTERM and leaves a grandchild in its process group: only the group SIGKILL ends both.
STUBBORN = (
    "import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "open(sys.argv[1], 'w').write(str(p.pid)); print('stubborn', flush=True); time.sleep(120)"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _signal_self_after(seconds: float, sig: signal.Signals) -> Callable[[], None]:
    start = time.monotonic()
    sent = False

    def tick() -> None:
        nonlocal sent
        if not sent and time.monotonic() - start > seconds:
            sent = True
            os.kill(os.getpid(), sig)

    return tick


def test_sigterm_stops_everyone_and_escalates_to_sigkill(tmp_path: Path) -> None:
    """On SIGTERM every child is asked to stop; one that ignores it is killed with its whole group."""
    grandchild_file = tmp_path / "grandchild.pid"
    out = io.BytesIO()
    children = [
        Child("calm", [sys.executable, "-c", SLEEPER]),
        Child("stubborn", [sys.executable, "-c", STUBBORN, str(grandchild_file)]),
    ]
    supervisor = Supervisor(children, stop_timeout=1.0, out=out)
    code, failure = supervisor.run(on_tick=_signal_self_after(1.5, signal.SIGTERM))
    assert (code, failure) == (0, None)
    assert all(c.exit_code() is not None for c in children)
    assert children[0].exit_code() == -signal.SIGTERM and children[1].exit_code() == -signal.SIGKILL
    grandchild = int(grandchild_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild outlived the group kill"
    text = out.getvalue().decode()
    assert "calm     | hello" in text and "stubborn | stubborn" in text
    assert "stubborn did not stop within 1s; killing it" in text and text.rstrip().endswith("all stopped")


def test_a_child_that_dies_stops_the_others() -> None:
    """A child ending on its own makes run() stop the rest and report it by name."""
    out = io.BytesIO()
    children = [
        Child("calm", [sys.executable, "-c", SLEEPER]),
        Child("crashy", [sys.executable, "-c", "import sys; sys.exit(3)"]),
    ]
    code, failure = Supervisor(children, stop_timeout=5, out=out).run()
    assert code == 1
    assert failure == "crashy exited with code 3 unexpectedly"
    assert children[0].exit_code() == -signal.SIGTERM
    assert "crashy exited with code 3 unexpectedly; stopping the others" in out.getvalue().decode()


def test_signal_handlers_are_restored() -> None:
    """After run() returns, SIGINT means KeyboardInterrupt again for the calling process."""
    before = signal.getsignal(signal.SIGINT)
    Supervisor([Child("quick", [sys.executable, "-c", "pass"])], out=io.BytesIO()).run()
    assert signal.getsignal(signal.SIGINT) is before
