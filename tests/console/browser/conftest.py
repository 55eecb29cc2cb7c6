"""Browser fixtures: `orchestrator up` (API, worker, scheduler) on the demo catalog; headless Chromium.

Chromium is driven by Playwright for Python.

Chromium is the system one (/usr/bin/chromium, or CHROMIUM_PATH); `make test` installs it under CI
(scripts/ensure_services.py). Without it these tests skip locally and fail under CI=true. A failing
test saves a screenshot and the HTML of each page it opened under its temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.harness import Proc, free_port, spawn, wait_until

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[3]

# People of the demo catalog (orchestrator/catalog/demo_catalog.yaml) and the roles the tests give them.
PEOPLE = {
    "maria": ("maker", "maria.garcia@example.com"),
    "sam": ("maker", "sam.lee@example.com"),
    "platform": ("approver", "it-platform@example.com"),
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep each phase's report on the item, so fixtures know at teardown whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class LiveConsole:
    """The running API and one token per person (`alex` is the demo's printed admin token)."""

    url: str
    proc: Proc
    tokens: dict[str, str] = field(default_factory=dict)
    database_url: str = ""


def start_up(*, env: dict[str, str], log_path: Path, token: str, attempts: int = 3) -> tuple[Proc, str]:
    """`orchestrator up` (API, one worker, the scheduler) on a free port, once its API accepts `token`.

    `free_port` only says the port was free a moment ago: another test's server (the other xdist
    worker starts them too) can take it before our API binds it, and the port would then answer
    from that server, which stops when its test ends. So the console counts as ours only when it
    accepts this catalog's `token`; when the port was taken, `up` starts again on another one.
    """
    for attempt in range(1, attempts + 1):
        port = free_port()
        log = log_path.with_name(f"{log_path.stem}-{attempt}{log_path.suffix}") if attempt > 1 else log_path
        proc = spawn(
            [sys.executable, "-m", "orchestrator.cli", "up", "--port", str(port), "--concurrency", "1"],
            env={**env, "API_HOST": "127.0.0.1"},
            log_path=log,
        )
        base = f"http://127.0.0.1:{port}"
        answer: list[int] = []

        def _up(proc: Proc = proc, base: str = base, answer: list[int] = answer) -> bool:
            if proc.popen.poll() is not None:
                return True
            try:
                response = httpx.get(f"{base}/api/v1/apps", headers={"Authorization": f"Bearer {token}"}, timeout=5)
            except httpx.HTTPError:
                return False
            answer[:] = [response.status_code]
            return response.status_code in (200, 401)  # anything else: still starting (e.g. a 503)

        try:
            wait_until(_up, timeout=90, what="orchestrator up: API answering")
        except BaseException:
            proc.stop()  # its worker must not take the next tests' tasks
            print(f"orchestrator up (API last answered {answer}):\n{proc.log()[-3000:]}")
            raise
        if answer == [200] and proc.popen.poll() is None:
            return proc, base
        proc.stop()
        text = proc.log()
        if answer == [401] or "address already in use" in text.lower():  # the port is another server's
            continue
        raise AssertionError(f"orchestrator up did not start (API answered {answer}):\n{text[-3000:]}")
    raise AssertionError(f"orchestrator up found its port taken {attempts} times; the last:\n{text[-3000:]}")


@pytest.fixture
def live_console(tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest) -> Iterator[LiveConsole]:
    """`orchestrator demo` into a migrated SQLite copy, role tokens, then `orchestrator up` on the embedded default."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.db import get_engine, session_scope

    db_path = tmp_path / "orchestrator.db"
    shutil.copy(sqlite_template, db_path)
    database_url = f"sqlite:///{db_path}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "var"),
        "LOG_JSON": "true",
        "PYTHONPATH": str(REPO),
    }
    demo = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    found = re.search(r"ORCHESTRATOR_TOKEN=(\S+)", demo.stdout)
    assert found, demo.stdout[-1000:]
    tokens = {"alex": found.group(1)}
    with session_scope(url=database_url) as session:
        for who, (role, email) in PEOPLE.items():
            tokens[who] = create_token(session, name=who, role=Role(role), person_email=email, actor="test")
    get_engine(database_url).dispose()
    settings = {k: env[k] for k in ("DATABASE_URL", "DATA_DIR", "LOG_JSON")}
    marker = request.node.get_closest_marker("console_env")  # settings a test runs the console with
    settings.update(marker.kwargs if marker else {})
    if "slack" in request.fixturenames:  # the test asked for the local Slack: the console's workers post there
        fake = request.getfixturevalue("slack")
        settings.update(SLACK_BOT_TOKEN=fake.token, SLACK_API_URL=fake.base_url, SLACK_SIGNING_SECRET=uuid.uuid4().hex)
    proc, url = start_up(env=settings, log_path=tmp_path / "up.log", token=tokens["alex"])
    try:
        yield LiveConsole(url=url, proc=proc, tokens=tokens, database_url=database_url)
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:  # why the console stopped answering, if it did
            ended = proc.popen.poll()
            print(f"orchestrator up {'exited ' + str(ended) if ended is not None else 'still running'}; its log:")
            print(proc.log()[-6000:])
        proc.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless system Chromium under Playwright (no browser download).

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open,
    so it must be closed before other modules' tests call asyncio.run().
    """
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is not installed (apt-get install -y chromium; `make test` does it under CI)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(
    chromium: Any, live_console: LiveConsole, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    """`open_page(width=1280)`: a page in a fresh browser context (own cookies) on the live console."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def _open(width: int = 1280, height: int = 900) -> Any:
        context = chromium.new_context(
            base_url=live_console.url, viewport={"width": width, "height": height}, timezone_id="Europe/Berlin"
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield _open
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for n, page in enumerate(pages):
            try:
                page.screenshot(path=str(tmp_path / f"failure-{n}.png"), full_page=True)
                (tmp_path / f"failure-{n}.html").write_text(page.content(), encoding="utf-8")
            except Exception as exc:  # the page may be gone; the artefacts are best effort
                (tmp_path / f"failure-{n}.txt").write_text(repr(exc), encoding="utf-8")
        print(f"browser artefacts saved under {tmp_path}")
    for context in contexts:
        context.close()


def sign_in(page: Any, token: str) -> None:
    """Sign in through the form, as a person does."""
    page.goto("/console/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")


AXE = REPO / "tests" / "data" / "axe-core" / "axe.min.js"


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["html"][:120] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def docs_screenshot(page: Any, name: str) -> None:
    """With UPDATE_SCREENSHOTS=1, save the page as docs/<name>.png (the README shows them)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(REPO / "docs" / f"{name}.png"), full_page=False)
