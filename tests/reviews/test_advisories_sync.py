"""`orchestrator advisories sync` against a local HTTP server that serves OSV-style export zips.

The server answers like OSV's bucket (`/<ecosystem>/all.zip`) under a path prefix that picks its
behaviour: a whole zip, a zip cut short (honest or lying Content-Length), a 404, a partial export, or a
server too slow for the timeout. Every failure must keep the set in use.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.local_http import QuietHandler, base_url, serve, shut
from orchestrator.catalog.policy import load_policy
from orchestrator.config import Settings, get_settings
from orchestrator.reviews.advisories_sync import sync_advisories
from orchestrator.reviews.checks.advisory_sets import build_index, read_set, synced_path
from orchestrator.reviews.checks.dependencies import check_dependencies, parse_package_json


def _osv(adv_id: str, ecosystem: str, name: str, fixed: str, modified: str, **extra: Any) -> dict[str, Any]:
    kind = "SEMVER" if ecosystem == "npm" else "ECOSYSTEM"
    return {
        "id": adv_id,
        "modified": modified,
        "summary": f"{name} is vulnerable",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": kind, "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
        **extra,
    }


def _zip(advisories: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for adv in advisories:
            archive.writestr(f"{adv['id']}.json", json.dumps(adv))
    return buffer.getvalue()


NPM = [_osv(f"GHSA-npm-{i}", "npm", "lodash", "4.17.21", f"2026-11-{10 + i}T00:00:00Z") for i in range(6)]
NPM.append(_osv("GHSA-gone", "npm", "lodash", "4.17.21", "2026-12-01T00:00:00Z", withdrawn="2026-12-02T00:00:00Z"))
PYPI = [_osv(f"PYSEC-x-{i}", "PyPI", "requests", "2.32.0", f"2026-11-{20 + i}T00:00:00Z") for i in range(6)]
WHOLE = {"npm": _zip(NPM), "PyPI": _zip(PYPI)}


class Handler(QuietHandler):
    """`/<mode>/<ecosystem>/all.zip`."""

    def do_GET(self) -> None:
        _, mode, ecosystem, _file = self.path.split("/", 3)
        body = WHOLE.get(ecosystem)
        if body is None or mode == "missing":
            self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        elif mode == "whole":
            self.reply(200, body, "application/zip")
        elif mode == "truncated":  # an honest length, but the zip's central directory is gone
            self.reply(200, body[: len(body) // 2], "application/zip")
        elif mode == "cut":  # the server promises the whole zip and hangs up halfway
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif mode == "partial":  # a valid zip with one advisory of the six
            self.reply(200, _zip((NPM if ecosystem == "npm" else PYPI)[:1]), "application/zip")
        elif mode == "slow":
            time.sleep(3)
            self.reply(200, body, "application/zip")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The local export server's base URL."""
    srv = serve(Handler)
    yield base_url(srv)
    shut(srv)


def _settings(tmp_path: Path, server: str, mode: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        advisories_url_template=f"{server}/{mode}/{{ecosystem}}/all.zip",
        advisories_sync_timeout_seconds=1,
    )


def test_sync_installs_both_ecosystems_and_reviews_use_them(tmp_path: Path, server: str) -> None:
    """A whole export replaces the set: counts (withdrawn left out) and date reported, and the review's
    index names the synced sets instead of the shipped snapshot and of 'no advisories for npm'."""
    outcomes = {o.ecosystem: o for o in sync_advisories(_settings(tmp_path, server, "whole"))}
    assert outcomes["npm"].replaced and outcomes["npm"].count == 6 and outcomes["npm"].date == "2026-11-15"
    assert outcomes["pypi"].replaced and outcomes["pypi"].count == 6 and outcomes["pypi"].date == "2026-11-25"
    assert not list(tmp_path.glob("advisories/.*"))  # no temporary file left behind
    index = build_index(advisories_dir=None, data_dir=tmp_path)
    assert {(s.ecosystem, s.date, s.count) for s in index.sets} == {("pypi", "2026-11-25", 6), ("npm", "2026-11-15", 6)}
    assert index.describe()["notes"] == []
    deps = parse_package_json('{"dependencies": {"lodash": "4.17.20"}}', "package.json")
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=index)
    assert {f.extra.get("advisory") for f in findings if f.rule == "vulnerable-dependency"} == {
        f"GHSA-npm-{i}" for i in range(6)
    }


@pytest.mark.parametrize("mode", ["truncated", "cut", "missing", "partial", "slow"])
def test_a_bad_download_keeps_the_old_set(tmp_path: Path, server: str, mode: str) -> None:
    """Truncated or cut-off zips, a 404, a partial export and a timeout all leave the installed set as it was."""
    sync_advisories(_settings(tmp_path, server, "whole"), ["npm"])
    before = synced_path(tmp_path, "npm").read_bytes()
    started = time.monotonic()
    (outcome,) = sync_advisories(_settings(tmp_path, server, mode), ["npm"])
    assert not outcome.replaced and outcome.error
    assert (outcome.count, outcome.date) == (6, "2026-11-15")  # the set still in use
    assert synced_path(tmp_path, "npm").read_bytes() == before
    assert not list(tmp_path.glob("advisories/.*"))
    expected = {
        "truncated": "not a readable zip",
        "cut": "complete message body",
        "missing": "HTTP 404",
        "partial": "partial",
        "slow": "1 s",
    }
    assert expected[mode] in outcome.error
    if mode == "slow":
        assert time.monotonic() - started < 2.9  # gave up at the timeout, did not wait for the server


def test_first_sync_failing_leaves_no_set(tmp_path: Path, server: str) -> None:
    """With nothing installed yet, a failed sync installs nothing (reviews keep the shipped snapshot)."""
    (outcome,) = sync_advisories(_settings(tmp_path, server, "truncated"), ["PyPI"])
    assert not outcome.replaced and outcome.count == 0 and read_set(synced_path(tmp_path, "pypi")) is None


def test_cli_reports_counts_dates_and_exit_codes(tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`orchestrator advisories sync --json` prints per-ecosystem results; a failure exits 1."""
    from orchestrator.cli.advisories import app

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ADVISORIES_SYNC_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ADVISORIES_URL_TEMPLATE", f"{server}/whole/{{ecosystem}}/all.zip")
    get_settings.cache_clear()
    try:
        ok = CliRunner().invoke(app, ["sync", "--json"])
        assert ok.exit_code == 0, ok.output
        sets = {s["ecosystem"]: s for s in json.loads(ok.output)["sets"]}
        assert (sets["npm"]["advisories"], sets["npm"]["date"], sets["npm"]["replaced"]) == (6, "2026-11-15", True)
        status = CliRunner().invoke(app, ["status"])
        assert "npm: OSV export" in status.output and "2026-11-15" in status.output
        monkeypatch.setenv("ADVISORIES_URL_TEMPLATE", f"{server}/missing/{{ecosystem}}/all.zip")
        get_settings.cache_clear()
        bad = CliRunner().invoke(app, ["sync", "--ecosystem", "npm"])
        assert bad.exit_code == 1 and "kept old set" in bad.output and "HTTP 404" in bad.output
    finally:
        get_settings.cache_clear()


def test_the_leader_syncs_daily_from_the_policy() -> None:
    """The scheduler lists the sync job; its interval is the policy's `advisories_sync_hours` (24 h)."""
    from schedules.engine import TimerEngine, job_interval_seconds
    from schedules.jobs import JOBS

    job = {j.id: j for j in JOBS}["sync-advisories"]
    assert job_interval_seconds(job, get_settings()) == 24 * 3600
    assert callable(TimerEngine.sync_advisories)
