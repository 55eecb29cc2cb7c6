"""LLM connector overhead: the same 4 KB prompts (with personal data) sent through the connector and
directly to the same local provider stand-in, in the same run.

    python -m bench.llm [--seconds 5] [--rate 100] [--connections 8] [--rounds 5] [--workers 1]
                        [--redis redis://127.0.0.1:6379/15] [--profile api.prof]

The stand-in (`bench.llm_upstream`) and the API (uvicorn, one worker, Redis for the limit buckets
and the revocation list, a throw-away SQLite catalog) each run in their own process. Two phases,
alternating the paths round by round: latency under an open-loop load of `--rate` requests/s
(p50/p99 of each path and the difference: the added latency), then closed-loop throughput with
`--connections` concurrent clients (requests/s of each path and the ratio). Targets: added p50 < 3 ms,
added p99 < 15 ms, connector throughput ≥ 0.5 × direct. `--profile` runs the API under cProfile (CPU
time, connector requests only) and prints where its time goes per request (the profiler slows it down:
the figures of such a run are not the connector's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.harness import free_port

TARGET_ADDED_P50_MS = 3.0
TARGET_ADDED_P99_MS = 15.0
TARGET_THROUGHPUT_RATIO = 0.5


def _prompt(i: int) -> str:
    filler = "The quarterly report covers revenue, churn and hiring plans for every region. "
    text = (
        f"Request {i}. Contact jane.roe{i}@acme-corp.io or +1 415 555 {1000 + i % 9000:04d}; card 4539 1488 0343 6467. "
    )
    while len(text) < 4096:
        text += filler
    return text[:4096]


def _prepare(env: dict[str, str], tmp: Path) -> str:
    """Migrate, write a policy without practical limits, create a production app; return its token."""
    from orchestrator.catalog.policy import DEFAULT_POLICY_PATH

    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    # A budget that never runs out but is still counted (a third bucket): a refused call is cheap and
    # would flatter the connector's throughput.
    raw["data_classes"]["internal"]["llm"].update(
        requests_per_minute=10_000_000, tokens_per_day=10**12, daily_budget_usd=10**9
    )
    (tmp / "policy.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    env["POLICY_FILE"] = str(tmp / "policy.yaml")
    os.environ.update(env)
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import DataClass, MicroApp
    from orchestrator.clock import utcnow
    from orchestrator.credentials.service import issue_credential
    from orchestrator.credentials.tokens.builtin import BUILTIN
    from orchestrator.db import migrate, session_scope

    migrate()
    app_id = "bench-llm-" + secrets.token_hex(3)
    with session_scope() as session:
        app = MicroApp(
            id=app_id,
            name="bench",
            owner_email="maker@example.com",
            stage=Stage.production,
            data_class=DataClass.internal,
            requested_scopes=["llm:invoke"],
            approved_at=utcnow(),
        )
        session.add(app)
        session.flush()
        _, issued = issue_credential(
            session, app, provider_name=BUILTIN, subject=f"service:{app_id}", scopes=["llm:invoke"],
            ttl=timedelta(hours=1),
        )  # fmt: skip
    assert issued.secret is not None
    return issued.secret


def _start(args: list[str], env: dict[str, str], log: Path, probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(probe, timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{args} did not start:\n{log.read_text()[-2000:]}")


async def _open_loop(url: str, headers: dict[str, str], rate: float, seconds: float) -> dict[str, float]:
    """Send `rate` requests/s for `seconds` whatever the answers' pace; latencies of the answers."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(i: int) -> None:
            nonlocal errors
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": _prompt(i)}]}
            start = time.perf_counter()
            try:
                response = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append((time.perf_counter() - start) * 1000)
            errors += response.status_code != 200

        tasks = []
        began = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50": cuts[49], "p99": cuts[98], "errors": float(errors)}


async def _closed_loop(url: str, headers: dict[str, str], connections: int, seconds: float) -> dict[str, float]:
    """`connections` clients sending back to back for `seconds`; requests/s."""
    done = errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def loop() -> None:
            nonlocal done, errors
            while time.monotonic() < stop:
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": _prompt(done)}]}
                try:
                    response = await client.post(url, json=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                done += 1
                errors += response.status_code != 200

        began = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.monotonic() - began
    return {"rps": done / elapsed, "errors": float(errors), "done": float(done)}


def main() -> None:
    """Start the stand-in and the API, load both paths in alternation, print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=100, help="requests/s of the latency phase")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients of the throughput phase")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the API (limits stay shared)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="uvicorn's event loop for the API (auto: uvloop when installed)")  # fmt: skip
    parser.add_argument("--profile", metavar="PATH", help="profile the API's connector requests into PATH")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    openai_key = "sk-" + secrets.token_urlsafe(24)
    upstream_port, api_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = {"DATABASE_URL": f"sqlite:///{tmp}/bench.db", "REDIS_URL": args.redis, "BROKER_URL": "memory://",
           "CREDENTIAL_KEY": secrets.token_urlsafe(32), "TOKEN_ISSUER": "http://bench", "LOG_LEVEL": "WARNING",
           "LLM_OPENAI_API_KEY": openai_key, "LLM_ANTHROPIC_API_KEY": "sk-ant-" + secrets.token_urlsafe(24),
           "LLM_OPENAI_BASE_URL": upstream, "LLM_ANTHROPIC_BASE_URL": upstream, "DATA_DIR": str(tmp)}  # fmt: skip
    token = _prepare(env, tmp)
    procs = []
    try:
        procs.append(_start([sys.executable, "-m", "bench.llm_upstream", str(upstream_port)], env,
                            tmp / "upstream.log", upstream + "/v1/models"))  # fmt: skip
        factory = "bench.llm_profiled:create_app" if args.profile else "orchestrator.http.app:create_app"
        if args.profile:
            env["LLM_BENCH_PROFILE"] = str(Path(args.profile).resolve())
        api_args = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host",
                    "127.0.0.1", "--port", str(api_port), "--log-level", "warning", "--no-access-log",
                    "--workers", str(args.workers), "--loop", args.loop]  # fmt: skip
        procs.append(_start(api_args, env, tmp / "api.log", f"http://127.0.0.1:{api_port}/healthz"))
        paths = {
            "direct": (upstream + "/v1/chat/completions", {"authorization": f"Bearer {openai_key}"}),
            "connector": (f"http://127.0.0.1:{api_port}/llm/openai/v1/chat/completions",
                          {"authorization": f"Bearer {token}"}),
        }  # fmt: skip
        first = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": _prompt(1)}]}
        check = httpx.post(paths["connector"][0], headers=paths["connector"][1], timeout=10, json=first)
        answer = check.json()["choices"][0]["message"]["content"] if check.status_code == 200 else check.text
        if "jane.roe1@acme-corp.io" not in answer:
            raise SystemExit(f"connector answer not restored: {check.status_code} {answer[:300]}")
        latency: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        throughput: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        for index in range(args.rounds + 1):  # round 0 warms both paths up
            seconds = 1.0 if index == 0 else args.seconds
            for name, (url, headers) in paths.items():
                result = asyncio.run(_open_loop(url, headers, args.rate, seconds))
                if index:
                    latency[name].append(result)
            for name, (url, headers) in paths.items():
                before = {p.pid: _cpu_seconds(p.pid) for p in procs}
                result = asyncio.run(_closed_loop(url, headers, args.connections, seconds))
                # CPU per call of the API and of the stand-in: unlike rates, barely moved by other load.
                api, stand_in = (
                    (_cpu_seconds(p.pid) - before[p.pid]) * 1000 / max(result["done"], 1) for p in (procs[1], procs[0])
                )
                result.update(api_cpu_ms=api, upstream_cpu_ms=stand_in)
                if index:
                    throughput[name].append(result)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    _report(latency, throughput, args)
    if args.profile:
        _print_profile(Path(args.profile))


def _print_profile(path: Path, top: int = 30) -> None:
    """The functions the API spent most CPU time in, per connector request."""
    import pstats

    requests = int(path.with_suffix(path.suffix + ".requests").read_text())
    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows)
    print(f"API CPU profile: {requests} connector requests, {total * 1000 / requests:.2f} ms/request under cProfile")
    for (file, line, name), (_, calls, own, _cumulative, _) in rows[:top]:
        where = file.split("site-packages/")[-1].replace(os.getcwd() + "/", "")
        print(f"  {own * 1000 / requests:7.3f} ms {calls / requests:6.1f}×  {where}:{line} {name}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children's still running (uvicorn workers); 0 off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) for child in children)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _report(
    latency: dict[str, list[dict[str, float]]], throughput: dict[str, list[dict[str, float]]], args: Any
) -> None:
    direct_p50, conn_p50 = _median(latency["direct"], "p50"), _median(latency["connector"], "p50")
    direct_p99, conn_p99 = _median(latency["direct"], "p99"), _median(latency["connector"], "p99")
    direct_rps, conn_rps = _median(throughput["direct"], "rps"), _median(throughput["connector"], "rps")
    added_p50, added_p99 = conn_p50 - direct_p50, conn_p99 - direct_p99
    ratio = conn_rps / direct_rps
    errors = sum(r["errors"] for runs in (*latency.values(), *throughput.values()) for r in runs)
    print(
        f"latency at {args.rate:g} req/s (4 KB prompts, 3 personal values each), median of {args.rounds} rounds; "
        f"API: {args.workers} uvicorn worker(s), loop {args.loop}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  direct     p50 {direct_p50:7.2f} ms   p99 {direct_p99:7.2f} ms")
    print(f"  connector  p50 {conn_p50:7.2f} ms   p99 {conn_p99:7.2f} ms")
    print(f"  added      p50 {added_p50:7.2f} ms   p99 {added_p99:7.2f} ms   (p50 ratio {conn_p50 / direct_p50:.2f})")
    print(f"throughput with {args.connections} concurrent clients:")
    print(f"  direct     {direct_rps:8.1f} req/s")
    print(f"  connector  {conn_rps:8.1f} req/s   ratio {ratio:.2f}")
    api_cpu = _median(throughput["connector"], "api_cpu_ms")
    print(
        f"CPU per call: connector's API {api_cpu:.2f} ms (+ stand-in "
        f"{_median(throughput['connector'], 'upstream_cpu_ms'):.2f} ms); direct: stand-in "
        f"{_median(throughput['direct'], 'upstream_cpu_ms'):.2f} ms"
    )
    for name in latency:
        failed = sum(r["errors"] for r in (*latency[name], *throughput[name]))
        print(f"errors ({name}): {failed:g}")
    met = added_p50 < TARGET_ADDED_P50_MS and added_p99 < TARGET_ADDED_P99_MS and ratio >= TARGET_THROUGHPUT_RATIO
    met = met and not errors  # refused or failed calls are cheaper than real ones: the figures don't count
    print(
        json.dumps(
            {
                "added_p50_ms": round(added_p50, 3),
                "added_p99_ms": round(added_p99, 3),
                "throughput_ratio": round(ratio, 3),
                "api_cpu_ms_per_call": round(api_cpu, 3),
                "targets_met": met,
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
