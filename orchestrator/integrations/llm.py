"""The upstream LLM providers (OpenAI, Anthropic) behind one small interface, over httpx.

The connector hands over a request already checked and redacted; this module adds IT's provider
key (from settings, never from the caller), sends it, and retries only failures where nothing
reached the provider (the connection could not be opened or no pooled connection was free): a
request the provider may have received is never sent twice. Provider 429/5xx answers come back
as they are (with their Retry-After) for the connector to pass through.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import anyio
import httpcore
import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from orchestrator.config import Settings, get_settings

Provider = Literal["openai", "anthropic"]
ANTHROPIC_VERSION = "2023-06-01"
# Connection never established (or no free pooled connection): the request was not sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The wait before the first retry (then doubling, at most a second).
_FIRST_WAIT = 0.05
# Caller headers worth forwarding (content negotiation and provider feature flags); never auth.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")


class _CoalescingStream(httpcore.AsyncNetworkStream):
    """A connection that holds written bytes until the next read, so a request goes out in one send.

    httpcore writes a request's headers and its body separately: two sends, each of which wakes the
    provider's side (and, on a busy host, hands it the CPU) for half a request. Everything written
    before the answer is read is one request, so it is sent when the answer is first read.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._pending: list[bytes] = []

    async def _flush(self, timeout: float | None) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            await self._stream.write(data, timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Send what is held, then read."""
        await self._flush(timeout)
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Hold `buffer` until the next read."""
        if buffer:
            self._pending.append(buffer)

    async def aclose(self) -> None:
        """Close the connection (anything held was never answered: nothing to send)."""
        self._pending = []
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """TLS on the underlying connection (nothing is held before the handshake)."""
        await self._flush(timeout)
        return _CoalescingStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        """The underlying connection's information (socket, readability for pool reuse)."""
        return self._stream.get_extra_info(info)


class _CoalescingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default network backend, with connections that send each request in one piece."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        """A TCP connection whose writes are held until the next read."""
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CoalescingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        """A Unix socket connection, likewise."""
        return _CoalescingStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        """The backend's sleep."""
        await self._backend.sleep(seconds)


def _environment_proxies() -> bool:
    """Whether the environment names a proxy httpx would use (HTTP(S)_PROXY, ALL_PROXY, any case)."""
    return any(os.environ.get(name) for name in _PROXY_VARIABLES)


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _key(origin: httpcore.Origin) -> tuple[bytes, bytes, int]:
    return origin.scheme, origin.host, origin.port  # Origin itself is not hashable


class _IdlePool:
    """httpcore's connection pool with a constant cost per request: idle connections per origin, the
    most recently used first.

    httpcore's own pool walks every connection (and polls each idle socket) several times per
    request, so its cost grows with the connections a burst left open; LLM calls are long, so a
    connector keeps many. Here a request takes the newest idle connection (checking only that one)
    or opens one, and hands it back when its answer is closed. Connections are made by httpcore's
    pool itself (TLS, keep-alive expiry and the network backend as configured). HTTP/1.1 only.
    """

    def __init__(self, pool: httpcore.AsyncConnectionPool, limits: httpx.Limits) -> None:
        self._pool = pool
        self._slots = asyncio.Semaphore(limits.max_connections or 1_000_000)
        self._keep = limits.max_keepalive_connections if limits.max_keepalive_connections is not None else 1_000_000
        self._idle: dict[tuple[bytes, bytes, int], list[httpcore.AsyncConnectionInterface]] = {}
        self._idle_count = 0
        self._busy: set[httpcore.AsyncConnectionInterface] = set()  # lent to a response not yet closed

    def _take_idle(
        self, origin: httpcore.Origin
    ) -> tuple[httpcore.AsyncConnectionInterface | None, list[httpcore.AsyncConnectionInterface]]:
        idle = self._idle.get(_key(origin))
        stale: list[httpcore.AsyncConnectionInterface] = []
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_idle() and not connection.has_expired():
                return connection, stale
            stale.append(connection)  # expired, or the server closed it while idle
        return None, stale

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send `request` on an idle connection to its origin, or on a new one."""
        timeout = request.extensions.get("timeout", {}).get("pool")
        if self._slots.locked() and timeout:
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout)
            except TimeoutError:
                raise httpcore.PoolTimeout("no connection to the provider became free in time") from None
        else:
            await self._slots.acquire()
        try:
            while True:
                connection, stale = self._take_idle(request.url.origin)
                for old in stale:
                    await _close(old)
                connection = connection or self._pool.create_connection(request.url.origin)
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    await _close(connection)
                    continue  # it closed between the check and the request: the next one
                except BaseException:
                    await _close(connection)
                    raise
                break
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(connection)
        stream = _Handback(response.stream, connection, request.url.origin, self)
        return httpcore.Response(
            response.status, headers=response.headers, content=stream, extensions=response.extensions
        )

    async def handback(self, connection: httpcore.AsyncConnectionInterface, origin: httpcore.Origin) -> None:
        """A response was closed: keep its connection for the next request, or close it."""
        self._slots.release()
        self._busy.discard(connection)
        if connection.is_idle() and self._idle_count < self._keep:
            self._idle.setdefault(_key(origin), []).append(connection)
            self._idle_count += 1
        elif not connection.is_closed():
            await _close(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or still answering (as httpcore's pool does at shutdown)."""
        idle, self._idle, self._idle_count = self._idle, {}, 0
        busy, self._busy = self._busy, set()
        for connection in [*busy, *(c for connections in idle.values() for c in connections)]:
            await _close(connection)
        await self._pool.aclose()


async def _close(connection: httpcore.AsyncConnectionInterface) -> None:
    """Close a connection even while the caller is being cancelled (else its socket waits for the GC)."""
    with anyio.CancelScope(shield=True):
        await connection.aclose()


class _Handback:
    """A response body that hands its connection back to the pool when closed."""

    def __init__(
        self, stream: Any, connection: httpcore.AsyncConnectionInterface, origin: httpcore.Origin, pool: _IdlePool
    ) -> None:
        self._stream = stream
        self._connection = connection
        self._origin = origin
        self._pool = pool
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the body (a body not read to its end closes its connection) and hand it back."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):  # a cancelled caller still releases the connection
            try:
                if hasattr(self._stream, "aclose"):
                    await self._stream.aclose()
            finally:
                await self._pool.handback(self._connection, self._origin)


def _coalescing_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = _CoalescingBackend(backend)
        transport._pool = _IdlePool(pool, limits)  # type: ignore[assignment]
    # else: a different httpx or httpcore; its own pool and plain sends
    return transport


class NotConfigured(Exception):
    """The provider has no key configured."""


class LlmUpstream(Protocol):
    """What the connector needs from a provider."""

    async def send(
        self, provider: Provider, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response:
        """One request; the whole answer."""
        ...

    def stream(
        self, provider: Provider, path: str, body: Any, headers: dict[str, str]
    ) -> Any:  # an async context manager yielding an httpx.Response whose body is not read yet
        """One streamed request."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


class HttpUpstream:
    """The real providers (or local stand-ins at LLM_*_BASE_URL), with IT's keys."""

    def __init__(self, settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings or get_settings()
        s = self.settings
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        if transport is None and not _environment_proxies():
            transport = _coalescing_transport(limits)
        # With HTTPS_PROXY/ALL_PROXY set, httpx's own transports (it reads the proxies only when given
        # none): an egress proxy in front of the providers matters more than one send per request.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(s.llm_timeout_seconds, connect=s.llm_connect_timeout_seconds),
            limits=limits,
            transport=transport,
        )
        # A provider call needs none of the client's middle layers (redirects are not followed, auth
        # is a header, and provider cookies must not be shared between the apps' calls): with a
        # transport of our own the request goes straight to it, which saves a fair share of the
        # connector's time per call. httpx's own proxy transports are reached through the client.
        self._transport = transport

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        if self._transport is None:
            return await self._client.send(request, stream=stream)
        response = await self._transport.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()  # reads to the end and releases the connection
            except BaseException:
                await response.aclose()
                raise
        return response

    async def _attempts(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        """Send, retried only while the request cannot have reached the provider."""
        try:
            return await self._send(request, stream=stream)  # the usual case: no retry machinery
        except _NOT_SENT:
            if self.settings.llm_connect_attempts <= 1:
                raise
        await asyncio.sleep(_FIRST_WAIT)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_NOT_SENT),
            stop=stop_after_attempt(self.settings.llm_connect_attempts - 1),
            wait=wait_exponential(multiplier=_FIRST_WAIT * 2, max=1.0),
            reraise=True,
        ):
            with attempt:
                return await self._send(request, stream=stream)
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying re-raises

    def configured(self, provider: Provider) -> bool:
        """Whether a key is set for `provider`."""
        key = self.settings.llm_openai_api_key if provider == "openai" else self.settings.llm_anthropic_api_key
        return key is not None and bool(key.get_secret_value())

    def _request(self, provider: Provider, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Request:
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
        url = base.rstrip("/") + path
        if body is None:
            return self._client.build_request(method, url, headers=out)
        return self._client.build_request(method, url, json=body, headers=out)

    async def send(
        self, provider: Provider, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> httpx.Response:
        """One request, retried only while it cannot have reached the provider; the answer is read."""
        return await self._attempts(self._request(provider, method, path, body, headers), stream=False)

    @asynccontextmanager
    async def stream(
        self, provider: Provider, path: str, body: Any, headers: dict[str, str]
    ) -> AsyncIterator[httpx.Response]:
        """One streamed request; leaving the block closes the upstream connection (a cancel)."""
        response = await self._attempts(self._request(provider, "POST", path, body, headers), stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()
