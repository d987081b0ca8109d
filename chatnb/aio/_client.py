"""Async ``ChatClient`` and ``ChatThreadClient`` over one ``httpx.AsyncClient``; same names, same core.

>>> async with ChatClient(endpoint, credential) as chat:
...     thread = chat.get_chat_thread_client((await chat.create_chat_thread("Lunch")).chat_thread.id)
...     await thread.send_message("Pizza?")
...     frame = await thread.list_messages()
...     async for message in thread.iter_messages():
...         ...
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pandas as pd

from .. import _core
from .._chat_ops import ChatOperations, ThreadOperations
from .._core import Call, Paged, RetryPolicy
from .._realtime_client import AsyncRealtimeMixin
from ..credential import as_credential
from ..errors import ChatError, transport_error
from ..models import (
    ChatMessage,
    ChatMessageReadReceipt,
    ChatMessageType,
    ChatParticipant,
    ChatRetentionPolicy,
    ChatThreadItem,
    ChatThreadProperties,
    CommunicationIdentifier,
    CreateChatThreadResult,
    SendChatMessageResult,
)
from ..paging import MessagePage
from ._credential import CommunicationTokenCredential

__all__ = ["ChatClient", "ChatThreadClient"]

T = TypeVar("T")
M = TypeVar("M")
_S = TypeVar("_S", bound="_AsyncBase")


class _AsyncBase:
    """Sends the core's requests asynchronously: authorises, retries 429/503, follows ``nextLink``."""

    endpoint: str

    def _setup(
        self,
        endpoint: str,
        *,
        connection_verify: Any,
        timeout: Any,
        transport: httpx.AsyncBaseTransport | None,
        retry_policy: RetryPolicy | None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = _core.normalize_endpoint(endpoint)
        self.retry_policy = retry_policy or RetryPolicy()
        self.transport = transport
        if http_client is not None:
            self._http, self._owns_http = http_client, False
            self.connection_verify: Any = connection_verify
            self.timeout = http_client.timeout
            return
        self.connection_verify = _core.resolve_verify(self.endpoint, connection_verify)
        self.timeout = _core.resolve_timeout(timeout)
        self._http = httpx.AsyncClient(
            verify=self.connection_verify,
            timeout=self.timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60),
        )
        self._owns_http = True

    async def _authorize(self, request: httpx.Request) -> None:
        raise NotImplementedError

    async def _send_raw(self, request: httpx.Request) -> httpx.Response:
        retries, waited = 0, 0.0
        while True:
            await self._authorize(request)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                raise transport_error(exc, request) from exc
            delay = self.retry_policy.next_delay(response, retries, waited)
            if delay is None:
                return response
            await response.aclose()
            await asyncio.sleep(delay)
            retries, waited = retries + 1, waited + delay

    async def _send(self, call: Call[T]) -> T:
        return call.parse(await self._send_raw(call.request))

    async def _pages(
        self, paged: Paged[M]
    ) -> AsyncIterator[tuple[list[dict[str, Any]], httpx.Request | None]]:
        request: httpx.Request | None = paged.request
        while request is not None:
            items, request = paged.page(await self._send_raw(request))
            yield items, request

    async def _iter(self, paged: Paged[M]) -> AsyncIterator[M]:
        async for items, _ in self._pages(paged):
            for item in items:
                yield paged.model(item)

    async def _message_pages(self, paged: Paged[ChatMessage]) -> AsyncIterator[MessagePage]:
        async for items, following in self._pages(paged):
            yield _core.message_page(items, following)

    async def _frame(self, paged: Paged[M]) -> pd.DataFrame:
        items: list[dict[str, Any]] = []
        async for page, _ in self._pages(paged):
            items.extend(page)
        return paged.frame(items)

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The underlying ``httpx.AsyncClient`` (shared with thread clients made by ``ChatClient``)."""
        return self._http

    async def close(self) -> None:
        """Close the connections (a thread client from ``get_chat_thread_client`` shares its parent's)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _BearerBase(_AsyncBase):
    credential: Any
    api_version: str

    async def _authorize(self, request: httpx.Request) -> None:
        token = self.credential.get_token()  # an async credential, or a sync one
        if inspect.isawaitable(token):
            token = await token
        request.headers["Authorization"] = "Bearer " + token.token


class ChatClient(AsyncRealtimeMixin, _BearerBase):
    """Async twin of :class:`chatnb.ChatClient` (same arguments; methods are coroutines, ``iter_*`` are
    async generators). The credential may be the async or the sync ``CommunicationTokenCredential``.
    Real-time events: ``on()``, ``off()``, ``await start_realtime_notifications()``, ``events()``."""

    def __init__(
        self,
        endpoint: str,
        credential: CommunicationTokenCredential | Any,
        *,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        api_version: str = _core.CHAT_API_VERSION,
    ) -> None:
        self.credential = as_credential(credential, CommunicationTokenCredential)
        self.api_version = api_version
        self._setup(
            endpoint,
            connection_verify=connection_verify,
            timeout=timeout,
            transport=transport,
            retry_policy=retry_policy,
        )
        self._ops = ChatOperations(self.endpoint, api_version)

    def __repr__(self) -> str:
        return f"<aio.ChatClient {self.endpoint}>"

    def get_chat_thread_client(self, thread_id: str) -> ChatThreadClient:
        """A client for ``thread_id``; no network call; shares this client's connections and settings."""
        return ChatThreadClient._child(self, thread_id)

    async def create_chat_thread(
        self,
        topic: str,
        thread_participants: list[ChatParticipant] | None = None,
        idempotency_token: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        retention_policy: ChatRetentionPolicy | None = None,
    ) -> CreateChatThreadResult:
        """See :meth:`chatnb.ChatClient.create_chat_thread`."""
        call = self._ops.create_chat_thread(
            topic, thread_participants, idempotency_token, metadata, retention_policy
        )
        return await self._send(call)

    async def list_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        """See :meth:`chatnb.ChatClient.list_chat_threads`."""
        return await self._frame(self._ops.list_chat_threads(results_per_page, start_time))

    def iter_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> AsyncIterator[ChatThreadItem]:
        """The caller's threads, fetched page by page (``async for``)."""
        return self._iter(self._ops.list_chat_threads(results_per_page, start_time))

    async def delete_chat_thread(self, thread_id: str) -> None:
        """Delete a thread (succeeds if it is already gone)."""
        return await self._send(self._ops.delete_chat_thread(thread_id))


class ChatThreadClient(_BearerBase):
    """Async twin of :class:`chatnb.ChatThreadClient`."""

    def __init__(
        self,
        endpoint: str,
        credential: CommunicationTokenCredential | Any,
        thread_id: str,
        *,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        api_version: str = _core.CHAT_API_VERSION,
        _http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._ops = ThreadOperations(endpoint, thread_id, api_version)
        self.credential = as_credential(credential, CommunicationTokenCredential)
        self.api_version = api_version
        self._setup(
            endpoint,
            connection_verify=connection_verify,
            timeout=timeout,
            transport=transport,
            retry_policy=retry_policy,
            http_client=_http_client,
        )
        self._default_display_name: str | None = None

    @classmethod
    def _child(cls, parent: ChatClient, thread_id: str) -> ChatThreadClient:
        return cls(
            parent.endpoint,
            parent.credential,
            thread_id,
            connection_verify=parent.connection_verify,
            transport=parent.transport,
            retry_policy=parent.retry_policy,
            api_version=parent.api_version,
            _http_client=parent.http_client,
        )

    def __repr__(self) -> str:
        return f"<aio.ChatThreadClient {self.thread_id} at {self.endpoint}>"

    @property
    def thread_id(self) -> str:
        return self._ops.thread_id

    async def get_properties(self) -> ChatThreadProperties:
        return await self._send(self._ops.get_properties())

    async def update_topic(self, topic: str) -> None:
        return await self._send(self._ops.update_properties(topic))

    async def update_properties(
        self,
        *,
        topic: str | None = None,
        metadata: dict[str, str] | None = None,
        retention_policy: ChatRetentionPolicy | None = None,
    ) -> None:
        return await self._send(self._ops.update_properties(topic, metadata, retention_policy))

    async def send_message(
        self,
        content: str,
        *,
        chat_message_type: ChatMessageType | str | None = None,
        sender_display_name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> SendChatMessageResult:
        name = self._default_display_name if sender_display_name is None else sender_display_name
        return await self._send(self._ops.send_message(content, chat_message_type, name, metadata))

    async def get_message(self, message_id: str) -> ChatMessage:
        return await self._send(self._ops.get_message(message_id))

    async def list_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        return await self._frame(self._ops.list_messages(results_per_page, start_time))

    def iter_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> AsyncIterator[ChatMessage]:
        return self._iter(self._ops.list_messages(results_per_page, start_time))

    def iter_message_pages(
        self,
        *,
        results_per_page: int | None = None,
        start_time: datetime | None = None,
        continuation_token: str | None = None,
    ) -> AsyncIterator[MessagePage]:
        """See :meth:`chatnb.ChatThreadClient.iter_message_pages` (here ``async for``)."""
        paged = self._ops.list_message_pages(results_per_page, start_time, continuation_token)
        return self._message_pages(paged)

    async def update_message(
        self, message_id: str, content: str | None = None, *, metadata: dict[str, str] | None = None
    ) -> None:
        return await self._send(self._ops.update_message(message_id, content, metadata))

    async def delete_message(self, message_id: str) -> None:
        return await self._send(self._ops.delete_message(message_id))

    async def list_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        return await self._frame(self._ops.list_participants(results_per_page, skip))

    def iter_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> AsyncIterator[ChatParticipant]:
        return self._iter(self._ops.list_participants(results_per_page, skip))

    async def add_participants(
        self, thread_participants: list[ChatParticipant]
    ) -> list[tuple[ChatParticipant | None, ChatError]]:
        return await self._send(self._ops.add_participants(thread_participants))

    async def remove_participant(self, identifier: CommunicationIdentifier | str) -> None:
        return await self._send(self._ops.remove_participant(identifier))

    async def send_typing_notification(self, *, sender_display_name: str | None = None) -> None:
        name = self._default_display_name if sender_display_name is None else sender_display_name
        return await self._send(self._ops.send_typing_notification(name))

    async def send_read_receipt(self, message_id: str) -> None:
        return await self._send(self._ops.send_read_receipt(message_id))

    async def list_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        return await self._frame(self._ops.list_read_receipts(results_per_page, skip))

    def iter_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> AsyncIterator[ChatMessageReadReceipt]:
        return self._iter(self._ops.list_read_receipts(results_per_page, skip))
