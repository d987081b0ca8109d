"""``ChatClient`` and ``ChatThreadClient``: the official SDK's chat API over one ``httpx.Client``.

>>> chat = ChatClient(endpoint, CommunicationTokenCredential(token))
>>> thread = chat.get_chat_thread_client(chat.create_chat_thread("Lunch").chat_thread.id)
>>> thread.send_message("Pizza?")
>>> thread.list_messages()            # a DataFrame, oldest first

Every ``list_*`` returns a :mod:`pandas` DataFrame (see :mod:`chatnb.frames` for the columns), and each
has an ``iter_*`` twin yielding typed models page by page, in the service's order. Methods only send what
:mod:`chatnb._core` builds, so they behave exactly like their :mod:`chatnb.aio` twins. Plain blocking
httpx: works in a notebook cell, where an asyncio loop is already running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pandas as pd

from . import _core
from ._chat_ops import ChatOperations, ThreadOperations
from ._core import Call, Paged, RetryPolicy
from ._realtime_client import SyncRealtimeMixin
from .credential import CommunicationTokenCredential, as_credential
from .errors import ChatError, transport_error
from .models import (
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
from .paging import MessagePage

__all__ = ["ChatClient", "ChatThreadClient"]

T = TypeVar("T")
M = TypeVar("M")
_S = TypeVar("_S", bound="_SyncBase")


class _SyncBase:
    """Sends the core's requests: authorises each attempt, retries 429/503, follows ``nextLink``."""

    endpoint: str

    def _setup(
        self,
        endpoint: str,
        *,
        connection_verify: Any,
        timeout: Any,
        transport: httpx.BaseTransport | None,
        retry_policy: RetryPolicy | None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = _core.normalize_endpoint(endpoint)
        self.retry_policy = retry_policy or RetryPolicy()
        if http_client is not None:
            self._http, self._owns_http = http_client, False
            self.connection_verify: Any = connection_verify
            self.timeout = http_client.timeout
            self.transport = transport
            return
        self.connection_verify = _core.resolve_verify(self.endpoint, connection_verify)
        self.timeout = _core.resolve_timeout(timeout)
        self.transport = transport
        self._http = httpx.Client(
            verify=self.connection_verify,
            timeout=self.timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=10, keepalive_expiry=60),
        )
        self._owns_http = True

    def _authorize(self, request: httpx.Request) -> None:
        raise NotImplementedError

    def _send_raw(self, request: httpx.Request) -> httpx.Response:
        retries, waited = 0, 0.0
        while True:
            self._authorize(request)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                raise transport_error(exc, request) from exc
            delay = self.retry_policy.next_delay(response, retries, waited)
            if delay is None:
                return response
            response.close()
            time.sleep(delay)
            retries, waited = retries + 1, waited + delay

    def _send(self, call: Call[T]) -> T:
        return call.parse(self._send_raw(call.request))

    def _pages(self, paged: Paged[M]) -> Iterator[tuple[list[dict[str, Any]], httpx.Request | None]]:
        request: httpx.Request | None = paged.request
        while request is not None:
            items, request = paged.page(self._send_raw(request))
            yield items, request

    def _iter(self, paged: Paged[M]) -> Iterator[M]:
        for items, _ in self._pages(paged):
            yield from map(paged.model, items)

    def _frame(self, paged: Paged[M]) -> pd.DataFrame:
        items: list[dict[str, Any]] = []
        for page, _ in self._pages(paged):
            items.extend(page)
        return paged.frame(items)

    @property
    def http_client(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (shared with thread clients made by ``ChatClient``)."""
        return self._http

    def close(self) -> None:
        """Close the connections (a thread client from ``get_chat_thread_client`` shares its parent's)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BearerBase(_SyncBase):
    credential: Any
    api_version: str

    def _authorize(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = "Bearer " + self.credential.get_token().token


class ChatClient(SyncRealtimeMixin, _BearerBase):
    """Creates, lists and deletes chat threads, and hands out :class:`ChatThreadClient` s.

    Args:
        endpoint: the ACS resource (or emulator) endpoint.
        credential: a :class:`~chatnb.CommunicationTokenCredential` (a token string is wrapped in one).
        connection_verify: ``True``, ``False``, a CA bundle path or an ``ssl.SSLContext``; by default the
            embedded emulator's certificate for a local emulator, else the system trust store.
        timeout: seconds (or an ``httpx.Timeout``) per request; default 30.
        transport: an ``httpx.BaseTransport`` to send through (tests).
        retry_policy: when to retry 429/503 (:class:`~chatnb.RetryPolicy`).
        api_version: the Chat API version (default ``2024-03-07``; thread metadata and retention use
            ``2025-03-15`` for those requests).

    >>> with ChatClient(endpoint, credential) as chat:
    ...     result = chat.create_chat_thread("Lunch", thread_participants=[ChatParticipant(other_id)])
    ...     chat.list_chat_threads()

    Real-time events, as in the JavaScript SDK (see :mod:`chatnb._realtime_client`):

    >>> chat.on("chatMessageReceived", lambda event: print(event.message))
    >>> chat.start_realtime_notifications()
    """

    def __init__(
        self,
        endpoint: str,
        credential: CommunicationTokenCredential | Any,
        *,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
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
        return f"<ChatClient {self.endpoint}>"

    def get_chat_thread_client(self, thread_id: str) -> ChatThreadClient:
        """A client for ``thread_id``; no network call. It shares this client's connections and settings.

        Raises:
            ValueError: if ``thread_id`` is empty.
        """
        return ChatThreadClient._child(self, thread_id)

    def create_chat_thread(
        self,
        topic: str,
        thread_participants: list[ChatParticipant] | None = None,
        idempotency_token: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        retention_policy: ChatRetentionPolicy | None = None,
    ) -> CreateChatThreadResult:
        """Create a thread (the caller is always a participant); ``.chat_thread`` and ``.errors``.

        A repeated ``idempotency_token`` returns the same thread. ``metadata`` and ``retention_policy``
        need API 2025-03-15 (used automatically).

        Raises:
            ValueError: for an empty topic. AuthenticationError, ForbiddenError, ...: service errors.
        """
        call = self._ops.create_chat_thread(
            topic, thread_participants, idempotency_token, metadata, retention_policy
        )
        return self._send(call)

    def list_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        """The caller's threads as a DataFrame: ``id``, ``topic``, ``last_message_received_on``,
        ``deleted_on``; ``start_time`` keeps threads active since then."""
        return self._frame(self._ops.list_chat_threads(results_per_page, start_time))

    def iter_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> Iterator[ChatThreadItem]:
        """The caller's threads as :class:`~chatnb.ChatThreadItem` s, fetched page by page."""
        return self._iter(self._ops.list_chat_threads(results_per_page, start_time))

    def delete_chat_thread(self, thread_id: str) -> None:
        """Delete a thread (succeeds if it is already gone)."""
        return self._send(self._ops.delete_chat_thread(thread_id))


class ChatThreadClient(_BearerBase):
    """Messages, participants, typing and read receipts of one thread.

    Usually made by :meth:`ChatClient.get_chat_thread_client`; built directly it takes the same keyword
    arguments as :class:`ChatClient`.

    >>> thread.send_message("hello", sender_display_name="Jack").id
    >>> thread.list_messages(start_time=yesterday)
    >>> for message in thread.iter_messages():   # newest first, page by page
    ...     ...
    """

    def __init__(
        self,
        endpoint: str,
        credential: CommunicationTokenCredential | Any,
        thread_id: str,
        *,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        api_version: str = _core.CHAT_API_VERSION,
        _http_client: httpx.Client | None = None,
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
        return f"<ChatThreadClient {self.thread_id} at {self.endpoint}>"

    @property
    def thread_id(self) -> str:
        """The thread's id."""
        return self._ops.thread_id

    def get_properties(self) -> ChatThreadProperties:
        """The thread's properties (with ``metadata`` and ``retention_policy``)."""
        return self._send(self._ops.get_properties())

    def update_topic(self, topic: str) -> None:
        """Change the topic (writes a ``topicUpdated`` message)."""
        return self._send(self._ops.update_properties(topic))

    def update_properties(
        self,
        *,
        topic: str | None = None,
        metadata: dict[str, str] | None = None,
        retention_policy: ChatRetentionPolicy | None = None,
    ) -> None:
        """Change the topic, merge ``metadata`` into the thread's, or set its retention policy."""
        return self._send(self._ops.update_properties(topic, metadata, retention_policy))

    def send_message(
        self,
        content: str,
        *,
        chat_message_type: ChatMessageType | str | None = None,
        sender_display_name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> SendChatMessageResult:
        """Send a ``text`` (default) or ``html`` message; the result's ``.id`` is the message id.

        Raises:
            ValueError: for empty content or another message type.
        """
        name = self._default_display_name if sender_display_name is None else sender_display_name
        return self._send(self._ops.send_message(content, chat_message_type, name, metadata))

    def get_message(self, message_id: str) -> ChatMessage:
        """One message. Raises ``NotFoundError`` if it does not exist (or is hidden by history sharing)."""
        return self._send(self._ops.get_message(message_id))

    def list_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        """Every message (system ones too) as a DataFrame in chronological order; edited messages show
        their new content and ``edited_on``, deleted ones ``deleted_on`` and no content. ``start_time``
        keeps messages created, edited or deleted since then. Columns: :mod:`chatnb.frames`."""
        return self._frame(self._ops.list_messages(results_per_page, start_time))

    def iter_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> Iterator[ChatMessage]:
        """Messages as :class:`~chatnb.ChatMessage` s, newest first, fetched page by page."""
        return self._iter(self._ops.list_messages(results_per_page, start_time))

    def iter_message_pages(
        self,
        *,
        results_per_page: int | None = None,
        start_time: datetime | None = None,
        continuation_token: str | None = None,
    ) -> Iterator[MessagePage]:
        """The message listing one page (one request) at a time, as :class:`~chatnb.MessagePage` s:
        each has the page's ``frame`` (the columns of :meth:`list_messages`, oldest first within the
        page), its ``items`` and its ``continuation_token``. Pages come newest first, as the service
        lists them; there is always at least one (maybe empty).

        ``continuation_token`` (a page's, saved earlier) resumes the listing after that page; it carries
        the listing's page size and start time, so give it alone.

        >>> first = next(thread.iter_message_pages(results_per_page=100))
        >>> rest = thread.iter_message_pages(continuation_token=first.continuation_token)
        >>> MessagePage.concat_frames(rest)     # the older messages, in one chronological frame

        Raises:
            ValueError: for a token with ``results_per_page`` or ``start_time``, or a token that is not
                this thread's (another endpoint or thread). BadRequestError: a token the service no
                longer accepts.
        """
        paged = self._ops.list_message_pages(results_per_page, start_time, continuation_token)
        return (_core.message_page(items, following) for items, following in self._pages(paged))

    def update_message(
        self, message_id: str, content: str | None = None, *, metadata: dict[str, str] | None = None
    ) -> None:
        """Edit your own message's content and/or merge ``metadata`` into it."""
        return self._send(self._ops.update_message(message_id, content, metadata))

    def delete_message(self, message_id: str) -> None:
        """Delete your own message (succeeds if it is already gone)."""
        return self._send(self._ops.delete_message(message_id))

    def list_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        """Participants as a DataFrame: ``id``, ``display_name``, ``share_history_time``, ``metadata``."""
        return self._frame(self._ops.list_participants(results_per_page, skip))

    def iter_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> Iterator[ChatParticipant]:
        """Participants as :class:`~chatnb.ChatParticipant` s, page by page."""
        return self._iter(self._ops.list_participants(results_per_page, skip))

    def add_participants(
        self, thread_participants: list[ChatParticipant]
    ) -> list[tuple[ChatParticipant | None, ChatError]]:
        """Add participants; returns the ``(participant, error)`` pairs the service refused (empty if
        all were added), as the official SDK does."""
        return self._send(self._ops.add_participants(thread_participants))

    def remove_participant(self, identifier: CommunicationIdentifier | str) -> None:
        """Remove a participant (or leave, with your own identifier)."""
        return self._send(self._ops.remove_participant(identifier))

    def send_typing_notification(self, *, sender_display_name: str | None = None) -> None:
        """Tell the other participants you are typing."""
        name = self._default_display_name if sender_display_name is None else sender_display_name
        return self._send(self._ops.send_typing_notification(name))

    def send_read_receipt(self, message_id: str) -> None:
        """Mark ``message_id`` (and everything before it) as read by you."""
        return self._send(self._ops.send_read_receipt(message_id))

    def list_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        """Read receipts as a DataFrame: ``sender_id``, ``chat_message_id``, ``read_on``."""
        return self._frame(self._ops.list_read_receipts(results_per_page, skip))

    def iter_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> Iterator[ChatMessageReadReceipt]:
        """Read receipts as :class:`~chatnb.ChatMessageReadReceipt` s, page by page."""
        return self._iter(self._ops.list_read_receipts(results_per_page, skip))
