"""Ctrl-C in a terminal ends `make run` (make → `orchestrator up`'s supervisor) with exit code 0."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import sys
import time
from pathlib import Path

import pytest

# A stand-in for `orchestrator up`: the real supervisor with one sleeping child.
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
UP = (
    "import sys; from orchestrator.cli.supervisor import Child, Supervisor; "
    f"code, _ = Supervisor([Child('sleeper', [sys.executable, '-c', {SLEEPER!r}])], stop_timeout=5).run(); "
    "print('supervisor exit', code, flush=True); sys.exit(code)"
)


def _read_until(fd: int, needle: bytes | re.Pattern[bytes], timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout

    def found() -> bool:
        return needle in seen if isinstance(needle, bytes) else needle.search(seen) is not None

    while not found() and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_ctrl_c_in_a_terminal_exits_make_run_with_0(tmp_path: Path) -> None:
    """The terminal's Ctrl-C reaches the supervisor alone: it stops its children and make exits 0, not 130."""
    script = tmp_path / "up.py"
    script.write_text(UP)
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"run:\n\t{sys.executable} {script}\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a new session whose controlling terminal is the pty, like a shell's job
        os.execvp("make", ["make", "-s", "-f", str(makefile), "run"])
    try:
        started = _read_until(fd, b"ready", 20)
        assert b"ready" in started, started
        time.sleep(0.5)
        os.write(fd, b"\x03")  # Ctrl-C, as the terminal sends it to its foreground process group
        # Up to the end of that line: print() may reach the terminal in more than one read.
        output = _read_until(fd, re.compile(rb"supervisor exit [^\r\n]*\r?\n"), 30)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"supervisor exit 0" in output, output
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"make ended with {status:#x}"
