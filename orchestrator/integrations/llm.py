"""The upstream LLM providers (OpenAI, Anthropic) behind one small interface, over aiohttp.

The connector hands over a request already checked and redacted; this module adds IT's provider
key (from settings, never from the caller), sends it, and retries only failures where nothing
reached the provider (the connection could not be opened or no pooled connection became free in
time): a request the provider may have received is never sent twice. Provider 429/5xx answers come
back as they are (with their Retry-After) for the connector to pass through.

aiohttp rather than httpx: a provider call through aiohttp costs well under half the CPU (its
pool hands a request the most recently used idle connection, its HTTP parser is compiled, and a
request's headers and body go out in one send), and the connector's CPU is what limits its
throughput (bench/llm.py). httpx stays the project's client everywhere else.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from orchestrator.config import Settings, get_settings

Provider = Literal["openai", "anthropic"]
ANTHROPIC_VERSION = "2023-06-01"
# The wait before the first retry (then doubling, at most a second).
_FIRST_WAIT = 0.05
# Caller headers worth forwarding (content negotiation and provider feature flags); never auth.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")
MAX_CONNECTIONS = 200
# Connections kept open with nothing to do: a provider closes its own after a while; a few seconds
# less here, so a request is not sent on a connection the provider is closing.
KEEPALIVE_SECONDS = 30.0


class UpstreamError(Exception):
    """The provider could not be reached, or its answer broke off."""

    # The status of the provider's answer when its body broke off (None: no answer came).
    status: int | None = None


class UpstreamTimeout(UpstreamError):
    """The provider did not answer (or go on answering) in time."""


class NotSent(UpstreamError):
    """No connection to the provider could be opened or freed: the request was not sent (retried)."""


class NotConfigured(Exception):
    """The provider has no key configured."""


_NOT_SENT = (
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientConnectorError,
    aiohttp.ClientHttpProxyError,
    aiohttp.InvalidURL,
)


def _mapped(exc: BaseException) -> UpstreamError:
    """aiohttp's and asyncio's failures as this module's (the connector knows no aiohttp)."""
    if isinstance(exc, _NOT_SENT):
        # Connect timeouts (the pool wait included), refused/unresolved connections, a proxy refusing
        # the tunnel and a base URL that isn't one: the provider never saw the request.
        return NotSent(type(exc).__name__)
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return UpstreamTimeout(type(exc).__name__)
    return UpstreamError(type(exc).__name__)


_FAILURES = (aiohttp.ClientError, asyncio.TimeoutError)


def _environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, any case;
    none when NO_PROXY covers its host)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


@dataclass(frozen=True)
class _Request:
    url: str
    headers: dict[str, str]
    proxy: str | None


class UpstreamResponse:
    """A provider's answer: status, headers and either the whole body or a body still to be read."""

    def __init__(self, raw: aiohttp.ClientResponse, content: bytes | None = None) -> None:
        self._raw = raw
        self.status_code = raw.status
        self.headers: Mapping[str, str] = raw.headers  # case-insensitive
        self._content = content

    @property
    def content(self) -> bytes:
        """The whole body (after `aread`, or of an answer that was not streamed)."""
        assert self._content is not None, "the body was not read"
        return self._content

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not)."""
        return json.loads(self.content)

    async def aread(self) -> bytes:
        """Read the rest of the body."""
        if self._content is None:
            try:
                self._content = await self._raw.read()
            except _FAILURES as exc:
                error = _mapped(exc)
                error.status = self.status_code
                raise error from exc
        return self._content

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines as they arrive, without their line ends (UpstreamError if it breaks off)."""
        held = b""
        try:
            async for chunk in self._raw.content.iter_any():
                held += chunk
                if b"\n" not in chunk:
                    continue
                *lines, held = held.split(b"\n")
                for line in lines:
                    yield line.rstrip(b"\r").decode("utf-8", "replace")
        except _FAILURES as exc:
            raise _mapped(exc) from exc
        if held:
            yield held.rstrip(b"\r").decode("utf-8", "replace")

    async def aclose(self) -> None:
        """Done with the answer: its connection goes back to the pool when the body was read to its end,
        else it is closed (which is how a streamed call the client left is cancelled at the provider)."""
        if self._raw.content.at_eof():
            self._raw.release()
        else:
            self._raw.close()


class LlmUpstream(Protocol):
    """What the connector needs from a provider."""

    async def send(
        self, provider: Provider, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> UpstreamResponse:
        """One request; the whole answer."""
        ...

    def stream(
        self, provider: Provider, path: str, body: Any, headers: dict[str, str]
    ) -> Any:  # an async context manager yielding an UpstreamResponse whose body is not read yet
        """One streamed request."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


class HttpUpstream:
    """The real providers (or local stand-ins at LLM_*_BASE_URL), with IT's keys.

    The session is opened on first use (it belongs to the event loop it is used on). HTTPS_PROXY and
    the like are honoured, read once per provider URL (aiohttp's `trust_env` reads the environment
    on every request: it tripled the client's CPU per call); redirects are not followed; provider
    cookies are never kept (they would be shared between the apps' calls).
    """

    def __init__(self, settings: Settings | None = None, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.settings = settings or get_settings()
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False  # after aclose (the app's shutdown): no session is opened again
        self._proxies: dict[str, str | None] = {}  # provider base URL → its proxy

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            # A call still running at shutdown: reopening would leave a session nobody closes.
            raise NotSent("the upstream client is closed")
        if self._session is None or self._session.closed:
            s = self.settings
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            # `connect` bounds the wait for a free pooled connection and the connect together;
            # `sock_read` each wait for the provider's next bytes (a long answer is not cut off).
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=s.llm_timeout_seconds,
                sock_connect=s.llm_connect_timeout_seconds,
                sock_read=s.llm_timeout_seconds,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
                read_bufsize=2**18,
            )
        return self._session

    def configured(self, provider: Provider) -> bool:
        """Whether a key is set for `provider`."""
        key = self.settings.llm_openai_api_key if provider == "openai" else self.settings.llm_anthropic_api_key
        return key is not None and bool(key.get_secret_value())

    def _request(self, provider: Provider, path: str, body: Any, headers: dict[str, str]) -> _Request:
        s = self.settings
        out = {"accept": "application/json"}
        out.update({k: v for k, v in headers.items() if k in FORWARDED_HEADERS})
        if provider == "openai":
            if s.llm_openai_api_key is None:
                raise NotConfigured("LLM_OPENAI_API_KEY is not set")
            base = s.llm_openai_base_url
            out["authorization"] = "Bearer " + s.llm_openai_api_key.get_secret_value()
        else:
            if s.llm_anthropic_api_key is None:
                raise NotConfigured("LLM_ANTHROPIC_API_KEY is not set")
            base = s.llm_anthropic_base_url
            out["x-api-key"] = s.llm_anthropic_api_key.get_secret_value()
            out.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if body is not None:
            out["content-type"] = "application/json"
        if base not in self._proxies:
            self._proxies[base] = _environment_proxy(base)
        return _Request(base.rstrip("/") + path, out, self._proxies[base])

    async def _open(self, method: str, request: _Request, data: bytes | None) -> aiohttp.ClientResponse:
        try:
            return await self._client().request(
                method, request.url, data=data, headers=request.headers, allow_redirects=False, proxy=request.proxy
            )
        except _FAILURES as exc:
            raise _mapped(exc) from exc

    async def _attempts(self, method: str, request: _Request, data: bytes | None) -> aiohttp.ClientResponse:
        """Send, retried only while the request cannot have reached the provider; the answer's headers."""
        try:
            return await self._open(method, request, data)  # the usual case: no retry machinery
        except NotSent:
            if self.settings.llm_connect_attempts <= 1 or self._closed:
                raise
        await asyncio.sleep(_FIRST_WAIT)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, NotSent) and not self._closed),
            stop=stop_after_attempt(self.settings.llm_connect_attempts - 1),
            wait=wait_exponential(multiplier=_FIRST_WAIT * 2, max=1.0),
            reraise=True,
        ):
            with attempt:
                return await self._open(method, request, data)
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying re-raises

    @staticmethod
    def _encode(body: Any) -> bytes | None:
        return None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def send(
        self, provider: Provider, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> UpstreamResponse:
        """One request, retried only while it cannot have reached the provider; the answer is read."""
        raw = await self._attempts(method, self._request(provider, path, body, headers), self._encode(body))
        response = UpstreamResponse(raw)
        try:
            await response.aread()
        finally:
            await response.aclose()  # read to the end: back to the pool; cancelled or broken: closed
        return response

    @asynccontextmanager
    async def stream(
        self, provider: Provider, path: str, body: Any, headers: dict[str, str]
    ) -> AsyncIterator[UpstreamResponse]:
        """One streamed request; leaving the block before the end closes the upstream connection (a cancel)."""
        request = self._request(provider, path, body, headers)
        response = UpstreamResponse(await self._attempts("POST", request, self._encode(body)))
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection; later calls fail with NotSent (the next lifespan makes its own client)."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
