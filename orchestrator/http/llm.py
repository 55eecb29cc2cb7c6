"""The LLM egress connector: OpenAI- and Anthropic-compatible endpoints that micro-apps call instead of the providers.

- `POST /llm/openai/v1/chat/completions` (`stream: true` as server-sent events), `POST /llm/openai/v1/embeddings`,
  `GET /llm/openai/v1/models` (the models this app may use), `GET /llm/openai/v1/models/{model}`;
- `POST /llm/anthropic/v1/messages` (streaming too), `POST /llm/anthropic/v1/messages/count_tokens`.

The caller authenticates with a token from our token exchange carrying the `llm:invoke` scope (as the
SDK's API key: `Authorization: Bearer` or Anthropic's `x-api-key`); the app is the token's audience.
Each call: app and data class checked, the body read and its model checked, the app's limits taken
(one Redis round trip; a refused call still counts against the minute), the body scanned in the
class's redaction mode and masked, forwarded with IT's key, the answer restored, a usage row queued
after the answer went out. Every refusal is answered in the provider's own error shape so SDKs raise their usual
exceptions. Nothing here logs or stores a prompt, an answer, a detected value or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from orchestrator.auth.service import can_see
from orchestrator.catalog import service as catalog
from orchestrator.catalog.policy import LlmPolicy, get_policy
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.credentials.tokens.introspection import introspect
from orchestrator.errors import NotFound, PayloadTooLarge
from orchestrator.http.bodies import read_body
from orchestrator.http.deps import CurrentToken, ReadSession
from orchestrator.integrations.llm import (
    HttpUpstream,
    LlmUpstream,
    NotConfigured,
    NotSent,
    Provider,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
)
from orchestrator.llm.limits import (
    SETTLE_SECONDS,
    Buckets,
    Settlements,
    Spend,
    retry_after_header,
    take_call,
    taken_before_cancel,
)
from orchestrator.llm.models import LlmUsage, Outcome
from orchestrator.llm.redaction import StreamRestorer, Vault, mask_json, scan_json
from orchestrator.llm.service import (
    SCOPE,
    AppFacts,
    Refused,
    allowed_models,
    app_cache,
    decide_app,
    decide_model,
    record_usage,
    usage_rows,
    usage_summary,
    usage_writer,
)
from orchestrator.logs import bind, get_logger

log = get_logger(__name__)
# Headers of a provider's answer worth passing on (retry hints, request ids for support).
_PASSED_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "x-request-id", "request-id")
# A UTF-16 surrogate, escaped (a pair is fine, a lone one is not) or as raw UTF-8-style bytes: only
# then is the parsed body checked to encode again (a quick scan; the check is a whole encode).
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


@dataclass
class Connector:
    """Per-process state: the upstream client, the limit buckets (bound to the serving event loop) and
    the token counts still to settle."""

    upstream: LlmUpstream
    buckets: Buckets
    settlements: Settlements = field(default_factory=Settlements)
    # app → when its requests per minute have a request again, learnt from a refusal: until then its
    # calls are refused before their body is read, with no round trip (the bucket cannot refill sooner,
    # and a refused call takes nothing from an empty minute).
    minute_empty: dict[str, float] = field(default_factory=dict)

    def empty_minute(self, app_id: str) -> float | None:
        """Seconds until the app's minute has a request again, when a refusal said so; else None."""
        until = self.minute_empty.get(app_id)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self.minute_empty[app_id]
            return None
        return left

    def note_empty_minute(self, app_id: str, retry_after: float) -> None:
        """Remember that the app's minute is empty for `retry_after` seconds."""
        if len(self.minute_empty) > 10_000:
            now = time.monotonic()
            self.minute_empty = {k: v for k, v in self.minute_empty.items() if v > now}
        self.minute_empty[app_id] = time.monotonic() + retry_after

    async def settle_periodically(self) -> None:
        """Charge what is owed every SETTLE_SECONDS (an app's own next call charges it sooner)."""
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            if self.settlements:
                await self.settlements.flush(self.buckets)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the upstream client and the buckets with the app; settle and close them with it."""
    settings = get_settings()
    connector = Connector(HttpUpstream(settings), Buckets(settings.effective_redis_url))
    app.state.llm_connector = connector
    settling = asyncio.get_running_loop().create_task(connector.settle_periodically())
    try:
        yield
    finally:
        settling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await settling  # a flush it was in gives its batch back (Settlements.flush)
        await connector.settlements.flush(connector.buckets)
        await connector.upstream.aclose()
        await connector.buckets.close()
        await run_in_threadpool(usage_writer.flush)


router = APIRouter(tags=["llm"], lifespan=lifespan)


# ------------------------------------------------------------------ error shapes

_OPENAI_TYPES = {
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "permission": ("invalid_request_error", "permission_denied"),
    "invalid_request": ("invalid_request_error", None),
    "not_found": ("invalid_request_error", "model_not_found"),
    "too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "unavailable": ("api_error", "upstream_unavailable"),
}
_ANTHROPIC_TYPES = {
    "authentication": "authentication_error",
    "permission": "permission_error",
    "invalid_request": "invalid_request_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "unavailable": "api_error",
}


def error_response(provider: Provider, refused: Refused) -> JSONResponse:
    """A refusal in the provider's own error shape (so the SDKs raise their usual exception)."""
    if provider == "openai":
        kind, code = _OPENAI_TYPES[refused.kind]
        body: dict[str, Any] = {"error": {"message": refused.reason, "type": kind, "param": None, "code": code}}
    else:
        body = {"type": "error", "error": {"type": _ANTHROPIC_TYPES[refused.kind], "message": refused.reason}}
    headers = {}
    if refused.retry_after is not None:
        headers["Retry-After"] = retry_after_header(refused.retry_after)
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return JSONResponse(body, status_code=refused.status, headers=headers)


# ------------------------------------------------------------------ one call


@dataclass
class Call:
    """What is known about one connector call as it goes (for the usage row and the log line)."""

    provider: Provider
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    app_id: str = ""
    actor: str = ""
    model: str = ""
    streamed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimate: int = 0
    cost_estimate: float = 0.0  # millionths of a dollar taken from the daily budget before the call
    # The provider may bill the call without its count reaching us: it received the call and did not
    # refuse it with an error status of its own (a 2xx that broke off or was left before the usage
    # came, a send that timed out or lost its connection). Such a call keeps its estimate.
    maybe_billed: bool = False
    redactions: dict[str, int] = field(default_factory=dict)

    def values(self, outcome: Outcome, status: int) -> dict[str, Any]:
        """The usage row of this call, as column values."""
        return {
            "at": utcnow(),
            "app_id": self.app_id,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model[:200],
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "status_code": status,
            "streamed": self.streamed,
            "outcome": outcome,
            "redactions": self.redactions,
        }


def _bearer(request: Request, provider: Provider) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if provider == "anthropic":
        key = request.headers.get("x-api-key", "").strip()
        return key or None
    return None


async def _authenticate(request: Request, call: Call) -> LlmPolicy:
    """The app's LLM rules from the bearer token, or Refused (401 token, 403 scope/app/class)."""
    token = _bearer(request, call.provider)
    if not token:
        raise Refused(401, "authentication", "send a token from the orchestrator's token exchange as the API key")
    claims = await introspect(token)
    if not claims.get("active"):
        raise Refused(401, "authentication", "the token is unknown, expired or revoked")
    if SCOPE not in str(claims.get("scope", "")).split():
        raise Refused(403, "permission", f"the token lacks the {SCOPE} scope")
    app_id = claims.get("aud")
    if not isinstance(app_id, str) or not app_id:
        raise Refused(401, "authentication", "the token names no app")
    call.app_id, call.actor = app_id, str(claims.get("sub", ""))
    bind(app_id=app_id)
    fresh, facts = app_cache.cached(app_id)
    if not fresh:
        facts = await run_in_threadpool(app_cache.load, app_id)
    return decide_app(facts, get_policy())


async def _body(request: Request, rules: LlmPolicy) -> tuple[dict[str, Any], int]:
    try:
        raw = await read_body(request, rules.max_request_kb * 1024)
    except PayloadTooLarge:
        raise Refused(413, "too_large", f"the request is over this app's limit of {rules.max_request_kb} KB") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused(400, "invalid_request", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "invalid_request", "the body must be a JSON object")
    # json also reads UTF-16/32 bodies (by their first bytes), whose surrogates the byte scan can't see.
    maybe = _MAYBE_SURROGATE.search(raw) or not json.detect_encoding(raw).startswith("utf-8")
    if maybe and not _encodable(body):
        # Valid JSON (json reads surrogates, escaped or not) but no UTF-8: it could not be sent on.
        raise Refused(400, "invalid_request", "the body holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return body, len(raw)


def _encodable(body: dict[str, Any]) -> bool:
    """Whether the parsed body encodes as UTF-8 again (as it is sent to the provider)."""
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _redact(body: dict[str, Any], rules: LlmPolicy, call: Call) -> tuple[dict[str, Any], Vault]:
    vault = Vault()
    if rules.redaction == "off":
        return body, vault
    if rules.redaction == "block":
        found = scan_json(body, rules.detectors)
        if found:
            counts: dict[str, int] = {}
            for det in found:
                counts[det.detector] = counts.get(det.detector, 0) + 1
            call.redactions = counts
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items()))
            raise Refused(400, "invalid_request", f"the request holds data this app may not send to an LLM ({kinds})")
        return body, vault
    masked = mask_json(body, vault, rules.detectors)
    call.redactions = dict(vault.replaced)
    return masked, vault


def _passed_headers(upstream: UpstreamResponse) -> dict[str, str]:
    return {k: upstream.headers[k] for k in _PASSED_HEADERS if k in upstream.headers}


def _usage_of(provider: Provider, body: Any, call: Call) -> None:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return
    if provider == "openai":
        call.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        call.completion_tokens = int(usage.get("completion_tokens") or 0)
    else:
        call.prompt_tokens = int(usage.get("input_tokens") or 0) or call.prompt_tokens
        call.completion_tokens = int(usage.get("output_tokens") or 0) or call.completion_tokens


def _connector(request: Request) -> Connector:
    connector: Connector = request.app.state.llm_connector
    return connector


async def _finish(
    request: Request, call: Call, outcome: Outcome, status: int, rules: LlmPolicy | None, reason: str = ""
) -> None:
    """Settle the day's token bucket, write the usage row (an audit entry for a block), log one line."""
    actual = call.prompt_tokens + call.completion_tokens
    # Settled against the estimate: the provider's count when one came (of an answer, or what a call
    # that broke off or was left had counted so far). Without a count, a call the provider may bill
    # keeps its estimate (OpenAI counts a stream in its last event only: an app leaving right after
    # the answer would otherwise get it free); one it refused with its own 4xx/5xx, or never received,
    # is given its estimate back.
    give_back = not call.maybe_billed and bool(call.estimate or call.cost_estimate)
    if rules is not None and (actual or give_back):
        # No round trip here: charged with the app's next call, or within SETTLE_SECONDS.
        settlements = _connector(request).settlements
        settlements.owe(call.app_id, rules.tokens_per_day, actual, call.estimate)
        if rules.daily_budget_usd is not None:
            cost = get_policy().llm_cost_micros(call.model, call.prompt_tokens, call.completion_tokens) if actual else 0
            settlements.owe_spend(call.app_id, rules.daily_budget_usd * 1e6, cost, call.cost_estimate)
    row = call.values(outcome, status)
    audit_reason = reason if outcome is Outcome.blocked and (status == 403 or call.redactions) else None
    if audit_reason is None:
        usage_writer.add(row)
    else:
        await run_in_threadpool(record_usage, LlmUsage(**row), audit_reason=audit_reason, actor=call.actor)
    log.info(
        "llm call",
        provider=call.provider,
        endpoint=call.endpoint,
        model=row["model"],
        status=status,
        outcome=str(outcome),
        latency_ms=row["latency_ms"],
        redactions=row["redactions"],
    )


def _refusal(request: Request, call: Call, refused: Refused, rules: LlmPolicy | None) -> Response:
    if not call.app_id or refused.status == 401:
        log.warning("llm call refused", provider=call.provider, status=refused.status, reason=refused.reason)
        return error_response(call.provider, refused)
    if refused.status == 429:
        outcome = Outcome.limited
    elif refused.status >= 500:
        outcome = Outcome.upstream_error
    else:
        outcome = Outcome.blocked
    response = error_response(call.provider, refused)
    response.background = BackgroundTask(_finish, request, call, outcome, refused.status, rules, refused.reason)
    return response


async def _take(connector: Connector, call: Call, rules: LlmPolicy, estimate: int | None) -> None:
    """Take the call from the app's buckets in one round trip, or Refused (429) naming the one short.

    `estimate` None: the minute only (a refused or unbilled call); else also the day's tokens and,
    with a daily budget, its money, with what earlier calls of the app still owe.
    """
    debit, spend = 0, None
    if estimate is not None:
        call.estimate = estimate
        debit = connector.settlements.take(call.app_id)
        if rules.daily_budget_usd is not None:
            call.cost_estimate = get_policy().llm_cost_micros(call.model, estimate, 0)
            budget = rules.daily_budget_usd * 1e6
            spend = Spend(budget, call.cost_estimate, connector.settlements.take_spend(call.app_id))
    try:
        taken, short = await take_call(
            connector.buckets,
            call.app_id,
            rules.requests_per_minute,
            rules.tokens_per_day,
            estimate,
            debit=debit,
            spend=spend,
        )
    except BaseException as exc:
        answer = taken_before_cancel(exc)
        if answer is None:
            # Cancelled before its round trip went (the client left), or failed: what earlier calls
            # owe is still owed.
            connector.settlements.untake(call.app_id, rules.tokens_per_day, debit, spend)
        elif answer[0].allowed:
            # Taken after the client left, debit included; the provider never got the call, so its
            # estimate comes back (with the app's next call, or the next flush). Refused: none was taken.
            _give_back(connector, call, rules)
        raise
    if short is not None:
        call.estimate, call.cost_estimate = 0, 0.0
        if short == "rpm":
            connector.note_empty_minute(call.app_id, taken.retry_after)
        what = {
            "rpm": "requests per minute are",
            "tpd": "tokens per day are",
            "usd": f"daily budget (${rules.daily_budget_usd:g}) is",
        }[short]
        raise Refused(429, "rate_limit", f"this app's {what} used up", retry_after=taken.retry_after)


def _give_back(connector: Connector, call: Call, rules: LlmPolicy) -> None:
    """Owe back what a call refused after its round trip had taken from the day (no round trip now)."""
    if call.estimate:
        connector.settlements.owe(call.app_id, rules.tokens_per_day, 0, call.estimate)
    if call.cost_estimate and rules.daily_budget_usd is not None:
        connector.settlements.owe_spend(call.app_id, rules.daily_budget_usd * 1e6, 0, call.cost_estimate)
    call.estimate, call.cost_estimate = 0, 0.0


async def _proxy(request: Request, provider: Provider, endpoint: str, path: str, *, billed: bool = True) -> Response:
    call = Call(provider, endpoint)
    rules: LlmPolicy | None = None
    connector = _connector(request)
    try:
        rules = await _authenticate(request, call)
        wait = connector.empty_minute(call.app_id)
        if wait is not None:  # known from an earlier refusal: no need to read the body, nor a round trip
            raise Refused(429, "rate_limit", "this app's requests per minute are used up", retry_after=wait)
        try:
            body, size = await _body(request, rules)
            call.model = str(body.get("model") or "")
            call.streamed = body.get("stream") is True
            decide_model(rules, provider, call.model)
        except Refused:
            # A refused call is a request too (and its audit entry costs): it counts against the minute.
            await _take(connector, call, rules, None)
            raise
        # One round trip for the minute, the day's tokens and money (the prompt's estimate now, the
        # provider's count settled after the answer, with what earlier calls still owe), before the
        # body is scanned: an app over its limits costs no detector time.
        await _take(connector, call, rules, size // 4 + 1 if billed else None)
        try:
            body, vault = _redact(body, rules, call)
        except Refused:
            _give_back(connector, call, rules)  # blocked: the estimate was never used
            raise
        headers = {k.lower(): v for k, v in request.headers.items()}
        if call.streamed:
            return await _stream(request, connector, call, rules, path, body, headers, vault)
        try:
            upstream = await connector.upstream.send(provider, "POST", path, body, headers)
        except (NotConfigured, UpstreamError) as exc:
            raise _unreachable(call, exc) from None
    except Refused as refused:
        return _refusal(request, call, refused, rules)
    return _answer(request, call, rules, upstream, vault)


def _unreachable(call: Call, exc: NotConfigured | UpstreamError) -> Refused:
    """The refusal of a call that got no answer; noting whether the provider may have received it."""
    provider = call.provider
    if isinstance(exc, NotConfigured):
        return Refused(503, "unavailable", f"the connector has no {provider} key configured")
    # Sent but unanswered (a timeout, a lost connection, a 2xx broken off): the provider may still bill
    # it; not when it never got it, or refused it with an error status of its own (its body broken off).
    call.maybe_billed = not isinstance(exc, NotSent) and (exc.status is None or exc.status < 400)
    if isinstance(exc, UpstreamTimeout):
        return Refused(504, "unavailable", f"{provider} did not answer in time")
    return Refused(502, "unavailable", f"{provider} could not be reached ({exc})")


def _answer(request: Request, call: Call, rules: LlmPolicy, upstream: UpstreamResponse, vault: Vault) -> Response:
    headers = _passed_headers(upstream)
    try:
        parsed = upstream.json()
    except ValueError:
        parsed = None
    if parsed is not None:
        _usage_of(call.provider, parsed, call)
        if call.endpoint == "count_tokens" and isinstance(parsed, dict):
            call.prompt_tokens, call.completion_tokens = 0, 0  # counting is free: nothing billed
        content = json.dumps(vault.restore_json(parsed)).encode() if vault else upstream.content
    else:
        content = upstream.content
    call.maybe_billed = upstream.status_code < 400
    outcome = Outcome.ok if upstream.status_code < 400 else Outcome.upstream_error
    background = BackgroundTask(_finish, request, call, outcome, upstream.status_code, rules)
    media = upstream.headers.get("content-type", "application/json")
    return Response(content, status_code=upstream.status_code, headers=headers, media_type=media, background=background)


# ------------------------------------------------------------------ streaming


class _SseRewriter:
    """Rewrites a provider's server-sent events: placeholders restored per text block and per tool
    call's streamed arguments (JSON text: values go in JSON-escaped), usage noted."""

    def __init__(self, call: Call, vault: Vault, *, hide_usage: bool = False) -> None:
        self.call = call
        self.vault = vault
        self.hide_usage = hide_usage  # the usage chunk was asked for by the connector, not the app
        # ("text", choice or block) / ("args", choice, tool call) / ("json", block) → its restorer
        self.restorers: dict[tuple[Any, ...], StreamRestorer] = {}

    def _restorer(self, key: tuple[Any, ...]) -> StreamRestorer:
        if key not in self.restorers:
            self.restorers[key] = StreamRestorer(self.vault, json_text=key[0] != "text")
        return self.restorers[key]

    def event(self, lines: list[str]) -> str:
        """One whole event (its lines, without the blank separator) as text to send on."""
        data_at = next((i for i, line in enumerate(lines) if line.startswith("data:")), None)
        if data_at is None:
            return "\n".join(lines) + "\n\n"
        raw = lines[data_at][5:].strip()
        if not raw.startswith("{"):
            return "\n".join(lines) + "\n\n"
        try:
            data = json.loads(raw)
        except ValueError:
            return "\n".join(lines) + "\n\n"
        extra = ""
        if self.call.provider == "openai":
            changed = self._openai(data)
            if self.hide_usage and not data.get("choices") and isinstance(data.get("usage"), dict):
                return ""
        else:
            changed, extra = self._anthropic(data)
        if changed:
            lines = [*lines[:data_at], "data: " + json.dumps(data), *lines[data_at + 1 :]]
        return extra + "\n".join(lines) + "\n\n"

    def _openai(self, data: dict[str, Any]) -> bool:
        if isinstance(data.get("usage"), dict):
            _usage_of("openai", data, self.call)
        if not self.vault:
            return False
        changed = False
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            index = int(choice.get("index") or 0)
            text = delta.get("content")
            if isinstance(text, str):
                delta["content"] = self._restorer(("text", index)).feed(text)
                changed = True
            for tool_call in delta.get("tool_calls") or []:
                function = tool_call.get("function") if isinstance(tool_call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    key = ("args", index, int(tool_call.get("index") or 0))
                    function["arguments"] = self._restorer(key).feed(function["arguments"])
                    changed = True
            if choice.get("finish_reason") is not None:
                changed = self._flush_choice(choice, delta, index) or changed
        return changed

    def _flush_choice(self, choice: dict[str, Any], delta: dict[str, Any], index: int) -> bool:
        """At a choice's end, send on what the restorers held back (it was not a placeholder after all)."""
        changed = False
        held = self._restorer(("text", index)).flush()
        if held:
            delta["content"] = (delta.get("content") or "") + held
            changed = True
        tails = [
            {"index": key[2], "function": {"arguments": tail}}
            for key, restorer in self.restorers.items()
            if key[0] == "args" and key[1] == index and (tail := restorer.flush())
        ]
        if tails:
            delta["tool_calls"] = [*(delta.get("tool_calls") or []), *tails]
            changed = True
        if changed:
            choice["delta"] = delta
        return changed

    def _anthropic(self, data: dict[str, Any]) -> tuple[bool, str]:
        kind = data.get("type")
        if kind == "message_start":
            _usage_of("anthropic", data.get("message") or {}, self.call)
        elif kind == "message_delta":
            _usage_of("anthropic", data, self.call)
        if not self.vault:
            return False, ""
        index = int(data.get("index") or 0)
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                delta["text"] = self._restorer(("text", index)).feed(delta["text"])
                return True, ""
            if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
                delta["partial_json"] = self._restorer(("json", index)).feed(delta["partial_json"])
                return True, ""
        elif kind == "content_block_stop":
            extra = ""
            for key, delta_type, field_name in ((("text", index), "text_delta", "text"),
                                                (("json", index), "input_json_delta", "partial_json")):  # fmt: skip
                held = self.restorers[key].flush() if key in self.restorers else ""
                if held:
                    flushed = {"type": "content_block_delta", "index": index,
                               "delta": {"type": delta_type, field_name: held}}  # fmt: skip
                    extra += "event: content_block_delta\ndata: " + json.dumps(flushed) + "\n\n"
            return False, extra
        return False, ""


async def _stream(
    request: Request,
    connector: Connector,
    call: Call,
    rules: LlmPolicy,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    vault: Vault,
) -> Response:
    hide_usage = False
    if call.provider == "openai":
        # Ask for the usage chunk so the usage row has the provider's token counts.
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        hide_usage = options.get("include_usage") is not True
        body = {**body, "stream_options": {**options, "include_usage": True}}
    stack = AsyncExitStack()
    try:
        upstream = await stack.enter_async_context(connector.upstream.stream(call.provider, path, body, headers))
    except (NotConfigured, UpstreamError) as exc:
        await stack.aclose()
        raise _unreachable(call, exc) from None
    # A 2xx started: the provider may bill the call whatever happens next.
    call.maybe_billed = upstream.status_code < 400
    if upstream.status_code >= 400 or "text/event-stream" not in upstream.headers.get("content-type", ""):
        try:
            await upstream.aread()
        except UpstreamError as exc:  # its error (or odd answer) broke off or stalled
            raise _unreachable(call, exc) from None
        finally:
            await stack.aclose()
        return _answer(request, call, rules, upstream, vault)
    rewriter = _SseRewriter(call, vault, hide_usage=call.provider == "openai" and hide_usage)
    status = upstream.status_code

    async def events() -> AsyncIterator[bytes]:
        outcome = Outcome.cancelled
        try:
            pending: list[str] = []
            async for line in upstream.aiter_lines():
                if line:
                    pending.append(line)
                    continue
                if pending:
                    yield rewriter.event(pending).encode()
                    pending = []
            if pending:
                yield rewriter.event(pending).encode()
            outcome = Outcome.ok
        except UpstreamError:
            outcome = Outcome.upstream_error
        finally:
            # Closing the upstream response here cancels the provider's call when the client left.
            with anyio.CancelScope(shield=True):
                await stack.aclose()
                await _finish(request, call, outcome, status, rules)

    return StreamingResponse(
        events(),
        status_code=status,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", **_passed_headers(upstream)},
    )


# ------------------------------------------------------------------ routes


@router.post("/llm/openai/v1/chat/completions", response_model=None)
async def openai_chat(request: Request) -> Response:
    """OpenAI chat completions (plain or `stream: true`) for the calling app, redacted and limited."""
    return await _proxy(request, "openai", "chat", "/v1/chat/completions")


@router.post("/llm/openai/v1/embeddings", response_model=None)
async def openai_embeddings(request: Request) -> Response:
    """OpenAI embeddings for the calling app (the input redacted like a prompt)."""
    return await _proxy(request, "openai", "embeddings", "/v1/embeddings")


async def _models(request: Request, answer: Callable[[list[str]], Awaitable[Response] | Response]) -> Response:
    call = Call("openai", "models")
    try:
        rules = await _authenticate(request, call)
    except Refused as refused:
        return _refusal(request, call, refused, None)
    result = answer(allowed_models(rules, "openai"))
    return await result if not isinstance(result, Response) else result


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "openai"}


@router.get("/llm/openai/v1/models", response_model=None)
async def openai_models(request: Request) -> Response:
    """The OpenAI models the calling app may use (from its data class's policy)."""
    return await _models(
        request, lambda names: JSONResponse({"object": "list", "data": [_model_entry(n) for n in names]})
    )


@router.get("/llm/openai/v1/models/{model:path}", response_model=None)
async def openai_model(request: Request, model: str) -> Response:
    """One model, when the calling app may use it (404 in OpenAI's shape otherwise)."""

    def answer(names: list[str]) -> Response:
        if model not in names:
            return error_response("openai", Refused(404, "not_found", f"the model {model} does not exist for this app"))
        return JSONResponse(_model_entry(model))

    return await _models(request, answer)


@router.post("/llm/anthropic/v1/messages", response_model=None)
async def anthropic_messages(request: Request) -> Response:
    """Anthropic messages (plain or streamed) for the calling app, redacted and limited."""
    return await _proxy(request, "anthropic", "messages", "/v1/messages")


@router.post("/llm/anthropic/v1/messages/count_tokens", response_model=None)
async def anthropic_count_tokens(request: Request) -> Response:
    """Anthropic token counting for the calling app (free: not charged to the day's tokens)."""
    return await _proxy(request, "anthropic", "count_tokens", "/v1/messages/count_tokens", billed=False)


# The connector's calls, served past FastAPI's routing and middleware (orchestrator/http/app.py's
# fast lane): they take no dependencies, read and answer their bodies themselves and catch their
# own refusals, and FastAPI's layers were a fifth of a call's CPU. Still declared as routes above
# (the API's description and any other method's 405).
FAST_LANE: dict[str, Callable[[Request], Awaitable[Response]]] = {
    "/llm/openai/v1/chat/completions": openai_chat,
    "/llm/openai/v1/embeddings": openai_embeddings,
    "/llm/anthropic/v1/messages": anthropic_messages,
    "/llm/anthropic/v1/messages/count_tokens": anthropic_count_tokens,
}


# ------------------------------------------------------------------ usage (API tokens, not app tokens)


@router.get("/api/v1/apps/{app_id}/llm-usage", tags=["llm"])
def llm_usage(
    app_id: str,
    session: ReadSession,
    token: CurrentToken,
    days: Annotated[int, Query(ge=1, le=366, description="how far back")] = 30,
    limit: Annotated[int, Query(ge=1, le=1000, description="most recent calls listed")] = 100,
) -> dict[str, Any]:
    """The app's LLM calls through the connector: totals over `days` and the most recent calls (never prompts)."""
    app = catalog.get_app(session, app_id)
    if not can_see(token, app):
        raise NotFound(f"no app with id {app_id!r}")
    since = utcnow() - timedelta(days=days)
    totals = usage_summary(usage_rows(session, app_id, since=since, limit=100_000))
    recent = [
        row.model_dump(mode="json", exclude={"id"}) for row in usage_rows(session, app_id, since=since, limit=limit)
    ]
    return {"app_id": app_id, "days": days, "totals": totals, "calls": recent}


def reset_caches() -> None:
    """Forget the cached app facts (tests)."""
    app_cache.forget()


__all__ = ["AppFacts", "router", "reset_caches"]
