"""CLI start-up latency: `orchestrator list` and `orchestrator --help` beside `python -c pass`, same run.

    python -m bench.cli [--runs 20]

Loads the demo catalog into a throw-away SQLite database, serves it with the real API (`orchestrator
api` on a free port), then runs each command `--runs` times as a fresh process, the way a person at a
shell does. Prints p50/p95 wall time of each command and of the bare interpreter, the difference
(what the CLI itself costs), and the p50 CPU time (user + system), which a busy machine inflates less
than wall time. The target is `orchestrator list` under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.cli", *args]


def _prepare(env: dict[str, str]) -> str:
    """Migrate the database and load the demo catalog; return the demo admin token."""
    subprocess.run(_cli("migrate"), env=env, cwd=REPO_ROOT, check=True, capture_output=True)
    out = subprocess.run(_cli("demo"), env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout
    found = re.search(r"ORCHESTRATOR_TOKEN=(\S+)", out)
    if not found:
        raise SystemExit(f"`orchestrator demo` printed no token:\n{out}")
    return found.group(1)


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """The real API on `port`, once /healthz answers."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _cli("api", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited at start:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not answer /healthz within 60 s")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(args: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU time of one run of `args`, in milliseconds; a failing command stops the benchmark."""
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
    return elapsed, (_children_cpu() - cpu) * 1000


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    opts = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "BROKER_URL": "memory://",
            "LOG_LEVEL": "WARNING",
            "ORCHESTRATOR_URL": f"http://127.0.0.1:{port}",
        }
        env["ORCHESTRATOR_TOKEN"] = _prepare(env)
        api = _serve(env, port, Path(tmp) / "api.log")
        try:
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "orchestrator --help": _cli("--help"),
                "orchestrator list": _cli("list"),
            }
            for args in commands.values():  # warm the OS file cache and the API once
                _time(args, env)
            samples: dict[str, list[float]] = {name: [] for name in commands}
            cpu: dict[str, list[float]] = {name: [] for name in commands}
            # Interleaved, so a burst of load from elsewhere on the machine hits every command alike.
            for _ in range(opts.runs):
                for name, args in commands.items():
                    wall, used = _time(args, env)
                    samples[name].append(wall)
                    cpu[name].append(used)
        finally:
            api.terminate()
            api.wait(timeout=20)

    base50, base95 = _p(samples["python -c pass"], 50), _p(samples["python -c pass"], 95)
    print(f"{opts.runs} runs each, wall time in ms (a fresh process per run)")
    print(f"{'command':<22} {'p50':>8} {'p95':>8} {'p50 - python':>14} {'p95 - python':>14} {'cpu p50':>9}")
    for name, values in samples.items():
        p50, p95 = _p(values, 50), _p(values, 95)
        print(f"{name:<22} {p50:8.0f} {p95:8.0f} {p50 - base50:14.0f} {p95 - base95:14.0f} {_p(cpu[name], 50):9.0f}")
    p50 = _p(samples["orchestrator list"], 50)
    verdict = "meets" if p50 < TARGET_MS else "misses"
    print(f"orchestrator list p50 {p50:.0f} ms {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
