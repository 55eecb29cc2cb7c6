"""KPIs at scale: `GET /api/v1/kpis` for a year and its weekly series on a large PostgreSQL catalog.

    python -m bench.kpis [--apps 100000] [--runs 20] [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
                         [--database-url …  --no-populate] [--keep]

Loading 100,000 apps takes a minute: `--keep` leaves the database made for the run (its URL is printed
at the end) and `--database-url URL --no-populate` runs again on it (migrated to the newest schema first,
its rows kept). Creates a database of its own on --admin-url (dropped at the end unless --keep), migrates it and
fills it server-side (generate_series) with --apps apps, 10 audit entries, 2 findings, 1 review, 1
credential and 1.1 approval requests per app, spread over the last two years, and 3 LLM connector calls for
every third app (a fifth of them blocked, a third with values redacted). Then, in the same run:

- baseline 1: `SELECT count(*)` over the same six tables (the floor of any read of them);
- baseline 2: the naive way, every row of those tables loaded into Python and four of the KPIs
  (time to production, onboarded share, time to approve, time to remediate) computed there;
- the report (`orchestrator.kpis.service.report`) called directly, each group of `service.TASKS` on its
  own, and `report_concurrently` interleaved with `GET /api/v1/kpis` for the
  last 365 days through the real app (TestClient): p50 and p95 over --runs (target p95 < 500 ms),
  computed for every request (KPI_CACHE_SECONDS=0) and as served with the response cache on (the
  default: the first request computes, the next ones within KPI_CACHE_SECONDS reuse it);
- `GET /api/v1/kpis/series?interval=week` over the same year for every KPI that has a series:
  p95 of the slowest one (target < 1 s), computed for every request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

TABLES = ("microapp", "audit_entry", "review_finding", "approval_request", "credential", "llm_usage")

POPULATE = [
    """
    INSERT INTO microapp (id, name, description, owner_email, co_owners, team, data_class, stage, connectors,
        requested_scopes, external_endpoints, llm, manifest, created_at, updated_at, approved_at, expires_at,
        legal_hold, version, registered_by)
    SELECT 'app-' || g, 'App ' || g, '', 'maker' || (g % 5000) || '@example.com', '[]'::json, 'team-' || (g % 50),
        (ARRAY['public','internal','restricted','regulated'])[1 + g % 4],
        (ARRAY['production','production','production','production','production','production','production',
               'production','production','production','in_review','in_review','registered','rejected',
               'engineering','expiring','orphaned','sunsetting','retired','retired'])[1 + g % 20],
        '[]'::json, '[]'::json, '[]'::json, '{}'::json, '{}'::json, c, c, NULL,
        CASE WHEN g % 20 IN (12, 13, 14, 15) THEN :now + ((g % 60) || ' days')::interval END,
        false, 1, 'maker' || (g % 5000) || '@example.com'
    FROM (SELECT g, :now - (((g * 7919) % (730 * 24)) || ' hours')::interval AS c
          FROM generate_series(1, :apps) AS g) AS s
    """,
    """
    INSERT INTO audit_entry (seq, at, app_id, actor, action, reason, data, prev_hash, hash)
    SELECT (g - 1) * 10 + k, m.created_at + ((k * 6 + (g % 5) * k) || ' hours')::interval, m.id, 'policy',
        CASE k
            WHEN 1 THEN 'app.registered'
            WHEN 2 THEN 'lifecycle.submit_for_review'
            WHEN 3 THEN 'approval.requested'
            WHEN 4 THEN CASE WHEN g % 10 < 7 THEN 'lifecycle.approve' ELSE 'lifecycle.reject' END
            WHEN 5 THEN CASE WHEN g % 20 = 14 THEN 'lifecycle.escalate' ELSE 'review.completed' END
            WHEN 6 THEN 'review.queued'
            WHEN 7 THEN CASE g % 20 WHEN 16 THEN 'lifecycle.orphan' WHEN 17 THEN 'lifecycle.expire'
                        WHEN 18 THEN 'lifecycle.retire' WHEN 19 THEN 'lifecycle.retire'
                        ELSE 'notification.logged' END
            WHEN 8 THEN 'lifecycle.submit_for_review'
            WHEN 9 THEN CASE WHEN g % 10 < 7 THEN 'lifecycle.approve' ELSE 'review.completed' END
            ELSE CASE WHEN g % 50 = 0 THEN 'app.inactive' ELSE 'notification.logged' END
        END,
        '', '{}'::json, md5(((g - 1) * 10 + k - 1)::text), md5(((g - 1) * 10 + k)::text)
    FROM generate_series(1, :apps) AS g
    JOIN microapp AS m ON m.id = 'app-' || g
    CROSS JOIN generate_series(1, 10) AS k
    """,
    """
    INSERT INTO approval_request (app_id, kind, status, cycle, requested_by, decided_by, payload, created_at,
        decided_at)
    SELECT m.id, 'promotion',
        CASE WHEN g % 10 < 7 THEN 'approved' WHEN g % 10 < 9 THEN 'rejected' ELSE 'pending' END,
        1, 'policy', CASE WHEN g % 10 < 9 THEN 'approver@example.com' END, '{}'::json,
        m.created_at + interval '12 hours',
        CASE WHEN g % 10 < 9 THEN m.created_at + ((12 + g % 72) || ' hours')::interval END
    FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
    UNION ALL
    SELECT m.id, 'extension', CASE WHEN g % 20 = 0 THEN 'approved' ELSE 'rejected' END, 1, m.owner_email,
        'approver@example.com', '{}'::json, m.created_at + interval '20 days', m.created_at + interval '21 days'
    FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
    WHERE g % 10 = 0
    """,
    """
    INSERT INTO review (id, app_id, trigger, status, verdict, data_class, attempts, stats, skipped, created_at,
        finished_at)
    SELECT g, m.id, 'app.created', 'done', 'needs_approval', m.data_class, 1, '{}'::json, '[]'::json, m.created_at,
        m.created_at + interval '1 hour'
    FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
    """,
    "SELECT setval(pg_get_serial_sequence('review', 'id'), :apps)",
    """
    INSERT INTO review_finding (review_id, app_id, "check", rule, severity, fingerprint, preview, message, allowed,
        details, first_seen_review_id, first_seen_at, resolved_at, time_to_remediate_seconds)
    SELECT g, 'app-' || g, chk,
        CASE chk WHEN 'secrets' THEN 'aws-access-key' WHEN 'pii' THEN 'pii-email'
                 WHEN 'dependencies' THEN 'vulnerable-dependency' ELSE 'llm-direct-endpoint' END,
        (ARRAY['low','medium','high','critical'])[1 + (g * k) % 4], md5(g || ':' || k), '***', '', false, '{}'::json,
        g, seen, CASE WHEN (g + k) % 5 <> 0 THEN seen + (((g * k) % 30) || ' days')::interval END,
        CASE WHEN (g + k) % 5 <> 0 THEN ((g * k) % 30) * 86400.0 END
    FROM (
        SELECT g, k, (ARRAY['secrets','pii','dependencies','egress'])[1 + (g + k) % 4] AS chk,
            m.created_at + (k || ' days')::interval AS seen
        FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
        CROSS JOIN generate_series(1, 2) AS k
    ) AS f
    """,
    """
    INSERT INTO credential (app_id, provider, external_ref, subject, scopes, status, issued_at, revoke_attempts,
        details)
    SELECT m.id, CASE WHEN g % 10 = 3 THEN 'slack' ELSE 'builtin' END, 'ref-' || g, m.id, '[]'::json,
        CASE WHEN m.stage IN ('sunsetting', 'retired') THEN 'revoked' ELSE 'live' END, m.created_at, 0, '{}'::json
    FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
    """,
    """
    INSERT INTO llm_usage (at, app_id, provider, endpoint, model, prompt_tokens, completion_tokens, latency_ms,
        status_code, streamed, outcome, redactions)
    SELECT m.created_at + ((k * 5 + g % 24) || ' hours')::interval, m.id, 'openai', 'chat', 'gpt-4o-mini', 100, 20,
        250.0, CASE WHEN (g + k) % 10 = 0 THEN 403 WHEN (g + k) % 10 = 1 THEN 400 ELSE 200 END, false,
        CASE WHEN (g + k) % 10 IN (0, 1) THEN 'blocked' ELSE 'ok' END,
        CASE WHEN (g + k) % 10 IN (1, 2, 3) THEN '{"email": 1, "phone": 2}'::json ELSE '{}'::json END
    FROM generate_series(1, :apps) AS g JOIN microapp AS m ON m.id = 'app-' || g
    CROSS JOIN generate_series(1, 3) AS k
    WHERE g % 3 = 0
    """,
]


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(times: list[float]) -> str:
    return f"p50 {_p(times, 0.5) * 1000:7.1f} ms   p95 {_p(times, 0.95) * 1000:7.1f} ms"


def populate(engine: Engine, apps: int, now: datetime) -> None:
    """Fill the catalog server-side and refresh the planner's statistics."""
    from sqlmodel import Session

    from orchestrator.audit import milestones

    with engine.begin() as conn:
        for statement in POPULATE:
            conn.execute(text(statement), {"apps": apps, "now": now})
    # The audit entries went in server-side, around audit.service.record: derive their milestones as it would.
    with Session(engine) as session:
        milestones.rebuild(session)
        session.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def count_star(engine: Engine) -> None:
    """Baseline 1: one count(*) per table."""
    with engine.connect() as conn:
        for table in TABLES:
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def naive(engine: Engine, start: datetime, end: datetime) -> dict[str, Any]:
    """Baseline 2: every row into Python, four KPIs computed there."""
    with engine.connect() as conn:
        apps = {r.id: r for r in conn.execute(text("SELECT id, data_class, created_at, team, stage FROM microapp"))}
        first_approve: dict[str, datetime] = {}
        approved: set[str] = set()
        for app_id, action, at in conn.execute(text("SELECT app_id, action, at FROM audit_entry")):
            if action == "lifecycle.approve":
                approved.add(app_id)
                if app_id not in first_approve or at < first_approve[app_id]:
                    first_approve[app_id] = at
        requests = conn.execute(text("SELECT app_id, status, created_at, decided_at FROM approval_request")).all()
        findings = conn.execute(
            text(
                "SELECT review_id, first_seen_review_id, rule, resolved_at, time_to_remediate_seconds"
                " FROM review_finding"
            )
        ).all()
    ttp: dict[str, list[float]] = defaultdict(list)
    for app_id, at in first_approve.items():
        if start <= at < end:
            ttp[apps[app_id].data_class].append((at - apps[app_id].created_at).total_seconds())
    registered = [a for a in apps.values() if start <= a.created_at < end]
    decided = [
        (r.decided_at - r.created_at).total_seconds()
        for r in requests
        if r.decided_at is not None and start <= r.decided_at < end
    ]
    remediated = [
        f.time_to_remediate_seconds
        for f in findings
        if f.review_id == f.first_seen_review_id and f.resolved_at is not None and start <= f.resolved_at < end
    ]
    return {
        "time_to_production": {k: statistics.median(v) for k, v in ttp.items()},
        "onboarded": sum(a.id in approved for a in registered) / max(1, len(registered)),
        "time_to_approve": statistics.median(decided) if decided else None,
        "time_to_remediate": statistics.median(remediated) if remediated else None,
    }


def main() -> None:
    """Build the catalog, run the baselines and the KPIs, print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--admin-url", default=os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--database-url", default=None, help="use this (migrated) database instead of a new one")
    parser.add_argument("--no-populate", action="store_true", help="with --database-url: it is already filled")
    parser.add_argument("--keep", action="store_true", help="do not drop the database made for the run")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows through a pipe

    from orchestrator.clock import utcnow

    now = utcnow()
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    made = None
    url = args.database_url
    if url is None:
        made = f"bench_kpis_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{made}"'))
        url = make_url(args.admin_url).set(database=made).render_as_string(hide_password=False)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("BROKER_URL", "memory://")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one log line per request would swamp the figures
    try:
        _run(args, url, now, populate_first=not args.no_populate)
    finally:
        from orchestrator.db import reset_engines

        reset_engines()
        if made and not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)'))
        elif made:
            print(f"kept database: {url}")
        admin.dispose()


def _run(args: argparse.Namespace, url: str, now: datetime, *, populate_first: bool) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.catalog.policy import get_policy
    from orchestrator.config import get_settings
    from orchestrator.db import migrate, session_scope
    from orchestrator.http.app import create_app
    from orchestrator.kpis import definitions, service
    from orchestrator.kpis.stats import Scope

    get_settings.cache_clear()
    engine = create_engine(url)
    began = time.perf_counter()
    migrate(url)  # a kept database (--database-url … --no-populate) is brought to the newest schema, rows kept
    if not populate_first:
        # A migration may have rewritten rows (a backfill): the planner's statistics and a vacuumed heap,
        # as after a load, so that the figures compare with the run that loaded the database.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    print(f"migrated in {time.perf_counter() - began:.1f} s")
    if populate_first:
        began = time.perf_counter()
        populate(engine, args.apps, now)
        print(f"populated {args.apps:,} apps in {time.perf_counter() - began:.1f} s")
    with engine.connect() as conn:
        sizes = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in (*TABLES, "app_milestone")}
    print("rows: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()))

    start, end = now - timedelta(days=365), now
    scope = Scope(start, end)
    policy = get_policy()

    base = _timed(lambda: count_star(engine), args.runs)
    print(f"baseline count(*) over the 6 tables          {_ms(base)}")
    slow = _timed(lambda: naive(engine, start, end), 3)
    print(f"baseline naive Python over every row (4 KPIs) {_ms(slow)}")

    def direct() -> None:
        with session_scope(write=False) as session:
            service.report(session, scope, policy=policy)

    reports = _timed(direct, args.runs)
    print(f"service.report, one year (all KPIs)           {_ms(reports)}")
    # Each group of service.TASKS on its own (one after the other, as report_concurrently runs each one on a
    # thread): on 2 cores the report's wall time is about the sum of these over 2.
    per_group: dict[str, list[float]] = {}
    for kpis in service.TASKS:

        def one(kpis: tuple[str, ...] = kpis) -> None:
            service.report_group(kpis, scope, policy=policy, now=now)

        per_group[" + ".join(kpis)] = _timed(one, 5)
    for name, times in sorted(per_group.items(), key=lambda item: -_p(item[1], 0.5)):
        print(f"    {name:60s} p50 {_p(times, 0.5) * 1000:7.1f} ms")
    print(f"    {'sum of the groups':60s} p50 {sum(_p(t, 0.5) for t in per_group.values()) * 1000:7.1f} ms")

    with session_scope() as session:
        token = create_token(session, name="bench", role=Role.admin, person_email=None, actor="bench")
    headers = {"Authorization": f"Bearer {token}"}
    window = {"from": start.isoformat(), "to": end.isoformat()}
    cache_seconds = os.environ.get("KPI_CACHE_SECONDS")
    os.environ["KPI_CACHE_SECONDS"] = "0"  # every request computes, unless said otherwise below
    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        assert client.get("/api/v1/kpis", params=window, headers=headers).status_code == 200

        def http_report() -> None:
            response = client.get("/api/v1/kpis", params=window, headers=headers)
            assert response.status_code == 200, response.text

        # Interleaved, so that both meet the same load on a shared machine: the API's own cost is the difference.
        concurrent: list[float] = []
        api: list[float] = []
        for _ in range(args.runs):
            concurrent += _timed(lambda: service.report_concurrently(scope, policy=policy), 1)
            api += _timed(http_report, 1)
        print(f"service.report_concurrently (4 threads)       {_ms(concurrent)}")
        print(f"GET /api/v1/kpis, one year, computed          {_ms(api)}   (target p95 < 500 ms)")
        os.environ["KPI_CACHE_SECONDS"] = cache_seconds or "60"
        get_settings.cache_clear()
        first = _timed(http_report, 1)
        cached = _timed(http_report, args.runs)
        print(
            f"GET /api/v1/kpis, one year, cached            {_ms(cached)}   "
            f"(first request {first[0] * 1000:.1f} ms; KPI_CACHE_SECONDS={os.environ['KPI_CACHE_SECONDS']})"
        )
        os.environ["KPI_CACHE_SECONDS"] = "0"
        get_settings.cache_clear()
        worst: tuple[str, list[float]] | None = None
        for kpi in definitions.SERIES_IDS:

            def http_series(kpi: str = kpi) -> None:
                response = client.get(
                    "/api/v1/kpis/series", params={"kpi": kpi, "interval": "week", **window}, headers=headers
                )
                assert response.status_code == 200, response.text

            times = _timed(http_series, max(3, args.runs // 4))
            print(f"GET /api/v1/kpis/series {kpi:24s} {_ms(times)}")
            if worst is None or _p(times, 0.95) > _p(worst[1], 0.95):
                worst = (kpi, times)
        assert worst is not None
        print(f"slowest series: {worst[0]} p95 {_p(worst[1], 0.95) * 1000:.1f} ms   (target < 1 s)")
    print(
        f"ratios (p50): report / count(*) = {_p(reports, 0.5) / _p(base, 0.5):.1f}; "
        f"naive Python / report = {_p(slow, 0.5) / _p(reports, 0.5):.1f}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
