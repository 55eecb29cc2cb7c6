"""Push → "approval request posted" latency against a real `orchestrator up`, embedded default and Redis.

    python -m bench.push_latency [--pushes 50] [--rate 1] [--warmup 4] [--redis redis://127.0.0.1:6379/12]
                                 [--broker sqla+sqlite:///… | redis://…] [--skip-poll] [--skip-redis] [--keep]

For each broker — the embedded one polling alone (EMBEDDED_BROKER_WAKEUP=false, "emb-poll"), the
embedded one with its doorbell (the default), Redis — it runs `orchestrator up` (API + worker -c 2 +
scheduler, as `make run` does) in a data directory of its own (SQLite catalog; the embedded broker
file beside it unless --broker or the Redis run says otherwise), with a local Slack
(`bench/fake_slack.py`, which records when `chat.postMessage` arrives) and a local GitHub that
serves the pushed commit as a tarball. --warmup + --pushes restricted apps are catalogued in
production (restricted apps are never approved automatically); --warmup of them get a push at once
(the first review in each worker process loads the checks' data: reported apart as "cold"), then
each of the others one signed `push` webhook, --rate per second. A push goes: webhook → event
(outbox) → ingest queue → the re-review is queued → reviews queue → review runs → approval request
→ notifications queue → chat.postMessage. Printed, per broker:

- push → approval request posted: p50/p95/max (target p95 < 1 s on the embedded default);
- where the time goes: the median of each hop, from the rows' timestamps (webhook → event row,
  → published, → the review queued and published, → review started, → review finished,
  → posted).

Redis (the production setup) is the baseline of the same run; the Redis database given is flushed
before and after (use one nothing else uses).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.local_http import QuietHandler, base_url, serve, shut

APP_CODE = "def handler(event):\n    return {'status': 200}\n"
OWNER = "maker@example.com"
HOPS = [
    ("webhook → event row", "sent", "received"),
    ("event → published", "received", "published"),
    ("published → review queued and published", "published", "review_published"),
    ("review published → started", "review_published", "review_started"),
    ("review started → finished", "review_started", "review_finished"),
    ("review finished → posted", "review_finished", "posted"),
]


# ----------------------------------------------------------------------------- a local GitHub


@dataclass
class TarballGitHub:
    """`GET /repos/{o}/{r}/commits/{ref}` (any ref: the sha pushed) and the tarball of every commit.

    Every repository holds the same clean app; the tarball is built once.
    """

    token: str
    tarball: bytes = b""
    _server: Any = None
    requests: list[str] = field(default_factory=list)

    def start(self) -> str:
        """Serve on a free port; the base URL, for GITHUB_API_URL."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            data = APP_CODE.encode()
            info = tarfile.TarInfo("bench-app-0000000/app.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.tarball = buffer.getvalue()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                fake.requests.append(self.path)
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 5 and parts[0] == "repos" and parts[3] == "commits":
                    self.reply(200, parts[4].encode(), "application/vnd.github.sha")
                elif len(parts) == 5 and parts[0] == "repos" and parts[3] == "tarball":
                    self.reply(200, fake.tarball, "application/x-gzip")
                else:
                    self.reply(404, b'{"message": "Not Found"}')

        self._server = serve(Handler)
        return base_url(self._server)

    def stop(self) -> None:
        """Stop serving."""
        shut(self._server)


# ----------------------------------------------------------------------------- set-up


def _seed(count: int, slack_ids: dict[str, str]) -> list[tuple[str, str, str]]:
    """`count` restricted apps in production, as (id, name, repo URL); their set-up events marked handled."""
    from sqlalchemy import update

    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Stage
    from orchestrator.catalog.manifest import parse_manifest
    from orchestrator.catalog.policy import get_policy
    from orchestrator.clock import utcnow
    from orchestrator.db import migrate, session_scope
    from orchestrator.events.models import Event, EventStatus

    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate()
    apps = []
    with session_scope() as session:
        for email, user_id in slack_ids.items():
            catalog.ensure_person(session, email).slack_user_id = user_id
        for i in range(count):
            name, url = f"Push Bench {i:03d}", f"https://github.com/bench/push-{i:03d}"
            raw = {"name": name, "owner": OWNER, "data_class": "restricted", "repo": url, "scopes": ["repo:read"]}
            app, _ = catalog.register_app(
                session, parse_manifest(raw), actor=OWNER, policy=get_policy(), source="bench"
            )
            app.default_branch = "main"
            app.stage = Stage.production  # catalogued and approved earlier: a push asks for a re-review
            apps.append((app.id, name, url))
        # The registrations' own events would start reviews of their own; the bench measures pushes only.
        session.execute(update(Event).values(status=EventStatus.handled, handled_at=utcnow()))
    return apps


def _push(url: str, secret: str) -> tuple[bytes, dict[str, str]]:
    from orchestrator.http.github import signature_for

    full_name = url.split("github.com/")[1]
    body = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": secrets.token_hex(20),
        "repository": {"full_name": full_name, "html_url": url, "default_branch": "main", "clone_url": url + ".git"},
        "pusher": {"name": "maker", "email": OWNER},
        "sender": {"login": "maker"},
        "commits": [],
    }
    raw = json.dumps(body).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_for(secret, raw),
        "Content-Type": "application/json",
    }
    return raw, headers


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _hop_times(app_ids: list[str]) -> dict[str, dict[str, float | None]]:
    """Per app, the timestamps the rows recorded along the way (wall clock, seconds)."""
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.events.models import Event
    from orchestrator.reviews.models import Review

    out: dict[str, dict[str, float | None]] = {}
    with session_scope(write=False) as session:
        for app_id in app_ids:
            event = session.exec(
                select(Event)
                .where(Event.app_id == app_id, Event.type == "app.updated")
                .order_by(col(Event.received_at))
            ).first()
            review = session.exec(select(Review).where(Review.app_id == app_id).order_by(col(Review.id))).first()
            out[app_id] = {
                "received": _ts(event.received_at) if event else None,
                "published": _ts(event.published_at) if event else None,
                "review_published": _ts(review.published_at) if review else None,
                "review_started": _ts(review.started_at) if review else None,
                "review_finished": _ts(review.finished_at) if review else None,
            }
    return out


# ----------------------------------------------------------------------------- one run


def run_once(
    label: str, broker_url: str | None, args: argparse.Namespace, root: Path, *, wakeup: bool = True
) -> dict[str, Any]:
    """`orchestrator up` on `broker_url` (None: the embedded default); push latencies and hop medians."""
    from bench.fake_slack import FakeSlack
    from bench.harness import free_port, spawn, wait_until
    from bench.slack_requests import CHANNELS, SLACK_IDS
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines

    data = root / label
    data.mkdir()
    slack = FakeSlack(token="-".join(["xoxb", secrets.token_hex(6), secrets.token_hex(12)]))
    for name, channel_id in CHANNELS.items():
        slack.add_channel(name, channel_id)
    for email, user_id in SLACK_IDS.items():
        slack.add_user(email, user_id)
    github = TarballGitHub(token=secrets.token_hex(12))
    secret = secrets.token_hex(16)
    port = free_port()
    env = {
        "DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'orchestrator.db'}",
        "BROKER_URL": broker_url or f"sqla+sqlite:///{data / 'broker.db'}",
        "GITHUB_WEBHOOK_SECRET": secret,
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
        "GITHUB_API_URL": github.start(),
        "GITHUB_TOKEN": github.token,
        "REVIEW_FETCH": "github-tarball",
        "REVIEW_WORK_DIR": str(data / "work"),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.start(),
        "CREDENTIAL_KEY": secrets.token_urlsafe(32),
        "LOG_LEVEL": args.log_level,
        "DEMO_DATA": "false",
        "EMBEDDED_BROKER_WAKEUP": "true" if wakeup else "false",
    }
    if broker_url is None or not broker_url.startswith("redis"):
        env["REDIS_URL"] = ""  # empty is unset: no Redis at all, as on a laptop
    os.environ.update(env)
    get_settings.cache_clear()
    reset_engines()
    seeded = _seed(args.warmup + args.pushes, SLACK_IDS)
    warm, apps = seeded[: args.warmup], seeded[args.warmup :]
    up = spawn(
        [sys.executable, "-m", "orchestrator.cli", "up", "--port", str(port), "--concurrency", "2"],
        env=env,
        log_path=data / "up.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(base) or up.popen.poll() is not None, timeout=90, what="orchestrator up")
        if up.popen.poll() is not None:
            raise SystemExit(f"orchestrator up exited:\n{up.log()[-3000:]}")
        time.sleep(args.settle)  # a person pushes some seconds after `make run` says ready
        sent: dict[str, float] = {}
        with httpx.Client(base_url=base, timeout=10) as client:
            # The first review in each worker process loads the checks' data (seconds): pushes sent
            # together first, timed apart, so that the paced pushes measure the steady state.
            cold_sent = {app_id: _send_push(client, url, secret) for app_id, _, url in warm}
            wait_until(lambda: len(_posted(slack, warm)) >= len(warm), timeout=args.timeout, what="warm-up posted")
            cold_posted = _posted(slack, warm)
            start = time.monotonic()
            for n, (app_id, _, url) in enumerate(apps):
                time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
                sent[app_id] = _send_push(client, url, secret)
        wait_until(lambda: len(_posted(slack, apps)) >= len(apps), timeout=args.timeout, what="every request posted")
        posted = _posted(slack, apps)
        hops = _hop_times([a for a, _, _ in apps])
    finally:
        up.stop(timeout=30)
        slack.stop()
        github.stop()
        if args.keep:
            print(f"{label}: logs and database kept in {data}")
    latencies = [(posted[a] - sent[a]) * 1000 for a in sent]
    cold = [(cold_posted[a] - cold_sent[a]) * 1000 for a in cold_sent]
    rows: dict[str, list[float]] = {}
    for app_id, times in hops.items():
        times = {**times, "sent": sent[app_id], "posted": posted[app_id]}
        for hop, begin, end in HOPS:
            if times.get(begin) is not None and times.get(end) is not None:
                rows.setdefault(hop, []).append((times[end] - times[begin]) * 1000)  # type: ignore[operator]
    return {"latencies": latencies, "hops": rows, "cold": cold}


def _send_push(client: httpx.Client, url: str, secret: str) -> float:
    """POST one signed push; when it was sent (wall clock)."""
    raw, headers = _push(url, secret)
    at = time.time()
    response = client.post("/webhooks/github", content=raw, headers=headers)
    if response.status_code != 202:
        raise SystemExit(f"push refused: {response.status_code} {response.text[:300]}")
    return at


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _posted(slack: Any, apps: list[tuple[str, str, str]]) -> dict[str, float]:
    """When the approval request of each app reached chat.postMessage (the first post naming it)."""
    out: dict[str, float] = {}
    with slack.lock:
        posts = [r for r in slack.requests if r.method == "chat.postMessage"]
    for rec in posts:
        text = json.dumps(rec.params)
        for app_id, name, _ in apps:
            if app_id not in out and name in text:
                out[app_id] = rec.at
    return out


def pct(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); the value itself for a single one."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    """Run the embedded default, then Redis, and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1.0, help="pushes per second")
    parser.add_argument("--broker", default=None, help="the broker of the first run (default: the embedded one)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="the baseline's broker")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--warmup", type=int, default=4, help="pushes sent together first, timed apart")
    parser.add_argument("--settle", type=float, default=0.0, help="seconds from ready to the warm-up pushes")
    parser.add_argument("--skip-poll", action="store_true", help="skip the embedded broker without its doorbell")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-push-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        if args.broker is None and not args.skip_poll:
            results["emb-poll"] = run_once("emb-poll", None, args, root, wakeup=False)
        first = "embedded" if args.broker is None else args.broker.split(":")[0]
        results[first] = run_once(first, args.broker, args, root)
        if not args.skip_redis:
            redis.Redis.from_url(args.redis).flushdb()
            try:
                results["redis"] = run_once("redis", args.redis, args, root)
            finally:
                redis.Redis.from_url(args.redis).flushdb()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(f"{args.pushes} signed pushes at {args.rate:g}/s → approval request posted; `orchestrator up` -c 2; "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'broker':<10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cold max':>9}")
    for label, figures in results.items():
        lat = figures["latencies"]
        cold = max(figures["cold"]) if figures["cold"] else 0.0
        print(f"{label:<10} {pct(lat, 50):>8.0f} {pct(lat, 95):>8.0f} {max(lat):>8.0f} {cold:>9.0f}")
    print(f"(cold: the {args.warmup} warm-up pushes sent together right after start-up, not counted above)")
    print("\nmedian of each hop (ms):")
    labels = list(results)
    print(f"{'hop':<40}" + "".join(f" {label:>10}" for label in labels))
    for hop, _, _ in HOPS:
        cells = [results[label]["hops"].get(hop) for label in labels]
        print(f"{hop:<40}" + "".join(f" {statistics.median(c):>10.0f}" if c else f" {'-':>10}" for c in cells))
    if "redis" in results:
        base = results["redis"]["latencies"]
        print()
        for label in labels[:-1]:
            lat = results[label]["latencies"]
            print(f"{label} / redis: p50 {pct(lat, 50) / pct(base, 50):.1f}x, p95 {pct(lat, 95) / pct(base, 95):.1f}x")
    main_label = "embedded" if "embedded" in results else labels[0]
    target = pct(results[main_label]["latencies"], 95)
    print(f"target p95 < 1 s on {main_label}: {'met' if target < 1000 else 'NOT met'} ({target:.0f} ms)")


if __name__ == "__main__":
    main()
