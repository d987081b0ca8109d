"""The one sender: authorises, retries and pages every request chatnb makes (written once, async, in
``chatnb/aio/_sender.py``; ``chatnb/_sender.py`` is generated from it).

:class:`Sender` takes the requests the sans-I/O core builds (:mod:`chatnb._core`) and sends them through
one ``httpx.AsyncClient``: it authorises every attempt (:class:`BearerAuth` for a user's token,
:class:`HmacAuth` for the access key), holds every attempt to its deadline (the client's ``timeout`` is
the budget of the whole attempt: :func:`~chatnb._transport.attempt_budget`), retries what
:class:`~chatnb.RetryPolicy` says (429/503, honouring ``Retry-After`` up to its cap), turns httpx failures
into the errors of :mod:`chatnb.errors`, and follows ``nextLink`` from page to page, only to the endpoint
and never twice to the same page. The clients, the poller, the event stream and the export all send
through it, so a rule about sending (a deadline, which links to follow, how long to wait) is written
here, once.

:class:`ClientBase` is what every client shares: its endpoint and settings, its ``httpx.AsyncClient``
(owned, or shared with the client that made it), its sender and closing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

import httpx
import pandas as pd

from .._core import (
    Call,
    Json,
    LinkTrail,
    Paged,
    RetryPolicy,
    attempt_budget,
    message_page,
    normalize_endpoint,
    parse_retry_after,
    resolve_timeout,
    resolve_verify,
)
from ..errors import decoding_error, error_from_response, transport_error
from ..paging import MessagePage
from ._flavour import bearer_token, call_refresher, default_transport, within

__all__ = ["Auth", "BearerAuth", "ClientBase", "HmacAuth", "Sender", "open_http"]

T = TypeVar("T")
M = TypeVar("M")
_C = TypeVar("_C", bound="ClientBase")


class Auth(Protocol):
    """What authorises a request: sets its headers, again on every attempt."""

    async def authorize(self, request: httpx.Request) -> None: ...


class BearerAuth:
    """``Authorization: Bearer <token>``, the token asked from ``credential`` on every attempt (so a
    refreshed token is used as soon as there is one)."""

    def __init__(self, credential: object) -> None:
        self.credential = credential

    async def authorize(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = "Bearer " + await bearer_token(self.credential)

    async def renew(self) -> bool:
        """After a 401: have the credential refresh its token now, if it can (chatnb's credential with a
        refresher: the service may end a token before its ``exp``, by its own clock or a revocation)."""
        refresh = getattr(self.credential, "refresh", None)
        return callable(refresh) and bool(await call_refresher(refresh))


class HmacAuth:
    """The access key's HMAC-SHA256 signature (``signer.sign(request)``: it carries the time, so it is
    made again on every attempt)."""

    def __init__(self, signer: Any) -> None:
        self._signer = signer

    async def authorize(self, request: httpx.Request) -> None:
        self._signer.sign(request)


def open_http(
    verify: Any, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` of a client, the poller or the event stream (``verify`` as
    :func:`~chatnb._core.resolve_verify` gives it; without a ``transport``, httpx's own, bounded by the
    attempts' deadlines)."""
    limits = httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60)
    return httpx.AsyncClient(
        verify=verify,
        timeout=timeout,
        transport=transport or default_transport(verify, limits),
        limits=limits,
    )


class Sender:
    """Sends the core's requests through ``http``, authorised by ``auth``, retried by ``retry_policy``.

    Args:
        http: the ``httpx.AsyncClient`` to send through (not closed by the sender).
        auth: authorises each attempt (:class:`BearerAuth`, :class:`HmacAuth`...).
        retry_policy: which answers are retried, and how long to wait.
        limit: a context manager held around each attempt (the poller's ``asyncio.Semaphore``).
    """

    def __init__(
        self, http: httpx.AsyncClient, auth: Auth, retry_policy: RetryPolicy, *, limit: Any = None
    ) -> None:
        self.http = http
        self.auth = auth
        self.retry_policy = retry_policy
        self._limit = contextlib.nullcontext() if limit is None else limit

    def budget(self, request: httpx.Request) -> float | None:
        """Seconds one attempt of ``request`` may take in all: from its own ``timeout`` extension, else
        the client's timeout (:func:`~chatnb._transport.attempt_budget`)."""
        return attempt_budget(request.extensions.get("timeout") or self.http.timeout)

    async def _attempt(
        self, request: httpx.Request, stream: bool = False, budget: float | None = None
    ) -> httpx.Response:
        try:
            seconds = self.budget(request) if budget is None else budget
            return await within(seconds, self.http.send, request, stream=stream)
        except httpx.DecodingError as exc:  # a body that its Content-Encoding does not decode
            raise decoding_error(request, f"the body does not decode ({type(exc).__name__})") from exc
        except httpx.RequestError as exc:
            raise transport_error(exc, request) from exc

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response to ``request``, authorised on every attempt, each attempt within its budget
        (:meth:`budget`), and retried as the retry policy says (the last answer is returned, whatever its
        status).

        Raises:
            TransportError: no response (also: no complete answer within the budget). DecodingError: a
                body that its ``Content-Encoding`` does not decode. RateLimitError,
                ServiceUnavailableError: a 429/503 asking for a wait longer than the retry policy allows
                (:meth:`~chatnb.RetryPolicy.refused_wait`: the error names the wait and the caps).
        """
        retries, waited, renewed = 0, 0.0, False
        while True:
            await self.auth.authorize(request)
            async with self._limit:
                response = await self._attempt(request)
            delay = self.retry_policy.next_delay(response, retries, waited)
            if delay is None and response.status_code == 401 and not renewed:
                renew = getattr(self.auth, "renew", None)  # once, with a fresh token, if there can be one
                renewed = True
                if renew is not None and await renew():
                    await response.aclose()
                    continue
            if delay is None:
                refused = self.retry_policy.refused_wait(response, waited)
                if refused is not None:
                    raise error_from_response(response, parse_retry_after(response.headers), note=refused)
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            retries, waited = retries + 1, waited + delay

    async def call(self, call: Call[T]) -> T:
        """The result of one operation.

        Raises:
            ChatError: the typed error of a failure (:mod:`chatnb.errors`).
        """
        return call.result(await self.send(call.request))

    async def pages(self, paged: Paged[M]) -> AsyncIterator[tuple[list[Json], httpx.Request | None]]:
        """Each page of a listing as it is fetched: its wire items, and the request of the next page
        (``None`` after the last). The one paging loop: what links it follows is decided here and in
        :meth:`~chatnb._core.Paged.page`."""
        request: httpx.Request | None = paged.request
        trail = LinkTrail(paged.request)
        while request is not None:
            response = await self.send(request)
            items, following = paged.page(response)
            if following is not None:
                trail.follow(following, response.request)
            request = following
            yield items, request

    async def items(self, paged: Paged[M]) -> AsyncIterator[M]:
        """A listing's items as models, fetched page by page."""
        async for items, _ in self.pages(paged):
            for item in items:
                yield paged.to_model(item)

    async def collect(self, paged: Paged[M]) -> list[M]:
        """Every item of a listing, as models."""
        out: list[M] = []
        async for items, _ in self.pages(paged):
            out += paged.models(items)
        return out

    async def frame(self, paged: Paged[M]) -> pd.DataFrame:
        """Every item of a listing, as its DataFrame."""
        items: list[Json] = []
        async for page, _ in self.pages(paged):
            items.extend(page)
        return paged.to_frame(items)

    async def message_pages(self, paged: Paged[M]) -> AsyncIterator[MessagePage]:
        """A message listing one page at a time, as :class:`~chatnb.MessagePage` s."""
        async for items, following in self.pages(paged):
            yield message_page(items, following)

    @contextlib.asynccontextmanager
    async def stream(
        self, request: httpx.Request, budget: float | None = None
    ) -> AsyncIterator[httpx.Response]:
        """The response to ``request`` with its body still to read (``aiter_text()``...): authorised
        once and not retried (the event stream reconnects on its own terms); closed on exit. The
        deadline (``budget`` seconds, else :meth:`budget`) holds until the headers are in; the body is
        read with the per-read timeout only.

        Raises:
            TransportError: no response (errors while reading the body are httpx's).
        """
        await self.auth.authorize(request)
        response = await self._attempt(request, stream=True, budget=budget)
        try:
            yield response
        finally:
            await response.aclose()


class ClientBase:
    """The endpoint, settings, ``httpx.AsyncClient`` and :class:`Sender` of a client; closing."""

    endpoint: str

    def _setup(
        self,
        endpoint: str,
        auth: Auth,
        *,
        connection_verify: Any,
        timeout: Any,
        transport: httpx.AsyncBaseTransport | None,
        retry_policy: RetryPolicy | None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.retry_policy = retry_policy or RetryPolicy()
        self.transport = transport
        if http_client is not None:
            self._http, self._owns_http = http_client, False
            self.connection_verify: Any = connection_verify
            self.timeout = http_client.timeout
        else:
            self.connection_verify = resolve_verify(self.endpoint, connection_verify)
            self.timeout = resolve_timeout(timeout)
            self._http, self._owns_http = open_http(self.connection_verify, self.timeout, transport), True
        self._sender = Sender(self._http, auth, self.retry_policy)

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient`` (shared with thread clients made by ``ChatClient``)."""
        return self._http

    async def close(self) -> None:
        """Close the connections (a thread client from ``get_chat_thread_client`` shares its parent's)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
