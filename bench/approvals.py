"""Slack approval clicks: how fast the click is acknowledged, and how fast the message is updated.

    python -m bench.approvals [--clicks 200] [--rate 10] [--redis redis://127.0.0.1:6379/14 | --embedded]
                              [--database-url postgresql+psycopg://…]

One uvicorn process serves the orchestrator plus a bare endpoint that only verifies the Slack
signature and answers 200 (the same-run baseline: same server, middleware, body and signing). A
real Celery worker (2 processes) on Redis handles the clicks; Slack is the local test server
(`bench/fake_slack.py`). Each approval message is posted first, then clicked once by an
approver, alternating with a signed request to the baseline endpoint. Measured:

- click ack: POST /slack/interactions round trip (target p99 < 100 ms), next to the baseline's;
- click → chat.update: from sending the click to the local Slack receiving `chat.update` for that
  message (target < 2 s), clicks paced at --rate per second.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

ECHO_PATH = "/bench/echo"


def bench_app() -> FastAPI:
    """The real API plus the baseline: verify the signature, answer an empty 200."""
    from orchestrator.config import get_settings
    from orchestrator.http.app import create_app
    from orchestrator.http.slack import verify_signature

    app = create_app()
    secret = get_settings().slack_signing_secret
    assert secret is not None

    @app.post(ECHO_PATH)
    async def echo(request: Request) -> Response:
        verify_signature(await request.body(), request.headers, secret=secret.get_secret_value())
        return Response(status_code=200)

    return app


def _seed(count: int) -> list[int]:
    from bench.slack_requests import open_request, seed_app
    from orchestrator.db import migrate, session_scope

    migrate()
    ids = []
    with session_scope() as session:
        for i in range(count):
            ids.append(open_request(session, seed_app(session, name=f"Bench App {i:04d}")).id or 0)
    return ids


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _row(name: str, values: list[float]) -> str:
    return (f"{name:<24} {len(values):>5} {_pct(values, 50):>8.1f} {_pct(values, 90):>8.1f} "
            f"{_pct(values, 95):>8.1f} {_pct(values, 99):>8.1f} {max(values):>8.1f}")  # fmt: skip


def main() -> None:
    """Set everything up, click every approval once, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="clicks per second")
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument(
        "--embedded", action="store_true", help="the embedded default broker (SQLite, `make run`) instead of Redis"
    )
    parser.add_argument("--database-url", default=None, help="default: a throw-away SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the logs (api.log, worker.log) and print where")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()

    from bench.fake_slack import FakeSlack
    from bench.harness import free_port, spawn, start_worker, wait_until
    from bench.slack_requests import APPROVER, CHANNELS, SLACK_IDS

    tmp = Path(tempfile.mkdtemp(prefix="bench-approvals-"))
    slack = FakeSlack(token="-".join(["xoxb", secrets.token_hex(6), secrets.token_hex(12)]))
    for name, channel_id in CHANNELS.items():
        slack.add_channel(name, channel_id)
    for email, user_id in SLACK_IDS.items():
        slack.add_user(email, user_id)
    secret = secrets.token_hex(16)
    env = {
        "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
        "BROKER_URL": f"sqla+sqlite:///{tmp}/broker.db" if args.embedded else args.redis,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.start(),
        "SLACK_SIGNING_SECRET": secret,
        "LOG_LEVEL": args.log_level,
    }
    os.environ.update(env)
    ids = _seed(args.clicks + WARMUP)
    warmup_ids, approval_ids = ids[:WARMUP], ids[WARMUP:]
    worker = start_worker(env=env, log_path=tmp / "worker.log", queues="notifications", concurrency=2)
    port = free_port()
    api = spawn([sys.executable, "-m", "uvicorn", "bench.approvals:bench_app", "--factory", "--port", str(port),
                 "--log-level", "warning", "--no-access-log"], env=env, log_path=tmp / "api.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    user_id = SLACK_IDS[APPROVER]
    try:
        wait_until(lambda: len(_message_ts()) == len(ids), timeout=300, what="approval messages posted")
        ts_of = _message_ts()
        wait_until(lambda: _up(base), timeout=60, what="API up")
        # Warm-up on real approvals (imports, connections, caches in every process); not measured.
        _clicks(base, warmup_ids, ts_of, secret, args.rate, user_id)
        wait_until(lambda: _updated(slack) >= WARMUP, timeout=300, what="warm-up messages updated")
        results = _clicks(base, approval_ids, ts_of, secret, args.rate, user_id)
        wait_until(lambda: _updated(slack) >= len(ids), timeout=300, what="every message updated")
    finally:
        api.stop()
        worker.stop()
        slack.stop()
    updated_at: dict[str, float] = {}
    for rec in slack.requests:
        if rec.method == "chat.update":
            updated_at.setdefault(rec.params["ts"], rec.at)
    e2e = [(updated_at[ts] - sent) * 1000 for ts, sent in results["sent_at"].items()]
    _report(args, results["echo"], results["ack"], e2e)
    if args.keep:
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


WARMUP = 20


def _updated(slack: Any) -> int:
    return len({c["ts"] for c in slack.calls("chat.update")})


def _message_ts() -> dict[int, str]:
    from sqlmodel import col, select

    from orchestrator.approvals.models import ApprovalRequest
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = session.exec(select(ApprovalRequest).where(col(ApprovalRequest.message_ts).is_not(None))).all()
        return {a.id or 0: a.message_ts or "" for a in rows}


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _clicks(base: str, approval_ids: list[int], ts_of: dict[int, str], secret: str, rate: float,
            user_id: str) -> dict[str, Any]:  # fmt: skip
    from bench.slack_requests import click, sign

    echo: list[float] = []
    ack: list[float] = []
    sent_at: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        start = time.monotonic()
        for n, approval_id in enumerate(approval_ids):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            ts = ts_of[approval_id]
            body = click("approval.approve", str(approval_id), user_id=user_id, ts=ts)
            t0 = time.perf_counter()
            assert client.post(ECHO_PATH, content=body, headers=sign(body, secret)).status_code == 200
            echo.append((time.perf_counter() - t0) * 1000)
            sent_at[ts] = time.time()
            t0 = time.perf_counter()
            response = client.post("/slack/interactions", content=body, headers=sign(body, secret))
            ack.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.text
    return {"echo": echo, "ack": ack, "sent_at": sent_at}


def _report(args: argparse.Namespace, echo: list[float], ack: list[float], e2e: list[float]) -> None:
    db = "PostgreSQL" if args.database_url else "SQLite (embedded default)"
    broker = "embedded SQLite broker" if args.embedded else "Redis broker"
    print(f"{args.clicks} clicks at {args.rate:g}/s; {db}; {broker}; worker 2 processes; {os.cpu_count()} CPUs")
    print(f"{'measure (ms)':<24} {'n':>5} {'p50':>8} {'p90':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    print(_row("baseline signed echo", echo))
    print(_row("click ack", ack))
    print(_row("click -> chat.update", e2e))
    p50, p99 = _pct(ack, 50) / _pct(echo, 50), _pct(ack, 99) / _pct(echo, 99)
    print(f"ratio click ack / baseline: p50 {p50:.2f}, p99 {p99:.2f}")
    print(f"target click ack p99 < 100 ms: {'met' if _pct(ack, 99) < 100 else 'NOT met'}")
    print(f"target click -> update < 2 s (p99): {'met' if _pct(e2e, 99) < 2000 else 'NOT met'}; "
          f"max {max(e2e):.0f} ms")  # fmt: skip
    if args.embedded:
        print(f"target click -> update p95 < 1 s on the embedded default: "
              f"{'met' if _pct(e2e, 95) < 1000 else 'NOT met'} ({_pct(e2e, 95):.0f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
