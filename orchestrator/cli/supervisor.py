"""A small foreground process supervisor for `orchestrator up`: start children, forward, stop.

Each child runs in its own session (process group), so a terminal Ctrl-C reaches only the
supervisor, which then stops every child the same way: SIGTERM to the child, a grace period, then
SIGKILL to the child's whole group (Celery's pool processes included). On Linux each child also
gets PR_SET_PDEATHSIG, so a SIGKILLed supervisor does not leave orphans behind.

When it runs in a terminal's foreground under another program (`make run`), the supervisor also
takes the terminal's foreground over for its own process group while it runs: Ctrl-C then reaches
it alone, it stops everything and exits 0, and `make` sees that 0 instead of dying of the SIGINT
itself (which would end `make run` with 130).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import BinaryIO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when the parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # best effort: without it an orphan is still stopped by the group kill
        pass


def _take_terminal() -> Callable[[], None]:
    """Make this process's own group the controlling terminal's foreground; returns the undo.

    A no-op (with a no-op undo) without a controlling terminal, or when not in its foreground.
    """
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return lambda: None
    try:
        original = os.tcgetpgrp(tty)
        if original != os.getpgrp():  # a background job: leave the terminal alone
            os.close(tty)
            return lambda: None
        with contextlib.suppress(PermissionError):  # a session leader is its group's leader already
            os.setpgid(0, 0)
        _as_background(lambda: os.tcsetpgrp(tty, os.getpgrp()))
    except OSError:
        os.close(tty)
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError):
            _as_background(lambda: os.tcsetpgrp(tty, original))
        os.close(tty)

    return restore


def _as_background(call: Callable[[], None]) -> None:
    """Run a terminal call that a background process group may make only with SIGTTOU ignored."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        call()
    finally:
        signal.signal(signal.SIGTTOU, previous)


@dataclass
class Child:
    """One supervised process: its name (the output prefix), command line and runtime state."""

    name: str
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return self.popen.pid if self.popen else None

    def exit_code(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self.popen.poll() if self.popen else None


@dataclass
class Supervisor:
    """Run `children` in the foreground until a signal arrives or one of them dies."""

    children: list[Child]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stop_timeout: float = 20.0
    out: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    poll_interval: float = 0.2
    take_terminal: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _force: threading.Event = field(default_factory=threading.Event)
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _signal_name: str | None = None

    # ------------------------------------------------------------------ output

    def say(self, message: str) -> None:
        """Print one line of the supervisor's own, under the same lock as the children's output."""
        self._write(f"{'up':<{self._width()}} | {message}\n".encode())

    def _width(self) -> int:
        return max(len(c.name) for c in self.children) if self.children else 2

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self.out.write(data)
            self.out.flush()

    def _forward(self, child: Child) -> None:
        assert child.popen is not None and child.popen.stdout is not None
        prefix = f"{child.name:<{self._width()}} | ".encode()
        for line in iter(child.popen.stdout.readline, b""):
            self._write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
        child.popen.stdout.close()

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop.is_set():
            self._force.set()  # a second Ctrl-C: do not wait for a clean shutdown
        self._signal_name = signal.Signals(signum).name
        self._stop.set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start every child; readers are started after all forks (preexec_fn and threads do not mix)."""
        env = {**self.env, "PYTHONUNBUFFERED": "1"}
        for child in self.children:
            child.popen = subprocess.Popen(
                child.args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe: no other thread runs until every child is forked
            )
        for child in self.children:
            child.reader = threading.Thread(target=self._forward, args=(child,), name=f"out-{child.name}", daemon=True)
            child.reader.start()

    def run(self, *, on_tick: Callable[[], None] | None = None) -> tuple[int, str | None]:
        """Start, then wait; returns (exit code, error message or None) once everything is stopped.

        Exit code 0 after SIGINT/SIGTERM; 1 when a child ended on its own (the message names it).
        `on_tick` is called on every poll while all children run (readiness probes, banners).
        """
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        release_terminal = _take_terminal() if self.take_terminal else (lambda: None)
        failure: str | None = None
        try:
            try:
                self.start()
            except OSError as exc:  # e.g. the interpreter vanished: stop whatever did start
                failure = f"cannot start the processes: {exc}"
                self._stop.set()
            while not self._stop.is_set():
                dead = next((c for c in self.children if c.exit_code() is not None), None)
                if dead is not None:
                    failure = f"{dead.name} {_how_it_ended(dead.exit_code())} unexpectedly"
                    break
                if on_tick is not None:
                    on_tick()
                self._stop.wait(self.poll_interval)
            if failure is None:
                self.say(f"{self._signal_name or 'stop requested'}: stopping {', '.join(self._names())}")
            else:
                self.say(f"{failure}; stopping the others")
            self.stop()
        finally:
            release_terminal()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return (1 if failure else 0), failure

    def _names(self) -> list[str]:
        return [c.name for c in self.children if c.exit_code() is None]

    def stop(self) -> None:
        """SIGTERM every child, wait up to `stop_timeout`, then SIGKILL each child's group.

        SIGTERM goes to the child alone, so Celery runs its warm shutdown (finish the running task,
        then stop its pool) instead of its pool processes being killed under it.
        """
        for child in self.children:
            if child.popen is not None and child.exit_code() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and not self._force.is_set():
            if all(c.exit_code() is not None for c in self.children):
                break
            time.sleep(0.05)
        for child in self.children:
            if child.exit_code() is None:
                self.say(f"{child.name} did not stop within {self.stop_timeout:.0f}s; killing it")
            # Also sweeps grandchildren (e.g. pool processes) whose parent already exited.
            self._signal_group(child, signal.SIGKILL)
        for child in self.children:
            if child.popen is not None:
                child.popen.wait()
            if child.reader is not None:
                child.reader.join(timeout=5)
        self.say("all stopped")

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        if child.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The child is its group's leader (start_new_session), so its pid is the group id.
            os.killpg(child.popen.pid, sig)


def _how_it_ended(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def python_module_command(module: str, *args: str) -> list[str]:
    """`python -m module args…` with this interpreter, so children use the same environment."""
    return [sys.executable, "-m", module, *args]
