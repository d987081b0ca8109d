"""``ChatClient`` and ``ChatThreadClient``: the official SDK's chat API over one ``httpx.AsyncClient``.

>>> async with ChatClient(endpoint, CommunicationTokenCredential(token)) as chat:
...     created = await chat.create_chat_thread("Lunch")
...     thread = chat.get_chat_thread_client(created.chat_thread.id)
...     await thread.send_message("Pizza?")
...     frame = await thread.list_messages()        # a DataFrame, oldest first
...     async for message in thread.iter_messages():
...         ...

Every ``list_*`` returns a :mod:`pandas` DataFrame (see :mod:`chatnb.frames` for the columns), and each
has an ``iter_*`` twin yielding typed models page by page, in the service's order. Methods only send what
:mod:`chatnb._core` builds, through one sender (:mod:`chatnb.aio._sender`), so the sync clients and the
async ones (:mod:`chatnb.aio`, the source the sync module is generated from) behave the same by
construction. Both work in a notebook cell, where an asyncio loop is already running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pandas as pd

from .. import _core
from .._chat_ops import ChatOperations, ThreadOperations
from .._core import RetryPolicy
from .._realtime_client import AsyncRealtimeMixin
from ..errors import ChatError
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
from ._flavour import as_credential
from ._sender import BearerAuth, ClientBase

__all__ = ["ChatClient", "ChatThreadClient"]


class ChatClient(AsyncRealtimeMixin, ClientBase):
    """Creates, lists and deletes chat threads, and hands out :class:`ChatThreadClient` s.

    Args:
        endpoint: the ACS resource (or emulator) endpoint.
        credential: a :class:`~chatnb.CommunicationTokenCredential` (a token string is wrapped in one).
            The chatnb.aio clients also take the sync credential (asked in a worker thread).
        connection_verify: ``True``, ``False``, a CA bundle path or an ``ssl.SSLContext``; by default the
            embedded emulator's certificate for a local emulator, else the system trust store.
        timeout: seconds (or an ``httpx.Timeout``: its longest part) for each attempt of a request in
            all (connect, send and read the whole answer; not a limit per read); default 30. A retry
            after a 429/503 is a new attempt. ``None``: no limit.
        transport: an ``httpx.AsyncBaseTransport`` to send through (tests).
        retry_policy: when to retry 429/503 (:class:`~chatnb.RetryPolicy`).
        api_version: the Chat API version (default ``2024-03-07``; thread metadata and retention use
            ``2025-03-15`` for those requests).

    Raises:
        TypeError: for a credential that is not one (the sync clients: an async one), or a bad endpoint.

    >>> async with ChatClient(endpoint, credential) as chat:
    ...     result = await chat.create_chat_thread("Lunch", thread_participants=[ChatParticipant(other_id)])
    ...     threads = await chat.list_chat_threads()
    >>> threads.loc[threads.id == result.chat_thread.id, "topic"].tolist()
    ['Lunch']

    Real-time events, as in the JavaScript SDK (see :mod:`chatnb._realtime_client`), on a client that
    stays open:

    >>> chat = ChatClient(endpoint, credential)
    >>> chat.on("chatMessageReceived", lambda event: print(event.message))
    >>> await chat.start_realtime_notifications()
    >>> await chat.close()                              # stops the notifications too
    """

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
            BearerAuth(self.credential),
            connection_verify=connection_verify,
            timeout=timeout,
            transport=transport,
            retry_policy=retry_policy,
        )
        self._ops = ChatOperations(self.endpoint, api_version)

    def __repr__(self) -> str:
        return f"<aio.ChatClient {self.endpoint}>"

    def get_chat_thread_client(
        self, thread_id: str, *, default_display_name: str | None = None
    ) -> ChatThreadClient:
        """A client for ``thread_id``; no network call. It shares this client's connections and settings.

        Args:
            thread_id: the thread.
            default_display_name: the ``sender_display_name`` its messages and typing notifications
                carry when none is given.

        Raises:
            ValueError: if ``thread_id`` is empty.
        """
        return ChatThreadClient(
            self.endpoint,
            self.credential,
            thread_id,
            default_display_name=default_display_name,
            connection_verify=self.connection_verify,
            transport=self.transport,
            retry_policy=self.retry_policy,
            api_version=self.api_version,
            _http_client=self.http_client,
        )

    async def create_chat_thread(
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
        return await self._sender.call(call)

    async def list_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        """The caller's threads as a DataFrame: ``id``, ``topic``, ``last_message_received_on``,
        ``deleted_on``; ``start_time`` keeps threads active since then."""
        return await self._sender.frame(self._ops.list_chat_threads(results_per_page, start_time))

    def iter_chat_threads(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> AsyncIterator[ChatThreadItem]:
        """The caller's threads as :class:`~chatnb.ChatThreadItem` s, fetched page by page."""
        return self._sender.items(self._ops.list_chat_threads(results_per_page, start_time))

    async def delete_chat_thread(self, thread_id: str) -> None:
        """Delete a thread (succeeds if it is already gone)."""
        return await self._sender.call(self._ops.delete_chat_thread(thread_id))


class ChatThreadClient(ClientBase):
    """Messages, participants, typing and read receipts of one thread.

    Usually made by :meth:`ChatClient.get_chat_thread_client`; built directly it takes the same keyword
    arguments as :class:`ChatClient`, and ``default_display_name`` (the ``sender_display_name`` of
    messages and typing notifications that give none).

    >>> sent = await thread.send_message("hello", sender_display_name="Jack")
    >>> sent.id
    >>> await thread.list_messages(start_time=yesterday)
    >>> async for message in thread.iter_messages():   # newest first, page by page
    ...     ...
    """

    def __init__(
        self,
        endpoint: str,
        credential: CommunicationTokenCredential | Any,
        thread_id: str,
        *,
        default_display_name: str | None = None,
        connection_verify: Any = None,
        timeout: float | httpx.Timeout | None = _core.DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_policy: RetryPolicy | None = None,
        api_version: str = _core.CHAT_API_VERSION,
        _http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._ops = ThreadOperations(endpoint, thread_id, api_version)
        self._default_display_name = _core.check_optional_text(default_display_name, "default_display_name")
        self.credential = as_credential(credential, CommunicationTokenCredential)
        self.api_version = api_version
        self._setup(
            endpoint,
            BearerAuth(self.credential),
            connection_verify=connection_verify,
            timeout=timeout,
            transport=transport,
            retry_policy=retry_policy,
            http_client=_http_client,
        )

    def __repr__(self) -> str:
        return f"<aio.ChatThreadClient {self.thread_id} at {self.endpoint}>"

    @property
    def thread_id(self) -> str:
        """The thread's id."""
        return self._ops.thread_id

    @property
    def default_display_name(self) -> str | None:
        """The ``sender_display_name`` of messages and typing notifications that give none."""
        return self._default_display_name

    def _display_name(self, given: str | None) -> str | None:
        return self._default_display_name if given is None else given

    async def get_properties(self) -> ChatThreadProperties:
        """The thread's properties (with ``metadata`` and ``retention_policy``)."""
        return await self._sender.call(self._ops.get_properties())

    async def update_topic(self, topic: str) -> None:
        """Change the topic (writes a ``topicUpdated`` message)."""
        return await self._sender.call(self._ops.update_properties(topic))

    async def update_properties(
        self,
        *,
        topic: str | None = None,
        metadata: dict[str, str] | None = None,
        retention_policy: ChatRetentionPolicy | None = None,
    ) -> None:
        """Change the topic, merge ``metadata`` into the thread's, or set its retention policy."""
        return await self._sender.call(self._ops.update_properties(topic, metadata, retention_policy))

    async def send_message(
        self,
        content: str,
        *,
        chat_message_type: ChatMessageType | str | None = None,
        sender_display_name: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> SendChatMessageResult:
        """Send a ``text`` (default) or ``html`` message; the result's ``.id`` is the message id.
        Without ``sender_display_name`` it carries the client's :attr:`default_display_name`.

        Raises:
            ValueError: for empty content or another message type.
        """
        name = self._display_name(sender_display_name)
        return await self._sender.call(self._ops.send_message(content, chat_message_type, name, metadata))

    async def get_message(self, message_id: str) -> ChatMessage:
        """One message. Raises ``NotFoundError`` if it does not exist (or is hidden by history sharing)."""
        return await self._sender.call(self._ops.get_message(message_id))

    async def list_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> pd.DataFrame:
        """Every message (system ones too) as a DataFrame in chronological order; edited messages show
        their new content and ``edited_on``, deleted ones ``deleted_on`` and no content. ``start_time``
        keeps messages created, edited or deleted since then. Columns: :mod:`chatnb.frames`."""
        return await self._sender.frame(self._ops.list_messages(results_per_page, start_time))

    def iter_messages(
        self, *, results_per_page: int | None = None, start_time: datetime | None = None
    ) -> AsyncIterator[ChatMessage]:
        """Messages as :class:`~chatnb.ChatMessage` s, newest first, fetched page by page."""
        return self._sender.items(self._ops.list_messages(results_per_page, start_time))

    def iter_message_pages(
        self,
        *,
        results_per_page: int | None = None,
        start_time: datetime | None = None,
        continuation_token: str | None = None,
    ) -> AsyncIterator[MessagePage]:
        """The message listing one page (one request) at a time, as :class:`~chatnb.MessagePage` s:
        each has the page's ``frame`` (the columns of :meth:`list_messages`, oldest first within the
        page), its ``items`` and its ``continuation_token``. Pages come newest first, as the service
        lists them; there is always at least one (maybe empty).

        ``continuation_token`` (a page's, saved earlier) resumes the listing after that page; it carries
        the listing's page size and start time, so give it alone.

        >>> first = await anext(thread.iter_message_pages(results_per_page=100))
        >>> token = first.continuation_token
        >>> rest = [page async for page in thread.iter_message_pages(continuation_token=token)]
        >>> MessagePage.concat_frames(rest)     # the older messages, in one chronological frame

        Raises:
            ValueError: for a token with ``results_per_page`` or ``start_time``, or a token that is not
                this thread's (another endpoint or thread). BadRequestError: a token the service no
                longer accepts.
        """
        paged = self._ops.list_message_pages(results_per_page, start_time, continuation_token)
        return self._sender.message_pages(paged)

    async def update_message(
        self, message_id: str, content: str | None = None, *, metadata: dict[str, str] | None = None
    ) -> None:
        """Edit your own message's content and/or merge ``metadata`` into it."""
        return await self._sender.call(self._ops.update_message(message_id, content, metadata))

    async def delete_message(self, message_id: str) -> None:
        """Delete your own message (succeeds if it is already gone)."""
        return await self._sender.call(self._ops.delete_message(message_id))

    async def list_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        """Participants as a DataFrame: ``id``, ``display_name``, ``share_history_time``, ``metadata``."""
        return await self._sender.frame(self._ops.list_participants(results_per_page, skip))

    def iter_participants(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> AsyncIterator[ChatParticipant]:
        """Participants as :class:`~chatnb.ChatParticipant` s, page by page."""
        return self._sender.items(self._ops.list_participants(results_per_page, skip))

    async def add_participants(
        self, thread_participants: list[ChatParticipant]
    ) -> list[tuple[ChatParticipant | None, ChatError]]:
        """Add participants; returns the ``(participant, error)`` pairs the service refused (empty if
        all were added), as the official SDK does."""
        return await self._sender.call(self._ops.add_participants(thread_participants))

    async def remove_participant(self, identifier: CommunicationIdentifier | str) -> None:
        """Remove a participant (or leave, with your own identifier)."""
        return await self._sender.call(self._ops.remove_participant(identifier))

    async def send_typing_notification(self, *, sender_display_name: str | None = None) -> None:
        """Tell the other participants you are typing (as :attr:`default_display_name` unless told)."""
        name = self._display_name(sender_display_name)
        return await self._sender.call(self._ops.send_typing_notification(name))

    async def send_read_receipt(self, message_id: str) -> None:
        """Mark ``message_id`` (and everything before it) as read by you."""
        return await self._sender.call(self._ops.send_read_receipt(message_id))

    async def list_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> pd.DataFrame:
        """Read receipts as a DataFrame: ``sender_id``, ``chat_message_id``, ``read_on``."""
        return await self._sender.frame(self._ops.list_read_receipts(results_per_page, skip))

    def iter_read_receipts(
        self, *, results_per_page: int | None = None, skip: int | None = None
    ) -> AsyncIterator[ChatMessageReadReceipt]:
        """Read receipts as :class:`~chatnb.ChatMessageReadReceipt` s, page by page."""
        return self._sender.items(self._ops.list_read_receipts(results_per_page, skip))
