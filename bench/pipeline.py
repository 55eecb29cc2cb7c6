"""The event pipeline: webhook ingest latency and end-to-end throughput, next to bare Celery.

    python -m bench.pipeline [--events 5000] [--rate 100] [--paced-seconds 10] [--concurrency 2]
                             [--senders 8] [--redis redis://127.0.0.1:6379/13] [--database-url …]
                             [--embedded | --broker sqla+sqlite:///… | redis://… | amqp://…] [--pipeline-only]
                             [--profile DIR]

Starts the real API (uvicorn) and a real Celery worker (prefork, --concurrency processes; the relay is
a scheduler job, which this bench does not need: events are published after their commit) on a Redis
at 127.0.0.1, catalogues --apps apps, then:

1. paced: signed GitHub `push` webhooks at --rate per second for --paced-seconds → ingest p50/p99
   at that rate (target p99 < 50 ms at 100/s), after two seconds at that rate to warm the API up
   (its connection pool, prepared statements), reported apart;
2. burst: --events webhooks as fast as --senders concurrent clients can send them → ingest p50/p99
   under saturation, and end-to-end events/s from the first request to the last event handled;
3. drain: --events more webhooks ingested while the worker is stopped, then a fresh worker is timed
   alone on them → the worker's events/s;
4. baseline, same run, same broker, same worker: --events bare Celery tasks that each do one Redis
   write (INCR), published as fast as possible → tasks/s, measured before the pipeline phases and
   again after them (the mean is the baseline: a shared machine's speed drifts within a run); then
   the ratio pipeline / bare (target ≥ 0.75). Beside the rates, the CPU time the API and the worker
   processes used per event in the burst, and the worker's per bare task (the first measurement),
   read from /proc: less sensitive than the rates to what else the machine runs.

The broker is --redis unless --broker names another, or --embedded asks for the embedded default
(`make run`'s: a `sqla+sqlite` file in the temporary directory, woken by its doorbell); the bare task's
counter stays in --redis whatever the broker, so the baseline task is the same on every broker.
The push → "approval request posted" latency is `python -m bench.push_latency` (a whole `orchestrator up`).

Every handler registered for `app.updated` runs (the reviews feature queues a re-review per push);
--pipeline-only keeps just the pipeline's own, to separate its cost from the features'. The Redis
database given is flushed before and after (use one nothing else uses).

--profile DIR runs the API under cProfile from the burst's first delivery on (`bench.pipeline_profiled`:
the event loop, the group-commit writer and the publisher, each in its thread's CPU time; the burst and
drain deliveries are profiled, the drain's without the worker beside them) and prints where the API's
time goes per delivery. The profiler slows the API down: its rates and ratios are not the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from workers.app import app as celery_app

BARE_TASK = "bench.redis_write"
COUNTER_KEY = "bench:pipeline:bare"
# A recorded octokit push payload (see tests/data/SOURCES.md), re-addressed to each bench app.
GITHUB_PAYLOADS = Path(__file__).resolve().parents[1] / "tests" / "data" / "github"


@celery_app.task(name=BARE_TASK, queue="ingest")
def redis_write(key: str) -> None:
    """The baseline task: one Redis write."""
    _redis().incr(key)


_client: redis.Redis | None = None


def _keep_only_pipeline_handlers() -> None:
    """--pipeline-only, in the worker: app.updated runs the pipeline's own handler, not the features'."""
    from orchestrator import wiring
    from orchestrator.events.registry import HANDLERS

    wiring.install()
    registration = HANDLERS["app.updated"]
    registration.handlers = [h for h in registration.handlers if h.__module__ == "orchestrator.events.handlers"]


if os.environ.get("BENCH_PIPELINE_ONLY") == "1":
    _keep_only_pipeline_handlers()


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


# ----------------------------------------------------------------------------- set-up


def _seed(apps: int) -> list[str]:
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.manifest import parse_manifest
    from orchestrator.catalog.models import MicroApp
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import migrate, session_scope

    migrate()
    urls = []
    with session_scope() as session:
        for i in range(apps):
            app_id, url = f"bench-app-{i:03d}", f"https://github.com/bench/app-{i:03d}"
            urls.append(url)
            if session.get(MicroApp, app_id) is None:
                raw = {"id": app_id, "name": f"Bench {i}", "owner": "bench@example.com", "data_class": "internal"}
                app, _ = catalog.register_app(
                    session, parse_manifest({**raw, "repo": url}), actor="bench", policy=get_policy(), source="bench"
                )
                app.default_branch = "main"
    return urls


def _bodies(urls: list[str], count: int, secret: str, prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    """Signed push deliveries, round-robin over the apps (signing is not part of the measurement)."""
    from orchestrator.http.github import signature_for

    template = json.loads((GITHUB_PAYLOADS / "push.with-new-branch.payload.json").read_text())
    out = []
    for i in range(count):
        url = urls[i % len(urls)]
        body = dict(template, ref="refs/heads/main", after=uuid.uuid4().hex + "00000000")
        repo = {**template["repository"], "html_url": url, "full_name": url.split("github.com/")[1]}
        repo.update(default_branch="main", clone_url=url + ".git", git_url=None, ssh_url=None, svn_url=None)
        raw = json.dumps({**body, "repository": repo}).encode()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"{prefix}-{i}-{uuid.uuid4().hex[:8]}",
            "X-Hub-Signature-256": signature_for(secret, raw),
            "Content-Type": "application/json",
        }
        out.append((raw, headers))
    return out


# ----------------------------------------------------------------------------- phases


def _send(
    base: str, deliveries: list[tuple[bytes, dict[str, str]]], *, senders: int, rate: float | None
) -> list[float]:
    """POST every delivery; latencies in ms (paced: measured from the scheduled send time).

    A lean HTTP/1.1 client on asyncio (pre-encoded requests over keep-alive connections), so that
    the load generator, which shares the CPUs with what it measures, takes as little of them as it
    can: httpx costs about 1.5 ms of CPU a request here, this about a tenth of that.
    """
    return asyncio.run(_send_async(base, deliveries, senders=senders, rate=rate))


async def _send_async(
    base: str, deliveries: list[tuple[bytes, dict[str, str]]], *, senders: int, rate: float | None
) -> list[float]:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = [_encode(f"{host}:{port}", raw, headers) for raw, headers in deliveries]
    latencies: list[float] = [0.0] * len(requests)
    failures: list[str] = []
    cursor = iter(range(len(requests)))
    start = time.perf_counter() + 0.05

    async def run() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in cursor:
                due = start + i / rate if rate else time.perf_counter()
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(requests[i])
                status, body = await _read_response(reader)
                latencies[i] = (time.perf_counter() - due) * 1000
                if status != 202:
                    failures.append(f"{status} {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(run() for _ in range(senders)))
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed, e.g. {failures[0]}")
    return latencies


def _encode(host: str, raw: bytes, headers: dict[str, str]) -> bytes:
    lines = ["POST /webhooks/github HTTP/1.1", f"Host: {host}", f"Content-Length: {len(raw)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""


def _handled(prefix: str) -> int:
    from sqlalchemy import func
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event, EventStatus

    with session_scope(write=False) as session:
        query = select(func.count()).where(
            col(Event.dedup_key).startswith(f"github:{prefix}-"), Event.status == EventStatus.handled
        )
        return int(session.exec(query).one())


def _queued(prefix: str) -> int:
    """Events of the phase that left the outbox (published to the broker) or were already handled."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event, EventStatus

    with session_scope(write=False) as session:
        query = select(func.count()).where(
            col(Event.dedup_key).startswith(f"github:{prefix}-"),
            col(Event.status).in_([EventStatus.enqueued, EventStatus.handled]),
        )
        return int(session.exec(query).one())


def _wait(check: Any, target: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check() >= target:
            return time.perf_counter()
        time.sleep(0.05)
    raise SystemExit(f"timed out: {check()} of {target} done after {timeout:.0f}s")


def _bare(count: int) -> float:
    """Publish `count` one-write tasks as fast as possible; tasks/s until the last one ran."""
    _redis().delete(COUNTER_KEY)
    start = time.perf_counter()
    with celery_app.producer_or_acquire() as producer:
        for _ in range(count):
            celery_app.send_task(BARE_TASK, args=[COUNTER_KEY], queue="ingest", producer=producer)
    done = _wait(lambda: int(_redis().get(COUNTER_KEY) or 0), count, timeout=max(120, count / 20))
    return count / (done - start)


def _cpu_seconds(*procs: Any) -> float:
    """CPU time (user + system) used so far by the process groups of `procs` (a worker and its pool).

    Read from /proc: on a shared machine a phase's wall-clock rate moves with the other load, its
    CPU per event much less, so the bench prints both.
    """
    groups = {proc.popen.pid for proc in procs}
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended meanwhile
            continue
        if int(fields[2]) in groups:  # pgrp; then utime and stime are fields 11 and 12 after the name
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _start_profiled_api(env: dict[str, str], log_path: Path) -> tuple[Any, str]:
    """The API as `orchestrator api` serves it, under `bench.pipeline_profiled`'s factory."""
    from bench.harness import start_api

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "bench.pipeline_profiled:create_app", "--factory", "--host",
                "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip

    try:
        return start_api(env=env, log_path=log_path, argv=argv)
    except AssertionError as exc:  # a message for the person running the bench, not a traceback
        raise SystemExit(f"the profiled API: {exc}") from None


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# ----------------------------------------------------------------------------- main


def main() -> None:
    """Set everything up, run the three phases, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="webhooks in the burst, and bare tasks")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second of the paced phase")
    parser.add_argument("--paced-seconds", type=float, default=10.0, help="length of the paced phase (0: skip)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (both measurements)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent clients in the burst")
    parser.add_argument("--apps", type=int, default=50, help="catalogued apps the pushes are spread over")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument(
        "--broker",
        default=None,
        help="the broker, e.g. amqp://guest:guest@127.0.0.1:5672// (default: the --redis database); with RabbitMQ "
        "the --redis database stays REDIS_URL (leases) and the baseline's counter, and the queues are purged",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--embedded", action="store_true", help="the embedded default broker (a sqla+sqlite file, as `make run`)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument(
        "--pipeline-only",
        action="store_true",
        help="drop the features' app.updated handlers (the re-review) in the worker: the pipeline's own cost",
    )
    parser.add_argument("--profile", metavar="DIR", help="profile the API's ingest into DIR (see above)")
    args = parser.parse_args()
    # One log line per benchmark request would drown the figures.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    secret = secrets.token_hex(16)
    broker = f"sqla+sqlite:///{tmp / 'broker.db'}" if args.embedded else (args.broker or args.redis)
    env = {
        "DATABASE_URL": args.database_url or f"sqlite:///{tmp / 'bench.db'}",
        "BROKER_URL": broker,
        # On RabbitMQ the leases stay in the --redis database (on Redis it is the broker's own).
        **({"REDIS_URL": args.redis} if broker.startswith(("amqp", "pyamqp")) else {}),
        "BENCH_REDIS_URL": args.redis,
        "GITHUB_WEBHOOK_SECRET": secret,
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
        "BENCH_PIPELINE_ONLY": "1" if args.pipeline_only else "0",
    }
    os.environ.update(env)
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines
    from orchestrator.tasks import celery_config

    get_settings.cache_clear()  # importing workers.app read the settings before DATABASE_URL was set
    reset_engines()

    celery_app.conf.update(celery_config(broker))
    from bench.harness import spawn, start_api, wait_until

    _redis().flushdb()
    if broker != args.redis:
        celery_app.control.purge()  # what an earlier, interrupted run left queued
    urls = _seed(args.apps)
    # Each phase's deliveries are told apart by their id's prefix; the run's tag keeps an earlier run's
    # events (a --database-url used again) from counting as this run's.
    run = secrets.token_hex(3)
    procs = []
    try:
        if args.profile:
            env["PIPELINE_BENCH_PROFILE"] = str(Path(args.profile).resolve())
            api, base = _start_profiled_api(env, tmp / "api.log")
        else:
            api, base = start_api(env=env, log_path=tmp / "api.log")
        procs.append(api)

        def start_worker(name: str) -> Any:
            proc = spawn(
                [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "ingest", "-c",
                 str(args.concurrency), "--include", "bench.pipeline", "--loglevel", "INFO",
                 "-n", f"bench-{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=env, log_path=tmp / f"{name}.log",
            )  # fmt: skip
            procs.append(proc)
            wait_until(lambda: "ready." in proc.log(), timeout=60, what="worker ready")
            return proc

        worker = start_worker("worker")
        handlers = "pipeline only" if args.pipeline_only else "all registered"
        shown = broker.split("@")[-1] if "@" in broker else broker  # no password in the output
        print(f"API {base}, worker -c {args.concurrency} ({handlers} app.updated handlers), broker {shown}")
        print(f"database {env['DATABASE_URL']}")

        # Bare Celery before and after the pipeline phases: this machine's speed drifts within a run.
        cpu = _cpu_seconds(worker)
        bare_before = _bare(args.events)
        bare_cpu = _cpu_seconds(worker) - cpu

        paced_ms: list[float] = []
        warm_ms: list[float] = []
        if args.paced_seconds > 0:
            # A fresh API fills its connection pool and prepares its statements on its first requests;
            # two seconds at the paced rate first, reported apart, so the paced figures are steady state.
            warm_ms = _send(base, _bodies(urls, int(args.rate * 2), secret, f"warm.{run}"), senders=8, rate=args.rate)
            paced = _bodies(urls, int(args.rate * args.paced_seconds), secret, f"paced.{run}")
            paced_ms = _send(base, paced, senders=8, rate=args.rate)
            _wait(lambda: _handled(f"paced.{run}"), len(paced), timeout=120)

        burst = _bodies(urls, args.events, secret, f"burst.{run}")
        cpu_api, cpu_worker = _cpu_seconds(api), _cpu_seconds(worker)
        start = time.perf_counter()
        burst_ms = _send(base, burst, senders=args.senders, rate=None)
        sent = time.perf_counter()
        done = _wait(lambda: _handled(f"burst.{run}"), args.events, timeout=max(120, args.events / 10))
        pipeline_rate = args.events / (done - start)
        burst_api_cpu, burst_worker_cpu = _cpu_seconds(api) - cpu_api, _cpu_seconds(worker) - cpu_worker

        # Drain: the same events already ingested and queued, so only the worker's handling is timed.
        worker.stop()
        drain = _bodies(urls, args.events, secret, f"drain.{run}")
        _send(base, drain, senders=args.senders, rate=None)
        _wait(lambda: _queued(f"drain.{run}"), args.events, timeout=max(120, args.events / 10))
        drain_start = time.perf_counter()
        worker = start_worker("drain-worker")
        drained = _wait(lambda: _handled(f"drain.{run}"), args.events, timeout=max(120, args.events / 10))
        drain_rate = args.events / (drained - drain_start)

        bare_after = _bare(args.events)
        bare_rate = (bare_before + bare_after) / 2
    finally:
        for proc in procs:
            proc.stop()
        _redis().flushdb()
        if broker != args.redis:
            celery_app.control.purge()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    if warm_ms:
        print(f"warm-up, not counted ({len(warm_ms)} requests at {args.rate:.0f}/s): p50 {_pct(warm_ms, 50):.1f} ms, "
              f"p99 {_pct(warm_ms, 99):.1f} ms")  # fmt: skip
    if paced_ms:
        p50, p99, top = _pct(paced_ms, 50), _pct(paced_ms, 99), max(paced_ms)
        head = f"ingest at {args.rate:.0f} req/s ({len(paced_ms)} requests)"
        print(f"{head}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms")
    print(f"ingest burst ({args.events} requests, {args.senders} senders, {args.events / (sent - start):.0f} req/s): "
          f"p50 {_pct(burst_ms, 50):.1f} ms, p99 {_pct(burst_ms, 99):.1f} ms")  # fmt: skip
    print(f"end to end (webhook → handled): {pipeline_rate:.0f} events/s")
    print(f"bare Celery task, one Redis write, same broker and worker (-c {args.concurrency}): {bare_rate:.0f} tasks/s "
          f"(mean of {bare_before:.0f} before and {bare_after:.0f} after the pipeline phases)")  # fmt: skip
    print(f"ratio pipeline / bare: {pipeline_rate / bare_rate:.2f}")
    per_event = (burst_api_cpu + burst_worker_cpu) / args.events * 1000
    print(f"CPU per event in the burst: API {burst_api_cpu / args.events * 1000:.2f} ms + worker "
          f"{burst_worker_cpu / args.events * 1000:.2f} ms; bare task (worker) {bare_cpu / args.events * 1000:.2f} ms; "
          f"CPU ratio bare / pipeline: {bare_cpu / args.events * 1000 / per_event:.2f}")  # fmt: skip
    print(f"worker drain (ingested and queued first; includes worker start-up): {drain_rate:.0f} events/s, "
          f"ratio drain / bare: {drain_rate / bare_rate:.2f}")  # fmt: skip
    if args.keep:
        print(f"logs and database kept in {tmp}")
    if args.profile:
        _print_profile(Path(args.profile))


def _print_profile(directory: Path, top: int = 25) -> None:
    """Where the API's CPU went per delivery, by thread, then the functions costing most of it."""
    import pstats

    requests = int((directory / "requests").read_text())
    print(f"\nAPI CPU profile (cProfile, thread CPU time), {requests} deliveries:")
    merged: dict[Any, list[float]] = {}
    for name in ("loop", "writer", "publisher"):
        path = directory / f"{name}.prof"
        if not path.exists():
            continue
        stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
        print(f"  {name}: {sum(v[2] for v in stats.values()) * 1000 / requests:.3f} ms/delivery")
        for key, (_, calls, own, _cumulative, _) in stats.items():
            row = merged.setdefault(key, [0.0, 0.0])
            row[0] += calls
            row[1] += own
    for (file, line, name), (calls, own) in sorted(merged.items(), key=lambda item: -item[1][1])[:top]:
        where = file.split("site-packages/")[-1].replace(os.getcwd() + "/", "")
        print(f"  {own * 1000 / requests:7.3f} ms {calls / requests:6.1f}×  {where}:{line} {name}")


if __name__ == "__main__":
    main()
