"""Block Kit builders: approval message, decided message, reminder, expiry notice, digest, reason modal.

Pure functions of the data they are given (no database, no network). Built with
`slack_sdk.models.blocks`, whose `to_dict()` validates the Block Kit limits. Buttons carry only an
id in their `value` (the approval request id; the app id for "Extend"): the server re-reads and
re-authorises everything on a click.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from orchestrator.approvals.models import ApprovalKind, ApprovalRequest, ApprovalStatus
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import as_utc


class SlackAction(StrEnum):
    """The action ids of our buttons; a click is routed by these."""

    approve = "approval.approve"
    reject = "approval.reject"
    request_changes = "approval.request_changes"
    extend = "app.extend"
    open_app = "app.open"  # a link button; Slack still reports the click, we only acknowledge it


REASON_CALLBACK_ID = "approval.reason"
REASON_BLOCK_ID = "reason"
REASON_ACTION_ID = "reason_input"
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
_TOKENISH = re.compile(r"[A-Za-z0-9_\-+/=.]{12,}")


@dataclass(frozen=True)
class Rendered:
    """A message: the notification text (fallback, screen readers) and its blocks."""

    text: str
    blocks: list[dict[str, Any]]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def redact(preview: str, limit: int = 80) -> str:
    """A finding preview safe to show: long token-like runs cut to 4 characters, length capped."""
    masked = _TOKENISH.sub(lambda m: m.group(0)[:4] + "****", preview.replace("`", "'").replace("\n", " "))
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def slack_date(at: datetime) -> str:
    """A date Slack renders in the reader's time zone, with a UTC fallback."""
    at = as_utc(at)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text[:3000])


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


def review_summary(review: dict[str, Any] | None, *, top: int = 3) -> str:
    """Counts by severity and the top findings, redacted; a line saying so when there was no review."""
    if not review:
        return "*Automated review:* none attached to this request"
    findings = list(review.get("findings") or [])
    counts: dict[str, int] = {}
    for f in findings:
        sev = str(f.get("severity", "info")).lower()
        counts[sev] = counts.get(sev, 0) + 1
    ordered = sorted(counts, key=lambda s: SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else len(SEVERITY_ORDER))
    tally = ", ".join(f"{counts[s]} {s}" for s in ordered) or "no findings"
    lines = [f"*Automated review:* {escape(str(review.get('verdict', 'unknown')))} — {tally}"]
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    for f in sorted(findings, key=lambda f: rank.get(str(f.get("severity", "info")).lower(), 99))[:top]:
        where = escape(f"{f.get('file', '?')}:{f.get('line', '?')}")
        what = escape(str(f.get("rule") or f.get("check") or "finding"))
        preview = f" — `{escape(redact(str(f['preview'])))}`" if f.get("preview") else ""
        lines.append(f"• `{escape(str(f.get('severity', 'info')))}` {what} in `{where}`{preview}")
    if len(findings) > top:
        lines.append(f"_…and {len(findings) - top} more on the app page_")
    return "\n".join(lines)


def _facts(app: MicroApp, approval: ApprovalRequest, app_url: str) -> SectionBlock:
    expiry = slack_date(app.expires_at) if app.expires_at else "none"
    fields = [
        f"*App*\n<{app_url}|{escape(app.name)}> (`{escape(app.id)}`)",
        f"*Owner*\n{escape(app.owner_email)}",
        f"*Data class*\n{app.data_class}",
        f"*Stage*\n{app.stage}",
        f"*Expiry*\n{expiry}",
        f"*Requested by*\n{escape(approval.requested_by)}",
    ]
    if approval.kind == ApprovalKind.extension:
        fields.append(f"*Extension asked*\n{int(approval.payload.get('days') or 0)} days")
    return SectionBlock(fields=[_md(f) for f in fields])


def _buttons(approval_id: int, app_url: str) -> ActionsBlock:
    value = str(approval_id)
    return ActionsBlock(
        block_id=f"approval:{approval_id}",
        elements=[
            ButtonElement(text="Approve", action_id=SlackAction.approve, value=value, style="primary"),
            ButtonElement(
                text="Reject",
                action_id=SlackAction.reject,
                value=value,
                style="danger",
                confirm=ConfirmObject(
                    title="Reject this request?",
                    text="You will be asked for a reason; the owner sees it.",
                    confirm="Reject",
                    deny="Cancel",
                ),
            ),
            ButtonElement(text="Request changes", action_id=SlackAction.request_changes, value=value),
            ButtonElement(text="Open app page", action_id=SlackAction.open_app, url=app_url),
        ],
    )


DECISION_WORDS = {
    ApprovalStatus.approved: ("✅", "Approved"),
    ApprovalStatus.rejected: ("⛔", "Rejected"),
    ApprovalStatus.changes_requested: ("✏️", "Changes requested"),
    ApprovalStatus.cancelled: ("➖", "Cancelled"),
}


def decision_line(approval: ApprovalRequest, decider: str) -> str:
    """ "Approved by @x at …" (with the reason for anything but an approval)."""
    icon, word = DECISION_WORDS.get(ApprovalStatus(approval.status), ("•", str(approval.status)))
    when = f" at {slack_date(approval.decided_at)}" if approval.decided_at else ""
    line = f"{icon} *{word}* by {decider}{when}"
    if approval.status != ApprovalStatus.approved and approval.reason:
        line += f"\n>{escape(approval.reason)[:1500]}"
    return line


def approval_message(
    *,
    approval: ApprovalRequest,
    app: MicroApp,
    app_url: str,
    decider: str | None = None,
    escalated: bool = False,
    approvers: list[str] | None = None,
) -> Rendered:
    """The approval request: facts, review summary, buttons; once decided, the decision instead.

    `approvers` (mentions of the people who may decide, leavers left out) are named under the buttons.
    """
    assert approval.id is not None
    what = "Extension requested" if approval.kind == ApprovalKind.extension else "Approval needed"
    title = f"{'Escalated — ' if escalated else ''}{what}: {app.name}"[:150]
    blocks: list[Block] = [
        HeaderBlock(text=title),
        _facts(app, approval, app_url),
        SectionBlock(text=_md(review_summary(approval.payload.get("review")))),
    ]
    if approval.status == ApprovalStatus.pending:
        blocks.append(_buttons(approval.id, app_url))
        note = f"Request #{approval.id} · cycle {approval.cycle} · reminders arrive in this thread"
        if escalated:
            note = f"No decision within the policy's escalation delay. {note}"
        if approvers is not None:
            note = f"Approvers: {' '.join(approvers) or 'nobody left in the group — it will escalate'} · {note}"
        blocks.append(ContextBlock(elements=[_md(note)]))
        text = f"{title} (request #{approval.id})"
    else:
        line = decision_line(approval, decider or str(approval.decided_by))
        blocks.append(SectionBlock(block_id=f"decision:{approval.id}", text=_md(line)))
        text = f"{title}: {DECISION_WORDS.get(ApprovalStatus(approval.status), ('', approval.status))[1]}"
    return Rendered(text=text, blocks=_dicts(blocks))


def reminder(*, approval: ApprovalRequest, app: MicroApp, waiting_hours: float, approvers: list[str]) -> Rendered:
    """A thread reply nudging the approvers of a pending request."""
    who = " ".join(approvers) or "approvers"
    text = f"⏰ {who}: request #{approval.id} for {escape(app.name)} has waited {waiting_hours:.0f} h for a decision."
    return Rendered(text=text, blocks=_dicts([SectionBlock(text=_md(text))]))


def reassigned(*, approval: ApprovalRequest, app: MicroApp, approvers: list[str]) -> Rendered:
    """A thread reply when an approver has left: the request now waits for the rest of the group."""
    who = " ".join(approvers) or "nobody left in the approver group (it will escalate)"
    text = f"🔁 An approver has left the company: request #{approval.id} for {escape(app.name)} is now for {who}."
    return Rendered(text=text, blocks=_dicts([SectionBlock(text=_md(text))]))


def decided_dm(*, approval: ApprovalRequest, app: MicroApp, app_url: str, decider: str) -> Rendered:
    """The owner's direct message after a decision."""
    what = "extension request" if approval.kind == ApprovalKind.extension else "approval request"
    line = decision_line(approval, decider)
    head = f"Your {what} for <{app_url}|{escape(app.name)}> was decided."
    if approval.kind == ApprovalKind.extension and approval.status == ApprovalStatus.approved and app.expires_at:
        head += f" New expiry: {slack_date(app.expires_at)}."
    text = f"{escape(app.name)}: {DECISION_WORDS.get(ApprovalStatus(approval.status), ('', approval.status))[1]}"
    return Rendered(text=text, blocks=_dicts([SectionBlock(text=_md(head)), SectionBlock(text=_md(line))]))


def expiry_notice(*, app: MicroApp, app_url: str, days_left: int) -> Rendered:
    """The owner's expiry notice, with an "Extend" button that asks for an extension."""
    when = slack_date(app.expires_at) if app.expires_at else "soon"
    text = f"{app.name} expires in {days_left} day(s)"
    blocks: list[Block] = [
        SectionBlock(text=_md(f"⌛ <{app_url}|{escape(app.name)}> expires {when} ({days_left} day(s) left).")),
        ActionsBlock(
            block_id=f"expiry:{app.id}",
            elements=[
                ButtonElement(text="Extend", action_id=SlackAction.extend, value=app.id, style="primary"),
                ButtonElement(text="Open app page", action_id=SlackAction.open_app, url=app_url),
            ],
        ),
    ]
    return Rendered(text=text, blocks=_dicts(blocks))


def digest(*, lines: list[str], window_minutes: int, shown: int = 20) -> Rendered:
    """Many notifications to one person as one message."""
    text = f"{len(lines)} updates in the last {window_minutes} minutes"
    body = "\n".join(f"• {line[:300]}" for line in lines[:shown])
    if len(lines) > shown:
        body += f"\n_…and {len(lines) - shown} more_"
    blocks: list[Block] = [SectionBlock(text=_md(f"*{text}*")), SectionBlock(text=_md(body or "—"))]
    return Rendered(text=text, blocks=_dicts(blocks))


def reason_modal(
    *, approval_id: int, decision: str, app_name: str, channel: str | None, message_ts: str | None
) -> dict[str, Any]:
    """The modal that asks a rejecter (or a changes requester) for the reason."""
    word = "Reject" if decision == "reject" else "Request changes"
    meta = json.dumps({"approval_id": approval_id, "decision": decision, "channel": channel, "ts": message_ts})
    view = View(
        type="modal",
        callback_id=REASON_CALLBACK_ID,
        title=word[:24],
        submit=word[:24],
        close="Cancel",
        private_metadata=meta,
        blocks=[
            SectionBlock(text=_md(f"*{escape(app_name)}* — request #{approval_id}")),
            InputBlock(
                block_id=REASON_BLOCK_ID,
                label="Reason (the owner sees it)",
                element=PlainTextInputElement(
                    action_id=REASON_ACTION_ID, multiline=True, min_length=3, max_length=2000
                ),
            ),
        ],
    )
    return view.to_dict()
