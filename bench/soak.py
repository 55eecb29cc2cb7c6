"""Multi-node soak on one machine: 2 APIs behind a round-robin proxy, 3 workers, 2 schedulers, kills and restarts.

    python -m bench.soak [--minutes 5 | --seconds 60] [--rate 20] [--broker amqp://…/vhost] [--database-url …]
                         [--click-every 5] [--exchange-every 5] [--expiries 10] [--sunsets 10] [--keep]

Starts a private redis-server on a free port (AOF on, so that it can be restarted without disturbing
the machine's shared Redis), a fresh PostgreSQL database (dropped at the end), two API processes behind
a small asyncio round-robin TCP proxy, three workers (one process each, queues ingest, notifications and
sunset) and two schedulers competing for the leader lock. For the set time it drives, through the proxy
and at a steady rate, five flows, while it SIGKILLs and restarts one API, one worker and the leading
scheduler, and restarts the Redis server (the broker, unless --broker names a RabbitMQ — shared, so
instead every connection of its vhost is closed, as a restart does; the locks, leases and revocation
list in any case). A request that fails because its API died is sent again, as GitHub, Slack or a
client would:

- webhooks: signed GitHub `push` deliveries at --rate per second (a resend keeps its delivery id).
  Lost: a delivery answered 202 whose event is not handled; doubled: an event that started two reviews.
- approvals: Slack clicks (one for every --click-every webhooks; Slack is the local fake,
  `bench/fake_slack.py`) on approval messages posted before the load. Lost: not approved, or its message
  not updated (`chat.update`); doubled: an approval message posted twice.
- token exchanges: one for every --exchange-every webhooks, `POST /oauth/token` (RFC 8693) with the
  claimed service secret of one of 3 production apps as subject. Lost: an exchange never answered 200,
  or answered with a token that `POST /oauth/introspect` (through the proxy, once everything settled)
  does not call active; doubled: one token handed out twice.
- expiries: --expiries production apps whose expiry the deadline service sets between 20 % and 90 % of
  the load (their notices' days have passed, so one notice is due at once). Each expiry timer and its
  notice must fire exactly once — one event each — and `lifecycle.mark_expiring`, `app.expiry_notice_sent`
  and `lifecycle.expire` be in the app's audit trail once, whatever the scheduler kill did. The expiry
  then sunsets the app.
- sunsets: --sunsets production apps retired through the API (`POST /api/v1/apps/{id}/retire`, as an
  admin) over the first 85 % of the load, plus the expired ones. Each must end retired with its run done;
  every sunset step, `archive.created` and `lifecycle.complete_sunset` audited once; one archive record
  (of the app's log file); no live credential, each revocation audited once; and a token exchanged for
  the app before the load introspects inactive.

Every app is set up through the real services (register, approve, issue and claim the service credential).
At the end it waits for everything to settle and prints events/s, p99 of ingest, of webhook → handled, of
click → `chat.update`, of an expiry's fire after its due time and of a sunset's start → retired, the count of
each flow, and lost, doubled (per flow and in all) and violations (`orchestrator doctor`'s invariant
checks), which must all be zero: exit status 1 otherwise.
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
        worker = start_worker(
            env=self.env, log_path=self._log("worker"), queues="ingest,notifications,sunset", concurrency=1
        )
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
        """Stop every process at once (each may take seconds to shut down cleanly), then Redis."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(Proc.stop, [*(a for a, _ in self.apis), *self.workers, *self.schedulers]))
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


# ----------------------------------------------------------------------------- token exchanges, expiries, sunsets

EXCHANGE_FORM = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
}
# Counted once per app: each must be in the app's audit trail exactly once.
EXPIRY_ONCE = ("lifecycle.mark_expiring", "app.expiry_notice_sent", "lifecycle.expire")
SUNSET_ONCE = (
    "sunset.started", "sunset.freeze", "sunset.revoke", "sunset.archive", "sunset.retire", "archive.created",
    "lifecycle.complete_sunset",
)  # fmt: skip


@dataclass
class Flows:
    """What the set-up made for the token, expiry and sunset flows (every app through the real services)."""

    secrets: dict[str, str]  # exchange app id → its claimed service secret
    gateway: str  # the API token that introspection calls authenticate with
    admin: str  # the API token that asks for retirements
    expiring: list[str]  # apps whose expiry falls during the load
    retiring: list[str]  # apps retired through the API during the load
    doomed: dict[str, str] = field(default_factory=dict)  # token exchanged at set-up → its app (expiring/retiring)


def _production_app(session: Any, name: str, log_root: Path) -> tuple[str, str]:
    """An app approved into production with its service credential issued and claimed, and a log file."""
    from bench.slack_requests import APPROVER, OWNER, seed_app
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy
    from orchestrator.credentials.handover import claim_service_credential, on_app_approved

    policy = get_policy()
    app = seed_app(session, name=name)
    catalog.apply_action(session, app, Action.approve, actor=APPROVER, policy=policy)
    on_app_approved(session, app, policy=policy, actor=APPROVER)
    _, secret = claim_service_credential(session, app, actor=OWNER)
    (log_root / app.id).mkdir(parents=True, exist_ok=True)
    (log_root / app.id / "app.log").write_text(f"{name} started\nserved 3 requests\n")
    return app.id, secret


def _seed_flows(exchange_apps: int, expiries: int, sunsets: int) -> Flows:
    """Production apps for each flow, API tokens for the introspecting gateway and an admin; one token exchanged
    per app that will expire or be retired (it must introspect inactive at the end)."""
    from bench.slack_requests import OWNER
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.catalog.policy import get_policy
    from orchestrator.config import get_settings
    from orchestrator.credentials.tokens.exchange import ExchangeRequest, exchange
    from orchestrator.db import session_scope

    log_root = get_settings().log_source_dir
    made: dict[str, list[tuple[str, str]]] = {}
    for kind, count in (("exchange", exchange_apps), ("expiry", expiries), ("sunset", sunsets)):
        made[kind] = []
        for i in range(count):
            with session_scope() as session:
                made[kind].append(_production_app(session, f"Soak {kind} {i:03d}", log_root))
    with session_scope() as session:
        gateway = create_token(session, name="soak-gateway", role=Role.approver, person_email=None, actor="soak")
        admin = create_token(session, name="soak-admin", role=Role.admin, person_email=OWNER, actor="soak")
    doomed = {}
    for app_id, secret in made["expiry"] + made["sunset"]:
        form = {k: [v] for k, v in {**EXCHANGE_FORM, "subject_token": secret, "audience": app_id}.items()}
        with session_scope() as session:
            doomed[exchange(session, ExchangeRequest.from_form(form), policy=get_policy())["access_token"]] = app_id
    return Flows(
        secrets=dict(made["exchange"]), gateway=gateway, admin=admin, expiring=[a for a, _ in made["expiry"]],
        retiring=[a for a, _ in made["sunset"]], doomed=doomed,
    )  # fmt: skip


def _arm_expiries(app_ids: list[str], began: float, seconds: float) -> dict[str, float]:
    """Set each app's expiry inside the load window (from 20 % to 90 % of it) through the deadline service.

    Its notices' days have all passed, so the plan also sets one notice due now: it fires first, the expiry
    (the stage change and the sunset) seconds later."""
    from datetime import timedelta

    from orchestrator.catalog.models import MicroApp
    from orchestrator.catalog.policy import get_policy
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope
    from orchestrator.timers import service as deadlines

    due: dict[str, float] = {}
    for i, app_id in enumerate(app_ids):
        offset = seconds * (0.2 + 0.7 * (i + 0.5) / len(app_ids)) - (time.perf_counter() - began)
        with session_scope() as session:
            app = session.get(MicroApp, app_id)
            assert app is not None
            app.expires_at = utcnow() + timedelta(seconds=max(1.0, offset))
            app.version += 1
            session.add(app)
            deadlines.reschedule_app(session, app, get_policy())
        due[app_id] = offset
    return due


@dataclass
class Answers:
    """Per key, the status and body of the answer that ended its retries (2xx, or a refusal)."""

    ok: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


async def _paced(
    base: str,
    jobs: list[tuple[str, str, dict[str, Any]]],
    rate: float,
    sent: Sent,
    answers: Answers,
    *,
    ok: tuple[int, ...],
    ok_on_resend: tuple[int, ...] = (),
) -> None:
    """POST each (key, path, httpx arguments) at its slot, again while it gets no answer or a 5xx (its API died).

    `ok_on_resend`: statuses that mean an earlier attempt, whose answer was lost, went through (e.g. a 409
    for a retirement asked twice)."""
    start = time.perf_counter()
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def one(index: int, key: str, path: str, kwargs: dict[str, Any]) -> None:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            for attempt in range(60):
                try:
                    response = await client.post(path, **kwargs)
                except httpx.HTTPError:
                    response = None
                if response is not None and (
                    response.status_code in ok or (attempt and response.status_code in ok_on_resend)
                ):
                    answers.ok[key] = response.json() if response.status_code in ok else {}
                    return
                if response is not None and response.status_code < 500:
                    answers.refused.append(f"{key}: {response.status_code} {response.text[:200]}")
                    return
                sent.resends += 1
                await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
            answers.refused.append(f"{key}: never answered")

        await asyncio.gather(*(one(i, key, path, kwargs) for i, (key, path, kwargs) in enumerate(jobs)))


def _exchange_jobs(flows: Flows, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    apps = sorted(flows.secrets)
    jobs = []
    for i in range(count if apps else 0):
        app_id = apps[i % len(apps)]
        form = {**EXCHANGE_FORM, "subject_token": flows.secrets[app_id], "audience": app_id}
        jobs.append((f"exchange {i}", "/oauth/token", {"data": form}))
    return jobs


def _retire_jobs(flows: Flows) -> list[tuple[str, str, dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {flows.admin}"}
    return [(app_id, f"/api/v1/apps/{app_id}/retire", {"json": {"reason": "soak"}, "headers": headers})
            for app_id in flows.retiring]  # fmt: skip


async def _introspect(base: str, gateway: str, tokens: list[str]) -> dict[str, bool | None]:
    """`active` of each token as the API (through the proxy) answers it; None when it never answered."""
    out: dict[str, bool | None] = {}
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base, timeout=10, headers={"Authorization": f"Bearer {gateway}"}) as client:

        async def one(token: str) -> None:
            async with gate:
                for _ in range(5):
                    try:
                        response = await client.post("/oauth/introspect", data={"token": token})
                        if response.status_code == 200:
                            out[token] = bool(response.json().get("active"))
                            return
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)
                out[token] = None

        await asyncio.gather(*(one(t) for t in tokens))
    return out


def _exchanges_outcome(jobs: int, answers: Answers, active: dict[str, bool | None]) -> dict[str, Any]:
    """Lost: an exchange never answered 200, or answered with a token that does not introspect active.
    Doubled: one token (jti) handed out twice. Also how many ledger rows the exchanges left (≥ answered:
    an answer lost with its API still left its row)."""
    import jwt
    from sqlalchemy import func
    from sqlmodel import col, select

    from orchestrator.credentials.models import Credential
    from orchestrator.db import session_scope

    tokens = [a["access_token"] for a in answers.ok.values()]
    jtis = [jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens]
    with session_scope(write=False) as session:
        ledger = session.exec(
            select(func.count()).select_from(Credential).where(col(Credential.external_ref).in_(jtis or [""]))
        ).one()
    inactive = [
        f"exchanged token {j[:8]}… introspects {active.get(t)}"
        for t, j in zip(tokens, jtis, strict=True)
        if not active.get(t)
    ]
    return {
        "count": jobs,
        "lost": jobs - len(tokens) + len(inactive),
        "doubled": len(jtis) - len(set(jtis)),
        "in_ledger": int(ledger),
        "detail": (answers.refused + inactive)[:10],
    }


def _audit_counts(session: Any, app_id: str) -> dict[str, int]:
    from collections import Counter

    from orchestrator.audit import service as audit

    return dict(Counter(e.action for e in audit.entries(session, app_id=app_id)))


def _expiries_outcome(app_ids: list[str]) -> dict[str, Any]:
    """Each expiry timer fired once (one event), its notice and stage changes audited once; lateness of the fire."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event
    from orchestrator.timers import service as deadlines
    from orchestrator.timers.models import Deadline, DeadlineStatus

    lost, doubled, late_ms, detail = 0, 0, [], []
    with session_scope(write=False) as session:
        for app_id in app_ids:
            rows = session.exec(
                select(Deadline).where(Deadline.app_id == app_id, col(Deadline.kind).in_(["expiry", "expiry_notice"]))
            ).all()
            fired = [d for d in rows if d.status == DeadlineStatus.fired]
            expiry = [d for d in fired if d.kind == "expiry"]
            events = session.exec(
                select(func.count())
                .select_from(Event)
                .where(col(Event.dedup_key).in_([deadlines.dedup_key(d.id or 0) for d in fired] or [""]))
            ).one()
            counts = _audit_counts(session, app_id)
            once = [counts.get(action, 0) for action in EXPIRY_ONCE]
            audit = dict(zip(EXPIRY_ONCE, once, strict=True))
            if len(expiry) != 1 or len(fired) != 2 or 0 in once:
                lost += 1
                detail.append(f"expiry of {app_id}: {len(expiry)} expiry and {len(fired)} timers fired, audit {audit}")
            if len(fired) > 2 or events > len(fired) or any(n > 1 for n in once):
                doubled += 1
                detail.append(f"expiry of {app_id} twice: {len(fired)} timers fired, {events} events, audit {audit}")
            late_ms += [(d.fired_at - d.due_at).total_seconds() * 1000 for d in expiry if d.fired_at]
    return {"count": len(app_ids), "lost": lost, "doubled": doubled, "late_ms": late_ms, "detail": detail[:10]}


def _sunsets_outcome(
    app_ids: list[str], doomed_active: dict[str, bool | None], doomed: dict[str, str]
) -> dict[str, Any]:
    """Each sunset ran once: every step, its archive and the retirement audited once, one archive record, every
    credential revoked (audited once each), and the token exchanged before introspects inactive."""
    from collections import Counter

    from sqlmodel import col, select

    from orchestrator.audit.models import AuditEntry
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials.models import Credential, CredentialStatus
    from orchestrator.db import session_scope
    from orchestrator.sunset.models import ArchiveRecord, SunsetRun, SunsetStatus

    lost, doubled, took_ms, detail = 0, 0, [], []
    with session_scope(write=False) as session:
        for app_id in app_ids:
            app = session.get(MicroApp, app_id)
            run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).first()
            archives = session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == app_id)).all()
            live = session.exec(
                select(Credential.id).where(Credential.app_id == app_id, Credential.status == CredentialStatus.live)
            ).all()
            counts = _audit_counts(session, app_id)
            revocations = Counter(
                e.data.get("credential_id")
                for e in session.exec(
                    select(AuditEntry).where(
                        AuditEntry.app_id == app_id, col(AuditEntry.action) == "credential.revoked"
                    )
                ).all()
            )
            once = [counts.get(action, 0) for action in SUNSET_ONCE]
            tokens_active = [t for t, a in doomed.items() if a == app_id and doomed_active.get(t) is not False]
            done = (
                app is not None and app.stage is Stage.retired and run is not None and run.status is SunsetStatus.done
            )
            if not done or 0 in once or len(archives) != 1 or live or tokens_active:
                lost += 1
                detail.append(
                    f"sunset of {app_id}: stage {app.stage if app else None}, run {run.status if run else None}, "
                    f"{len(archives)} archives, {len(live)} live credentials, {len(tokens_active)} tokens still "
                    f"active, audit {dict(zip(SUNSET_ONCE, once, strict=True))}"
                )
            if any(n > 1 for n in once) or len(archives) > 1 or any(n > 1 for n in revocations.values()):
                doubled += 1
                detail.append(f"sunset of {app_id} twice: {len(archives)} archives, audit {once}, {dict(revocations)}")
            if run is not None and run.finished_at is not None:
                took_ms.append((run.finished_at - run.created_at).total_seconds() * 1000)
    return {"count": len(app_ids), "lost": lost, "doubled": doubled, "took_ms": took_ms, "detail": detail[:10]}


# ----------------------------------------------------------------------------- main


def _approvals_outcome(slack: Any, ids: list[int], clicked_at: dict[str, float]) -> dict[str, Any]:
    """Approvals clicked but not approved or whose message was not updated; messages posted twice; click → update."""
    from collections import Counter

    from sqlmodel import col, select

    from orchestrator.approvals.models import ApprovalRequest
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = session.exec(select(ApprovalRequest).where(col(ApprovalRequest.id).in_(ids))).all()
    updated_at: dict[str, float] = {}
    for rec in list(slack.requests):
        if rec.method == "chat.update":
            updated_at.setdefault(rec.params["ts"], rec.at)
    # The channel also gets the sunsets' notices: only the approval posts (by their idempotency key) count here.
    keys = [
        ((m.get("metadata") or {}).get("event_payload") or {}).get("key", "") for m in slack.messages(APPROVAL_CHANNEL)
    ]
    posts = Counter(k for k in keys if k.startswith("approval:") and k.endswith(":post"))
    done = [r for r in rows if r.status == "approved" and r.message_ts in updated_at]
    missing = [
        f"approval {r.id} {r.status} {'updated' if r.message_ts in updated_at else 'not updated'}"
        for r in rows
        if r not in done
    ]
    return {
        "lost": len(ids) - len(done),
        "doubled": sum(1 for n in posts.values() if n > 1),
        "e2e_ms": [(updated_at[ts] - at) * 1000 for ts, at in clicked_at.items() if ts in updated_at],
        "detail": missing[:10],
    }


APPROVAL_CHANNEL = "C0APPROVAL"


def run(
    seconds: float,
    rate: float,
    broker: str | None,
    database_url: str | None,
    keep: bool,
    click_every: int = 5,
    exchange_every: int = 5,
    expiries: int = 10,
    sunsets: int = 10,
) -> dict[str, Any]:
    """The whole soak; returns the figures (also printed)."""
    t_begin = time.perf_counter()
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
        "DATA_DIR": str(tmp / "var"),  # archives and the apps' logs (LOG_SOURCE_DIR) too
        # One key and issuer for every process: tokens exchanged here and by either API verify anywhere.
        "CREDENTIAL_KEY": secrets.token_urlsafe(32),
        "TOKEN_ISSUER": "http://soak.invalid",
    }
    os.environ.update(env)
    from orchestrator.config import get_settings
    from orchestrator.db import migrate, reset_engines

    get_settings.cache_clear()
    reset_engines()
    migrate()
    from bench.approvals import _message_ts
    from bench.approvals import _seed as seed_approvals
    from bench.pipeline import _bodies, _seed

    cluster = Cluster(tmp=tmp, env=env, redis_port=redis_port)
    t_setup = time.perf_counter()
    chaos_log: list[str] = []
    result: dict[str, Any] = {}
    try:
        cluster.start_redis()  # first: the set-up's commits send their tasks (and timer nudges) at once
        urls = _seed(20)
        approval_ids = seed_approvals(int(seconds * rate / click_every)) if click_every else []
        flows = _seed_flows(3 if exchange_every else 0, expiries, sunsets)
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
        exchange_jobs = _exchange_jobs(flows, int(seconds * rate / exchange_every) if exchange_every else 0)
        retire_jobs = _retire_jobs(flows)
        clicked_at: dict[str, float] = {}
        sent = Sent()
        exchanged, retired = Answers(), Answers()
        chaos = threading.Thread(target=_chaos, args=(cluster, proxy, seconds, chaos_log), daemon=True)
        began = time.perf_counter()
        _arm_expiries(flows.expiring, began, seconds)
        setup_s = began - t_setup
        chaos.start()
        base = f"http://127.0.0.1:{proxy.port}"

        async def drive() -> None:
            await asyncio.gather(
                _drive(base, deliveries, rate, sent),
                _click(base, approvals, slack_secret, max(len(approvals), 1) / seconds, sent, clicked_at),
                _paced(base, exchange_jobs, max(len(exchange_jobs), 1) / seconds, sent, exchanged, ok=(200,)),
                # Retirements over the first 85 % of the time, so that each sunset runs during the load.
                _paced(base, retire_jobs, max(len(retire_jobs), 1) / (0.85 * seconds), sent, retired, ok=(202,),
                       ok_on_resend=(409,)),
            )  # fmt: skip

        asyncio.run(drive())
        chaos.join()
        ids = list(sent.accepted)
        drove = time.perf_counter()
        sunset_ids = flows.retiring + flows.expiring
        unchecked: dict[str, bool | None] = dict.fromkeys(
            flows.doomed, False
        )  # tokens are introspected once everything settled

        def unsettled() -> bool:
            return bool(
                _outcome(ids)["lost"]
                or _approvals_outcome(slack, approval_ids, clicked_at)["lost"]
                or _expiries_outcome(flows.expiring)["lost"]
                or _sunsets_outcome(sunset_ids, unchecked, flows.doomed)["lost"]
            )

        # Settle: the relay re-publishes what a restart lost (RELAY_LEASE_STALE_SECONDS, 45 s by default); a click
        # or an approval update whose worker died waits out its 15 s lease; a sunset its run's lease (30 s).
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and unsettled():
            time.sleep(1)
        settled = time.perf_counter()
        tokens = [a["access_token"] for a in exchanged.ok.values()]
        active = asyncio.run(_introspect(base, flows.gateway, tokens + list(flows.doomed)))
        outcome = _outcome(ids)
        clicks = _approvals_outcome(slack, approval_ids, clicked_at)
        exchanges = _exchanges_outcome(len(exchange_jobs), exchanged, active)
        expired = _expiries_outcome(flows.expiring)
        sunset = _sunsets_outcome(sunset_ids, active, flows.doomed)
        sunset["lost"] += len(retired.refused)
        sunset["detail"] = retired.refused[:10] + sunset["detail"]
        flows_out = {"exchanges": exchanges, "expiries": expired, "sunsets": sunset}
        violations = _violations()
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
            "exchanges": exchanges["count"],
            "exchanges_in_ledger": exchanges["in_ledger"],
            "expiries": expired["count"],
            "expiry_late_p99_ms": round(_pct(expired["late_ms"], 99), 1),
            "sunsets": sunset["count"],
            "sunset_p99_ms": round(_pct(sunset["took_ms"], 99), 1),
            "lost_by_flow": {
                "webhooks": outcome["lost"] + len(sent.refused), "approvals": clicks["lost"],
                **{name: f["lost"] for name, f in flows_out.items()},
            },  # fmt: skip
            "doubled_by_flow": {
                "webhooks": outcome["doubled"], "approvals": clicks["doubled"],
                **{name: f["doubled"] for name, f in flows_out.items()},
            },  # fmt: skip
            "violations": sum(violations.values()),
            "violated_rules": violations,
            "lost_detail": outcome["detail"] + clicks["detail"] + sent.refused[:10]
            + [line for f in flows_out.values() for line in f["detail"]],
            "phases_s": {"start": round(setup_s), "load": round(drove - began), "settle": round(settled - drove)},
        }  # fmt: skip
        result["lost"] = sum(result["lost_by_flow"].values())
        result["doubled"] = sum(result["doubled_by_flow"].values())
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
    result["phases_s"]["end"] = round(time.perf_counter() - t_begin - sum(result["phases_s"].values()))
    _print(result, chaos_log)
    return result


def _print(result: dict[str, Any], chaos_log: list[str]) -> None:
    for line in chaos_log:
        print(line)
    print(
        f"{result['accepted']}/{result['deliveries']} webhooks accepted ({result['resends']} requests resent after "
        f"a kill), {result['events_per_second']} events/s handled; p99 ingest {result['ingest_p99_ms']} ms, "
        f"p99 webhook → handled {result['handled_p99_ms']} ms"
    )
    print(f"{result['approvals']} approvals clicked; p99 click → chat.update {result['click_to_update_p99_ms']} ms")
    print(
        f"{result['exchanges']} token exchanges ({result['exchanges_in_ledger']} in the ledger); {result['expiries']} "
        f"expiries, p99 fired {result['expiry_late_p99_ms']} ms after due; {result['sunsets']} sunsets "
        f"(retired through the API, or by their expiry), p99 start → retired {result['sunset_p99_ms']} ms"
    )
    print(f"phases (s): {result['phases_s']}")
    for line in result["lost_detail"]:
        print(f"lost: {line}")
    by_flow = ", ".join(f"{name} {n}/{result['doubled_by_flow'][name]}" for name, n in result["lost_by_flow"].items())
    print(f"lost/doubled by flow: {by_flow}")
    print(f"lost {result['lost']}, doubled {result['doubled']}, violations {result['violations']}")
    print(json.dumps({"soak": result}))


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
    parser.add_argument(
        "--exchange-every", type=int, default=5, help="a token exchange for every Nth webhook (0: none)"
    )
    parser.add_argument("--expiries", type=int, default=10, help="apps whose expiry falls during the load")
    parser.add_argument("--sunsets", type=int, default=10, help="apps retired through the API during the load")
    parser.add_argument("--keep", action="store_true", help="keep the logs in the temporary directory")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    result = run(
        seconds, args.rate, args.broker, args.database_url, args.keep, args.click_every, args.exchange_every,
        args.expiries, args.sunsets,
    )  # fmt: skip
    sys.exit(1 if result["lost"] or result["doubled"] or result["violations"] else 0)


if __name__ == "__main__":
    main()
