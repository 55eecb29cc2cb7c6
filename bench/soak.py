"""Multi-node soak on one machine: 2 APIs behind a round-robin proxy, 3 workers, 2 schedulers, kills and restarts.

    python -m bench.soak [--minutes 5 | --seconds 60] [--rate 20] [--broker amqp://…/vhost] [--database-url …]

Starts a private redis-server on a free port (AOF on, so that it can be restarted without disturbing
the machine's shared Redis), a fresh PostgreSQL database (dropped at the end), two API processes behind
a small asyncio round-robin TCP proxy, three workers (one process each) and two schedulers competing
for the leader lock. It then sends signed GitHub `push` webhooks through the proxy at --rate per second
(a delivery that fails — its API was killed — is sent again with the same delivery id, as GitHub
does) for the set time, while it SIGKILLs and restarts one API, one worker and the leading scheduler,
and restarts the Redis server (the broker, unless --broker names a RabbitMQ — shared, so instead
every connection of its vhost is closed, as a restart does; the locks and leases in any case). At the
end it waits for the pipeline to settle and prints events/s, p99 of ingest and of
webhook → handled, and the counts that must be zero: lost (a delivery answered 202 whose event is
not handled), doubled (an event that started two reviews) and violations (`orchestrator doctor`'s
invariant checks). Exit status 1 when any is not zero.

Slack approvals are clicked through the proxy too (one for every --click-every webhooks, 5; Slack the local
fake, `bench/fake_slack.py`): each must end approved with its message updated, posted once. Token
exchanges, expiries and sunsets are not driven yet.
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
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Proc, free_port, spawn, start_api, start_scheduler, start_worker, wait_until

PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# ----------------------------------------------------------------------------- the proxy


class RoundRobinProxy:
    """A TCP proxy on 127.0.0.1 sending each new connection to the next backend; a dead backend is skipped."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends  # replaced in place when an API is restarted on a new port
        self.port = free_port()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="soak-proxy", daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_until_complete(server.serve_forever())

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
                break
            except OSError:
                continue
        else:
            client_writer.close()
            return

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))


# ----------------------------------------------------------------------------- processes


@dataclass
class Cluster:
    """Every process of the soak, and how to start each kind again."""

    tmp: Path
    env: dict[str, str]
    redis_port: int
    redis: Proc | None = None
    apis: list[tuple[Proc, str]] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    schedulers: list[Proc] = field(default_factory=list)

    def start_redis(self) -> None:
        """The private redis-server (AOF every second, its files in the soak's directory)."""
        args = [
            "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.tmp),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        self.redis = spawn(args, env={}, log_path=self._log("redis"))
        wait_until(self._redis_answers, timeout=30, what="redis-server")

    def _redis_answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.redis_port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def _log(self, kind: str) -> Path:
        return self.tmp / f"{kind}-{uuid.uuid4().hex[:6]}.log"  # several start at once: no shared counter

    def start_api(self) -> tuple[Proc, str]:
        api = start_api(env=self.env, log_path=self._log("api"))
        self.apis.append(api)
        return api

    def start_worker(self) -> Proc:
        worker = start_worker(env=self.env, log_path=self._log("worker"), queues="ingest,notifications", concurrency=1)
        self.workers.append(worker)
        return worker

    def start_scheduler(self, *, wait_leading: bool) -> Proc:
        log_path = self._log("scheduler")
        if wait_leading:
            scheduler = start_scheduler(env=self.env, log_path=log_path)
        else:  # the standby: it leads only once the other's lock lapses
            scheduler = spawn([sys.executable, "-m", "orchestrator.cli", "scheduler"], env=self.env, log_path=log_path)
        self.schedulers.append(scheduler)
        return scheduler

    def stop(self) -> None:
        for proc in [*(a for a, _ in self.apis), *self.workers, *self.schedulers]:
            proc.stop()
        if self.redis is not None:
            self.redis.stop()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


# ----------------------------------------------------------------------------- load


@dataclass
class Sent:
    """What the driver saw: accepted delivery ids, their ingest latencies (ms) and the resends."""

    accepted: dict[str, float] = field(default_factory=dict)
    resends: int = 0
    refused: list[str] = field(default_factory=list)


async def _drive(base: str, deliveries: list[tuple[bytes, dict[str, str]]], rate: float, sent: Sent) -> None:
    """POST each delivery at its slot; a failed one is sent again (same delivery id) until it is accepted."""
    start = time.perf_counter()
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each: the proxy spreads them

    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def one(index: int, raw: bytes, headers: dict[str, str]) -> None:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            for attempt in range(60):
                began = time.perf_counter()
                try:
                    response = await client.post("/webhooks/github", content=raw, headers=headers)
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 202:
                    sent.accepted[headers["X-GitHub-Delivery"]] = (time.perf_counter() - began) * 1000
                    return
                if response is not None and response.status_code < 500:
                    sent.refused.append(f"{response.status_code} {response.text[:200]}")
                    return
                sent.resends += 1
                await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            sent.refused.append("never accepted")

        await asyncio.gather(*(one(i, raw, headers) for i, (raw, headers) in enumerate(deliveries)))


async def _click(
    base: str, approvals: dict[int, str], secret: str, rate: float, sent: Sent, clicked_at: dict[str, float]
) -> None:
    """Approve each posted approval request at its slot (Slack's signed block_actions POST), again if it failed."""
    from bench.slack_requests import APPROVER, SLACK_IDS, click, sign

    start = time.perf_counter()
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def one(index: int, approval_id: int, ts: str) -> None:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            body = click("approval.approve", str(approval_id), user_id=SLACK_IDS[APPROVER], ts=ts)
            for attempt in range(60):
                clicked_at.setdefault(ts, time.time())
                try:
                    response = await client.post("/slack/interactions", content=body, headers=sign(body, secret))
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 200:
                    return
                sent.resends += 1
                await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            sent.refused.append(f"click on approval {approval_id} never accepted")

        await asyncio.gather(*(one(i, a, ts) for i, (a, ts) in enumerate(approvals.items())))


def _chaos(cluster: Cluster, proxy: RoundRobinProxy, seconds: float, log: list[str]) -> None:
    """At a quarter of the time SIGKILL and restart an API; then a worker; then the leading scheduler; then Redis."""
    steps = [
        (0.2, "api", _kill_api),
        (0.4, "worker", _kill_worker),
        (0.55, "scheduler", _kill_scheduler),
        (0.7, "redis", _restart_redis),
    ]
    began = time.monotonic()
    for at, what, step in steps:
        time.sleep(max(0.0, began + at * seconds - time.monotonic()))
        t0 = time.monotonic()
        step(cluster, proxy)
        log.append(f"{time.monotonic() - began:5.1f}s killed and restarted the {what} ({time.monotonic() - t0:.1f}s)")


def _kill_api(cluster: Cluster, proxy: RoundRobinProxy) -> None:
    victim, base = cluster.apis.pop(0)
    victim.kill()
    _, new_base = cluster.start_api()
    proxy.backends[:] = [("127.0.0.1", _port(b)) for _, b in cluster.apis]
    del base, new_base


def _kill_worker(cluster: Cluster, proxy: RoundRobinProxy) -> None:
    cluster.workers.pop(0).kill()
    cluster.start_worker()


def _kill_scheduler(cluster: Cluster, proxy: RoundRobinProxy) -> None:
    import redis

    holder = redis.Redis(port=cluster.redis_port, db=1).get(f"{cluster.env['SCHEDULER_LOCK_NAME']}:holder")
    pid = int(str(holder.decode() if isinstance(holder, bytes) else holder).split(":")[1]) if holder else None
    leading = [s for s in cluster.schedulers if s.popen.pid == pid]
    victim = leading[0] if leading else cluster.schedulers[0]
    cluster.schedulers.remove(victim)
    victim.kill()
    cluster.start_scheduler(wait_leading=False)


def _restart_redis(cluster: Cluster, proxy: RoundRobinProxy) -> None:
    """Restart the private Redis; on RabbitMQ (shared: never restarted here) also drop every connection of the vhost."""
    assert cluster.redis is not None
    cluster.redis.kill()
    cluster.start_redis()
    broker = cluster.env["BROKER_URL"]
    ctl = shutil.which("rabbitmqctl")
    if broker.startswith("amqp") and ctl:
        vhost = broker.rsplit("/", 1)[1] or "/"
        reason = "soak: broker restart"
        subprocess.run([ctl, "-q", "close_all_connections", "--vhost", vhost, "--limit", "1000", reason], timeout=60)


# ----------------------------------------------------------------------------- checks


def _outcome(delivery_ids: list[str]) -> dict[str, Any]:
    """Per accepted delivery: its event's status and webhook → handled time; reviews started per event."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event, EventStatus
    from orchestrator.reviews.models import Review

    keys = [f"github:{d}" for d in delivery_ids]
    with session_scope(write=False) as session:
        rows = session.exec(
            select(Event.id, Event.status, Event.received_at, Event.handled_at).where(col(Event.dedup_key).in_(keys))
        ).all()
        per_event = dict(
            session.exec(
                select(Review.trigger_event_id, func.count())
                .where(col(Review.trigger_event_id).in_([r[0] for r in rows]))
                .group_by(Review.trigger_event_id)
            ).all()
        )
    handled = [r for r in rows if r[1] == EventStatus.handled]
    unhandled = [f"event {r[0]} {r[1]}" for r in rows if r[1] != EventStatus.handled]
    latencies = [(r[3] - r[2]).total_seconds() * 1000 for r in handled if r[3] is not None]
    return {
        "events": len(rows),
        "handled": len(handled),
        "lost": len(delivery_ids) - len(handled),
        "doubled": sum(1 for count in per_event.values() if count > 1),
        "e2e_ms": latencies,
        "detail": unhandled[:10],
    }


def _violations() -> dict[str, int]:
    from orchestrator import invariants, wiring
    from orchestrator.db import session_scope

    wiring.install()  # the rule "events-handled" asks the registry whether each event type has a handler

    with session_scope(write=False) as session:
        return {rule: n for rule, n in invariants.counts(invariants.check_all(session)).items() if n}


def _pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# ----------------------------------------------------------------------------- main


def _approvals_outcome(slack: Any, ids: list[int], clicked_at: dict[str, float]) -> dict[str, Any]:
    """Approvals clicked but not approved or whose message was not updated; messages posted twice; click → update."""
    from sqlmodel import col, select

    from orchestrator.approvals.models import ApprovalRequest
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = session.exec(select(ApprovalRequest).where(col(ApprovalRequest.id).in_(ids))).all()
    updated_at: dict[str, float] = {}
    for rec in list(slack.requests):
        if rec.method == "chat.update":
            updated_at.setdefault(rec.params["ts"], rec.at)
    posted = [m for m in slack.calls("chat.postMessage") if m.get("channel") == APPROVAL_CHANNEL]
    done = [r for r in rows if r.status == "approved" and r.message_ts in updated_at]
    missing = [
        f"approval {r.id} {r.status} {'updated' if r.message_ts in updated_at else 'not updated'}"
        for r in rows
        if r not in done
    ]
    return {
        "lost": len(ids) - len(done),
        "doubled": max(0, len(posted) - len(ids)),
        "e2e_ms": [(updated_at[ts] - at) * 1000 for ts, at in clicked_at.items() if ts in updated_at],
        "detail": missing[:10],
    }


APPROVAL_CHANNEL = "C0APPROVAL"


def run(
    seconds: float, rate: float, broker: str | None, database_url: str | None, keep: bool, click_every: int = 5
) -> dict[str, Any]:
    """The whole soak; returns the figures (also printed)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    redis_port = free_port()
    own_db = None
    if database_url is None:
        own_db = f"soak_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{own_db}"'))
        database_url = make_url(PG_ADMIN_URL).set(database=own_db).render_as_string(hide_password=False)
    secret = secrets.token_hex(16)
    unique = uuid.uuid4().hex[:8]
    from bench.fake_slack import FakeSlack
    from bench.slack_requests import CHANNELS, SLACK_IDS

    slack = FakeSlack(token="-".join(["xoxb", secrets.token_hex(6), secrets.token_hex(12)]))
    for name, channel_id in CHANNELS.items():
        slack.add_channel(name, channel_id)
    for email, user_id in SLACK_IDS.items():
        slack.add_user(email, user_id)
    slack_secret = secrets.token_hex(16)
    env = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.start(),
        "SLACK_SIGNING_SECRET": slack_secret,
        "DATABASE_URL": database_url,
        "BROKER_URL": broker or f"redis://127.0.0.1:{redis_port}/0",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
        "GITHUB_WEBHOOK_SECRET": secret,
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
        "SCHEDULER_LOCK_NAME": f"soak-lock-{unique}",
        "DEADLINE_NUDGE_CHANNEL": f"soak-nudge-{unique}",
        "LOG_LEVEL": "INFO",  # the harness waits for a scheduler's "scheduler leading" line
        "DATA_DIR": str(tmp / "var"),
    }
    os.environ.update(env)
    from orchestrator.config import get_settings
    from orchestrator.db import migrate, reset_engines

    get_settings.cache_clear()
    reset_engines()
    migrate()
    from bench.pipeline import _bodies, _seed

    urls = _seed(20)
    from bench.approvals import _message_ts
    from bench.approvals import _seed as seed_approvals

    approval_ids = seed_approvals(int(seconds * rate / click_every)) if click_every else []
    cluster = Cluster(tmp=tmp, env=env, redis_port=redis_port)
    t_setup = time.perf_counter()
    chaos_log: list[str] = []
    result: dict[str, Any] = {}
    try:
        cluster.start_redis()
        # Started side by side: each mostly waits for its imports, and the machine has few cores.
        with ThreadPoolExecutor(max_workers=6) as pool:
            starting: list[Future[Any]] = [pool.submit(cluster.start_api) for _ in range(2)]
            starting += [pool.submit(cluster.start_worker) for _ in range(3)]
            starting.append(pool.submit(cluster.start_scheduler, wait_leading=True))
            for future in starting:
                future.result()
        cluster.start_scheduler(wait_leading=False)
        proxy = RoundRobinProxy([("127.0.0.1", _port(b)) for _, b in cluster.apis])
        deliveries = _bodies(urls, int(seconds * rate), secret, f"soak{unique}")
        wait_until(lambda: len(_message_ts()) == len(approval_ids), timeout=120, what="approval messages posted")
        approvals = {a: ts for a, ts in _message_ts().items() if a in approval_ids}
        clicked_at: dict[str, float] = {}
        sent = Sent()
        chaos = threading.Thread(target=_chaos, args=(cluster, proxy, seconds, chaos_log), daemon=True)
        began = time.perf_counter()
        setup_s = began - t_setup
        chaos.start()
        base = f"http://127.0.0.1:{proxy.port}"

        async def drive() -> None:
            await asyncio.gather(
                _drive(base, deliveries, rate, sent),
                _click(base, approvals, slack_secret, max(len(approvals), 1) / seconds, sent, clicked_at),
            )

        asyncio.run(drive())
        chaos.join()
        ids = list(sent.accepted)
        drove = time.perf_counter()
        # Settle: the relay re-publishes what a restart lost (RELAY_LEASE_STALE_SECONDS, 45 s by default).
        # A click whose handler died mid-run waits out its lease (5 min) before the notifications sweep retries it.
        deadline = time.monotonic() + (420 if approval_ids else 180)
        while time.monotonic() < deadline and (
            _outcome(ids)["lost"] or _approvals_outcome(slack, approval_ids, clicked_at)["lost"]
        ):
            time.sleep(1)
        settled = time.perf_counter()
        outcome = _outcome(ids)
        clicks = _approvals_outcome(slack, approval_ids, clicked_at)
        result = {
            "seconds": round(seconds),
            "deliveries": len(deliveries),
            "accepted": len(ids),
            "refused": len(sent.refused),
            "resends": sent.resends,
            "events_per_second": round(outcome["handled"] / (settled - began), 1),
            "ingest_p99_ms": round(_pct(list(sent.accepted.values()), 99), 1),
            "handled_p99_ms": round(_pct(outcome["e2e_ms"], 99), 1),
            "approvals": len(approval_ids),
            "click_to_update_p99_ms": round(_pct(clicks["e2e_ms"], 99), 1),
            "lost": outcome["lost"] + clicks["lost"] + len(sent.refused),
            "doubled": outcome["doubled"] + clicks["doubled"],
            "violations": sum(_violations().values()),
            "violated_rules": _violations(),
            "lost_detail": outcome["detail"] + clicks["detail"] + sent.refused[:10],
            "phases_s": {"start": round(setup_s), "load": round(drove - began), "settle": round(settled - drove)},
        }
    finally:
        cluster.stop()
        slack.stop()
        reset_engines()
        if own_db is not None:
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{own_db}" WITH (FORCE)'))
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in chaos_log:
        print(line)
    print(
        f"{result['accepted']}/{result['deliveries']} webhooks accepted ({result['resends']} resent after a kill), "
        f"{result['events_per_second']} events/s handled; p99 ingest {result['ingest_p99_ms']} ms, "
        f"p99 webhook → handled {result['handled_p99_ms']} ms"
    )
    print(f"{result['approvals']} approvals clicked; p99 click → chat.update {result['click_to_update_p99_ms']} ms")
    print(f"phases (s): {result['phases_s']}")
    for line in result["lost_detail"]:
        print(f"lost: {line}")
    print(f"lost {result['lost']}, doubled {result['doubled']}, violations {result['violations']}")
    print(json.dumps({"soak": result}))
    return result


def main() -> None:
    """Parse the options, run the soak, exit 1 unless nothing was lost, doubled or violated."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the load runs")
    parser.add_argument("--seconds", type=float, default=None, help="the same in seconds (overrides --minutes)")
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument(
        "--broker", default=None, help="e.g. amqp://guest:guest@127.0.0.1:5672/soak (default: the private Redis)"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh PostgreSQL database on PG_ADMIN_URL")
    parser.add_argument("--click-every", type=int, default=5, help="an approval click for every Nth webhook (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the logs in the temporary directory")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    result = run(seconds, args.rate, args.broker, args.database_url, args.keep, args.click_every)
    sys.exit(1 if result["lost"] or result["doubled"] or result["violations"] else 0)


if __name__ == "__main__":
    main()
