"""End-to-end: people using the console in headless Chromium against the running API on the demo catalog."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bench.harness import wait_until
from tests.console.browser.conftest import LiveConsole, docs_screenshot, serious_violations, sign_in

pytestmark = pytest.mark.slow


def test_maker_filters_opens_extends_and_signs_out(open_page: Any, live_console: LiveConsole) -> None:
    """Sign in, filter the catalog (htmx swaps the results), open an app, ask for more time, see the
    timeline update, sign out; the catalog then asks to sign in again."""
    from playwright.sync_api import expect

    page = open_page()
    sign_in(page, live_console.tokens["maria"])
    expect(page.get_by_role("heading", name="Catalog")).to_be_visible()
    expect(page.locator("#results")).to_contain_text("Payroll Export Check")
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Search name or description").fill("expense")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#results")).not_to_contain_text("Payroll Export Check")
    expect(page).to_have_url(re.compile(r"q=expense"))
    assert page.evaluate("window.sameDocument === true"), "htmx should swap the results in place"
    page.get_by_role("link", name="Expense Helper").click()
    expect(page.get_by_role("heading", name=re.compile("Expense Helper"))).to_be_visible()
    page.get_by_label("Days (empty: the data class's maximum)").fill("14")
    page.get_by_label("Reason", exact=True).first.fill("quarter-end reporting")
    page.get_by_role("button", name="Request extension").click()
    expect(page.get_by_role("status").first).to_contain_text("Extension requested")
    expect(page.locator("ol")).to_contain_text("quarter-end reporting")
    # times are shown in the viewer's zone, with the UTC time on hover
    first_time = page.locator("time").first
    assert "UTC" in (first_time.get_attribute("title") or "")
    assert "UTC" not in first_time.inner_text()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status").first).to_contain_text("You are signed out.")
    page.goto("/console/")
    expect(page.get_by_label("API token")).to_be_visible()


def _decisions(database_url: str, app_id: str) -> tuple[list[tuple[Any, ...]], int]:
    """The app's extension requests (id, status, decided_by, channel, ts) and its count of approval.decided entries."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            requests = conn.execute(
                text(
                    "SELECT id, status, decided_by, channel, message_ts FROM approval_request"
                    " WHERE app_id = :app AND kind = 'extension'"
                ),
                {"app": app_id},
            ).all()
            decided = conn.execute(
                text("SELECT count(*) FROM audit_entry WHERE app_id = :app AND action = 'approval.decided'"),
                {"app": app_id},
            ).scalar_one()
    finally:
        engine.dispose()
    return [tuple(r) for r in requests], int(decided)


def test_two_approvers_decide_the_same_request(open_page: Any, live_console: LiveConsole, slack: Any) -> None:
    """Two approvers have the same request on screen and press at the same moment (one approves, one
    rejects): exactly one decision is written and audited, the other is told who decided first, and the
    Slack message of the request is updated once."""
    from playwright.sync_api import expect

    maker = open_page()
    sign_in(maker, live_console.tokens["maria"])
    maker.goto("/console/apps/expense-helper")
    maker.get_by_role("button", name="Request extension").click()
    expect(maker.get_by_role("status").first).to_contain_text("Extension requested")
    # The worker posts the request to Slack first, so its decision has a message to update.
    wait_until(
        lambda: bool(_decisions(live_console.database_url, "expense-helper")[0][0][4]),
        timeout=60,
        what="the request posted to Slack",
    )

    alex, platform = open_page(), open_page()
    sign_in(alex, live_console.tokens["alex"])
    sign_in(platform, live_console.tokens["platform"])
    cards = {}
    for who, page in (("alex", alex), ("platform", platform)):
        page.get_by_role("link", name="Approval inbox").click()
        cards[who] = page.locator("section", has=page.get_by_role("heading", name=re.compile("Expense Helper")))
        expect(cards[who]).to_be_visible()
    docs_screenshot(alex, "console-inbox")
    buttons = {}
    for who, decision in (("alex", "Approve"), ("platform", "Reject")):
        cards[who].get_by_label("Reason (required to reject)").fill(f"{who}: decided in the inbox")
        buttons[who] = cards[who].get_by_role("button", name=decision)
    # Both browsers press their button at the same wall-clock moment (one clock: the same browser process),
    # so both POSTs are in flight together and meet at the decision's compare-and-set.
    at = alex.evaluate("Date.now()") + 400
    with alex.expect_navigation(), platform.expect_navigation():
        for button in buttons.values():
            button.evaluate("(b, at) => setTimeout(() => b.click(), at - Date.now())", at)
    for page in (alex, platform):
        expect(page.get_by_role("heading", name="Approval inbox")).to_be_visible()

    requests, decided = _decisions(live_console.database_url, "expense-helper")
    assert decided == 1, f"{decided} approval.decided entries"
    ((_, status, decided_by, channel, ts),) = requests
    print(f"decided first: {decided_by} ({status})")  # shows, over runs, that either approver can win
    assert status in ("approved", "rejected")
    winner, loser = (alex, platform) if status == "approved" else (platform, alex)
    assert decided_by == ("approver@example.com" if status == "approved" else "it-platform@example.com")
    expect(winner.get_by_role("status").first).to_contain_text(status)
    expect(loser.get_by_role("alert")).to_contain_text(f"already decided by {decided_by} ({status})")
    # The Slack message is updated once, with the winner's decision.
    wait_until(lambda: any(c.get("ts") == ts for c in slack.calls("chat.update")), timeout=60, what="chat.update")
    loser.wait_for_timeout(1500)  # a second update would come from the loser's attempt: give it time to show
    updates = [c for c in slack.calls("chat.update") if c.get("ts") == ts and c.get("channel") == channel]
    assert len(updates) == 1, updates
    assert f"*{status.capitalize()}* by" in str(updates[0].get("blocks", "")), updates  # the winner's decision
    maker.reload()
    expect(maker.locator("ol")).to_contain_text("approval.decided")


def test_reject_needs_a_reason_and_refusals(open_page: Any, live_console: LiveConsole) -> None:
    """Reject without a reason: the error sits by the field; with one: rejected. A maker forcing another
    app's URL gets a clear 404 page; a forged CSRF token a 403 page; nothing changes."""
    from playwright.sync_api import expect

    sam = open_page()
    sign_in(sam, live_console.tokens["sam"])
    sam.goto("/console/apps/sales-forecast-bot")
    sam.get_by_role("button", name="Request extension").click()
    expect(sam.get_by_role("status").first).to_contain_text("Extension requested")
    answer = sam.goto("/console/apps/payroll-export-check")
    assert answer is not None and answer.status == 404
    expect(sam.get_by_role("heading", name="No such app")).to_be_visible()
    sam.goto("/console/apps/sales-forecast-bot")
    sam.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'forged')")
    sam.get_by_role("button", name="Retire the app").click()
    expect(sam.get_by_role("heading", name="Form refused")).to_be_visible()
    sam.goto("/console/apps/sales-forecast-bot")
    expect(sam.get_by_role("heading", name=re.compile("Sales Forecast Bot"))).to_contain_text("engineering")

    platform = open_page(width=390, height=844)  # a phone
    sign_in(platform, live_console.tokens["platform"])
    platform.goto("/console/inbox")
    card = platform.locator("section", has=platform.get_by_role("heading", name=re.compile("Sales Forecast Bot")))
    card.get_by_role("button", name="Reject").click()
    expect(platform.locator(".field-error")).to_contain_text("A reason is required to reject")
    reason = platform.get_by_label("Reason (required to reject)")
    expect(reason).to_have_attribute("aria-invalid", "true")
    reason.fill("needs a proper service first")
    platform.get_by_role("button", name="Reject").click()
    expect(platform.get_by_role("status").first).to_contain_text("rejected")
    expect(platform.get_by_text("Nothing waits for you")).to_be_visible()


def test_transfer_an_orphan_and_verify_the_audit(open_page: Any, live_console: LiveConsole) -> None:
    """The admin transfers the orphaned app to a new owner from the Orphans page, then verifies the audit chain."""
    from playwright.sync_api import expect

    page = open_page()
    sign_in(page, live_console.tokens["alex"])
    docs_screenshot(page, "console-catalog")
    page.get_by_role("link", name="Orphans").click()
    expect(page.get_by_role("heading", name=re.compile("Former owner tom.baker@example.com"))).to_be_visible()
    page.get_by_label("New owner for On-call Rota").fill("maria.garcia@example.com")
    page.get_by_role("button", name="Transfer").click()
    expect(page.get_by_role("status").first).to_contain_text("Owner is now maria.garcia@example.com.")
    expect(page.get_by_text("No orphaned or suspended app")).to_be_visible()
    page.get_by_role("link", name="Audit").click()
    page.get_by_role("link", name="Verify the hash chain").click()
    expect(page.get_by_role("status")).to_contain_text("Chain verified")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    assert download.value.suggested_filename == "audit.csv"


def test_keyboard_and_accessibility(open_page: Any, live_console: LiveConsole) -> None:
    """The main pages have no serious axe-core violations, and the sign-in works from the keyboard."""
    page = open_page()
    page.goto("/console/login")
    assert serious_violations(page) == []
    for _ in range(5):  # the skip link, the home link, then the token field
        if page.evaluate("document.activeElement.id") == "token":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # visible focus
    page.keyboard.type(live_console.tokens["alex"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/")
    paths = (
        "/console/",
        "/console/apps/expense-helper",
        "/console/inbox",
        "/console/expiring",
        "/console/orphans",
        "/console/audit",
        "/console/operations",
    )
    for path in paths:
        page.goto(path)
        assert serious_violations(page) == [], path
    phone = open_page(width=390, height=844)
    sign_in(phone, live_console.tokens["alex"])
    assert serious_violations(phone) == []
    for path in paths:  # nothing (a long repository URL, an app id) pushes a page sideways on a phone
        phone.goto(path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"


@pytest.mark.console_env(CONSOLE_IDLE_MINUTES="0.15")
def test_an_expired_session_changes_nothing(open_page: Any, live_console: LiveConsole) -> None:
    """A form sent after the idle timeout (9 s here) leads to the sign-in page with the reason; nothing changes."""
    from playwright.sync_api import expect

    page = open_page()
    sign_in(page, live_console.tokens["maria"])
    page.goto("/console/apps/expense-helper")
    page.get_by_label("Reason", exact=True).last.fill("no longer needed")
    page.wait_for_timeout(10_000)
    page.get_by_role("button", name="Retire the app").click()
    expect(page.get_by_role("status").first).to_contain_text("without activity. Nothing was changed")
    expect(page.get_by_label("API token")).to_be_visible()
    sign_in(page, live_console.tokens["maria"])
    page.goto("/console/apps/expense-helper")
    expect(page.get_by_role("heading", name=re.compile("Expense Helper"))).to_contain_text("registered")
    # an htmx filter after the timeout loads the sign-in page as a whole (not into the results)
    page.goto("/console/")
    page.wait_for_timeout(10_000)
    page.get_by_label("Search name or description").fill("expense")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("heading", name="Catalog")).to_have_count(0)
