"""The sans-I/O core: builds every request, parses every response, decides every retry.

Nothing here sends anything. An operation is a :class:`Call` (one ``httpx.Request`` plus the function
that turns its response into a result or raises the typed error) or a :class:`Paged` listing (the first
request, and how to turn each page into items, the next request, models and a DataFrame). The sync
client (:mod:`chatnb.client`) and the async one (:mod:`chatnb.aio`) only authorise and send these, so the
two behave the same by construction.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import pandas as pd

from . import frames
from ._signing import hmac_headers
from ._time import format_rfc3339, parse_rfc3339, to_us
from .errors import ChatError, error_from_response
from .models import (
    AccessToken,
    ChatMessage,
    ChatMessageReadReceipt,
    ChatMessageType,
    ChatParticipant,
    ChatRetentionPolicy,
    ChatThreadItem,
    ChatThreadProperties,
    CommunicationTokenScope,
    CommunicationUserIdentifier,
    CreateChatThreadResult,
    SendChatMessageResult,
    as_identifier,
)
from .paging import MessagePage

__all__ = [
    "CHAT_API_VERSION",
    "DEFAULT_PAGE_SIZE",
    "IDENTITY_API_VERSION",
    "METADATA_API_VERSION",
    "Call",
    "ChatOperations",
    "IdentityOperations",
    "Paged",
    "RetryPolicy",
    "ThreadOperations",
    "message_page",
    "normalize_endpoint",
    "parse_connection_string",
    "parse_retry_after",
    "resolve_timeout",
    "resolve_verify",
]

CHAT_API_VERSION = "2024-03-07"
METADATA_API_VERSION = "2025-03-15"
IDENTITY_API_VERSION = "2023-10-01"
DEFAULT_PAGE_SIZE = 200
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "chatnb/0.1.0 (+httpx)"

T = TypeVar("T")
M = TypeVar("M")
Json = dict[str, Any]


# -- retries -----------------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks to wait: ``retry-after-ms``, ``x-ms-retry-after-ms``, or ``Retry-After``
    in seconds or as an HTTP-date. ``None`` when it does not say (or says nonsense)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry: only 429 and 503 (nothing else is retried), at most ``max_retries`` times.

    The wait honours the response's ``Retry-After`` (seconds or HTTP-date); without one it backs off
    exponentially, ``backoff_factor * 2**n`` capped at ``backoff_max``. A retry that would take the total
    wait past ``max_total_wait`` is not made: the 429/503 is raised as ``RateLimitError`` /
    ``ServiceUnavailableError`` with its ``retry_after``.

    >>> ChatClient(endpoint, credential, retry_policy=RetryPolicy(max_retries=0))  # never retry
    """

    max_retries: int = 6
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    statuses: frozenset[int] = field(default=frozenset({429, 503}))

    def next_delay(self, response: httpx.Response, retries: int, waited: float) -> float | None:
        """Seconds to wait before retrying ``response``'s request, or ``None`` to stop and return it."""
        if response.status_code not in self.statuses or retries >= self.max_retries:
            return None
        delay = parse_retry_after(response.headers)
        if delay is None:
            delay = min(self.backoff_max, self.backoff_factor * (2**retries))
        if waited + delay > self.max_total_wait:
            return None
        return delay


# -- transport settings ------------------------------------------------------------------------


def normalize_endpoint(endpoint: object) -> str:
    """``endpoint`` with a scheme (https by default) and without a trailing slash.

    Raises:
        TypeError, ValueError: if it is not a URL string with a host.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a URL string, not {type(endpoint).__name__}")
    text = endpoint.strip()
    if not text:
        raise ValueError("endpoint must not be empty")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"endpoint is not an http(s) URL: {endpoint!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def resolve_verify(endpoint: str, connection_verify: object) -> bool | ssl.SSLContext:
    """What httpx should verify TLS with.

    ``True``/``False``, a CA bundle path or an ``ssl.SSLContext``; ``None`` means: the embedded
    emulator's certificate for a known local emulator endpoint, else the system's trust store.
    """
    if connection_verify is None:
        from .emulator import ca_for_endpoint

        ca = ca_for_endpoint(endpoint + "/")
        return True if ca is None else ssl.create_default_context(cafile=str(ca))
    if isinstance(connection_verify, bool | ssl.SSLContext):
        return connection_verify
    if isinstance(connection_verify, str | Path):
        path = Path(connection_verify).expanduser()
        if not path.is_file():
            raise ValueError(f"connection_verify: no CA bundle at {str(path)!r}")
        return ssl.create_default_context(cafile=str(path))
    raise TypeError("connection_verify must be True, False, a CA bundle path or an ssl.SSLContext")


def resolve_timeout(timeout: object) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None or (isinstance(timeout, int | float) and not isinstance(timeout, bool)):
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        return httpx.Timeout(timeout)
    raise TypeError("timeout must be a number of seconds, an httpx.Timeout or None")


def parse_connection_string(connection_string: object) -> tuple[str, str]:
    """``(endpoint, access_key)`` of ``endpoint=...;accesskey=...``.

    Raises:
        ValueError: if either part is missing (the message never repeats the key).
    """
    if not isinstance(connection_string, str):
        raise TypeError("the connection string must be a string")
    parts: dict[str, str] = {}
    for segment in connection_string.split(";"):
        name, sep, value = segment.partition("=")
        if sep:
            parts[name.strip().lower()] = value.strip()
    endpoint, key = parts.get("endpoint"), parts.get("accesskey")
    if not endpoint or not key:
        raise ValueError("a connection string looks like 'endpoint=https://...;accesskey=<base64 key>'")
    return endpoint, key


# -- argument checks ---------------------------------------------------------------------------


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    return value


def _metadata(value: object, name: str = "metadata") -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"{name} must be a dict of str to str")
    return dict(value)


def _count(value: object, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def _start_time(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return format_rfc3339(to_us(parse_rfc3339(value)))
        except ValueError:
            raise ValueError(f"start_time is not an RFC 3339 date-time: {value!r}") from None
    if not isinstance(value, datetime):
        raise TypeError(f"start_time must be a datetime, not {type(value).__name__}")
    return format_rfc3339(to_us(value))


def _participant(value: object) -> ChatParticipant:
    if isinstance(value, ChatParticipant):
        return value
    if hasattr(value, "identifier"):  # official-SDK participants, chatnb.session.User
        return ChatParticipant(
            as_identifier(value.identifier),
            getattr(value, "display_name", None),
            getattr(value, "share_history_time", None),
            getattr(value, "metadata", None),
        )
    return ChatParticipant(as_identifier(value))


def _participants(values: object, name: str) -> list[ChatParticipant]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of ChatParticipant")
    return [_participant(v) for v in values]


def _participant_wire(p: ChatParticipant) -> Json:
    out: Json = {"communicationIdentifier": p.identifier._to_wire()}
    if p.display_name is not None:
        out["displayName"] = p.display_name
    if p.share_history_time is not None:
        out["shareHistoryTime"] = format_rfc3339(to_us(p.share_history_time))
    if p.metadata:
        out["metadata"] = _metadata(p.metadata, "participant metadata")
    return out


def _scopes(scopes: object) -> list[str]:
    if isinstance(scopes, str):
        scopes = [scopes]
    if not isinstance(scopes, Iterable):
        raise TypeError("scopes must be a list of scope names, like ['chat']")
    out: list[str] = []
    for scope in scopes:
        try:
            out.append(CommunicationTokenScope(scope).value)
        except ValueError:
            known = ", ".join(s.value for s in CommunicationTokenScope)
            raise ValueError(f"unknown token scope {scope!r}; known scopes: {known}") from None
    if not out:
        raise ValueError("scopes must name at least one scope, like ['chat']")
    return out


def _expires_in_minutes(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError("token_expires_in must be a datetime.timedelta")
    minutes = int(value.total_seconds() // 60)
    if not 60 <= minutes <= 1440:
        raise ValueError("token_expires_in must be from 1 hour to 24 hours")
    return minutes


def _user_id(user: object) -> str:
    return as_identifier(user).raw_id


# -- requests and responses ---------------------------------------------------------------------


def _check(response: httpx.Response) -> None:
    if not response.is_success:
        raise error_from_response(response, parse_retry_after(response.headers))


def _json(response: httpx.Response) -> Json:
    _check(response)
    if not response.content:
        return {}
    body = response.json()
    if not isinstance(body, dict):
        raise ChatError(f"the service sent a {type(body).__name__} where a JSON object was expected")
    return body


def _nothing(response: httpx.Response) -> None:
    _check(response)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its response."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]


@dataclass(frozen=True)
class Paged(Generic[M]):
    """A listing: its first request; each page gives wire items and the next request (from
    ``nextLink``, used verbatim: it already carries the api-version and continuation)."""

    request: httpx.Request
    model: Callable[[Json], M]
    frame: Callable[[list[Json]], pd.DataFrame]

    def page(self, response: httpx.Response) -> tuple[list[Json], httpx.Request | None]:
        body = _json(response)
        items = body.get("value")
        if not isinstance(items, list):
            raise ChatError("the service sent a listing page without a 'value' array")
        link = body.get("nextLink")
        if not link:
            return items, None
        return items, self.follow(str(link))

    def follow(self, link: str) -> httpx.Request:
        """The request for ``link`` (a ``nextLink``: absolute, or relative to the first request)."""
        url = httpx.URL(link)
        if not url.is_absolute_url:
            url = self.request.url.join(link)
        headers = {k: v for k, v in self.request.headers.items() if k.lower() in ("accept", "user-agent")}
        return httpx.Request("GET", url, headers=headers)

    def resume(self, continuation_token: object) -> Paged[M]:
        """This listing continued from ``continuation_token`` (the ``nextLink`` of an earlier page of
        the same listing: same endpoint and path) instead of from its first page.

        Raises:
            TypeError, ValueError: if the token is not a string, or points elsewhere (a token is sent
                with the credential, so it must not lead to another host or resource).
        """
        if not isinstance(continuation_token, str):
            raise TypeError(f"continuation_token must be a string, not {type(continuation_token).__name__}")
        try:
            request = self.follow(continuation_token)
        except httpx.InvalidURL:
            raise ValueError("continuation_token is not a link of this listing") from None
        if _resource(request.url) != _resource(self.request.url):
            raise ValueError("continuation_token is not a link of this listing (another endpoint or thread)")
        return Paged(request, self.model, self.frame)


def _resource(url: httpx.URL) -> tuple[str, str, int | None, str]:
    return url.scheme, url.host, url.port, url.path


def message_page(items: list[Json], next_request: httpx.Request | None) -> MessagePage:
    """A :class:`~chatnb.MessagePage` of one answer of a message listing."""
    return MessagePage(items, None if next_request is None else str(next_request.url))


class _Requests:
    def __init__(self, endpoint: str, api_version: str) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.api_version = api_version

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        api_version: str | None = None,
    ) -> httpx.Request:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["api-version"] = api_version or self.api_version
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            all_headers["Content-Type"] = "application/json"
        return httpx.Request(method, self.endpoint + path, params=query, content=content, headers=all_headers)

    def _modern(self, needed: bool) -> str:
        return max(self.api_version, METADATA_API_VERSION) if needed else self.api_version


def _errors_for(
    participants: list[ChatParticipant], body: Json
) -> list[tuple[ChatParticipant | None, ChatError]]:
    by_id = {p.identifier.raw_id: p for p in participants}
    return [
        (by_id.get(str(e.get("target"))), ChatError._from_wire(e))
        for e in body.get("invalidParticipants") or ()
        if isinstance(e, dict)
    ]


class ChatOperations(_Requests):
    """Thread-level operations of ``ChatClient``."""

    def create_chat_thread(
        self,
        topic: object,
        thread_participants: object = None,
        idempotency_token: object = None,
        metadata: object = None,
        retention_policy: object = None,
    ) -> Call[CreateChatThreadResult]:
        body: Json = {"topic": _text(topic, "topic")}
        participants = (
            [] if thread_participants is None else _participants(thread_participants, "thread_participants")
        )
        body["participants"] = [_participant_wire(p) for p in participants]
        meta = _metadata(metadata)
        if meta is not None:
            body["metadata"] = meta
        if retention_policy is not None:
            if not isinstance(retention_policy, ChatRetentionPolicy):
                raise TypeError("retention_policy must be a ChatRetentionPolicy")
            body["retentionPolicy"] = retention_policy._to_wire()
        token = (
            str(uuid.uuid4()) if idempotency_token is None else _text(idempotency_token, "idempotency_token")
        )
        modern = meta is not None or retention_policy is not None or any(p.metadata for p in participants)
        request = self.request(
            "POST",
            "/chat/threads",
            body=body,
            headers={"repeatability-request-id": token},
            api_version=self._modern(modern),
        )

        def parse(response: httpx.Response) -> CreateChatThreadResult:
            out = _json(response)
            errors = _errors_for(participants, out) if "invalidParticipants" in out else None
            return CreateChatThreadResult(ChatThreadProperties._from_wire(out["chatThread"]), errors)

        return Call(request, parse)

    def list_chat_threads(
        self, results_per_page: object = None, start_time: object = None
    ) -> Paged[ChatThreadItem]:
        params = {
            "maxPageSize": _count(results_per_page, "results_per_page", 1) or DEFAULT_PAGE_SIZE,
            "startTime": _start_time(start_time),
        }
        return Paged(
            self.request("GET", "/chat/threads", params=params),
            ChatThreadItem._from_wire,
            frames.threads_frame,
        )

    def delete_chat_thread(self, thread_id: object) -> Call[None]:
        return Call(self.request("DELETE", _thread_path(thread_id)), _nothing)


def _thread_path(thread_id: object) -> str:
    return "/chat/threads/" + quote(_text(thread_id, "thread_id"), safe="")


class ThreadOperations(_Requests):
    """Operations of ``ChatThreadClient`` on one thread."""

    def __init__(self, endpoint: str, thread_id: object, api_version: str) -> None:
        super().__init__(endpoint, api_version)
        self.thread_id = _text(thread_id, "thread_id")
        self.path = _thread_path(thread_id)

    def _message_path(self, message_id: object) -> str:
        return f"{self.path}/messages/" + quote(_text(message_id, "message_id"), safe="")

    def get_properties(self) -> Call[ChatThreadProperties]:
        request = self.request("GET", self.path, api_version=self._modern(True))
        return Call(request, lambda r: ChatThreadProperties._from_wire(_json(r)))

    def update_properties(
        self, topic: object = None, metadata: object = None, retention_policy: object = None
    ) -> Call[None]:
        body: Json = {}
        if topic is not None:
            body["topic"] = _text(topic, "topic")
        meta = _metadata(metadata)
        if meta is not None:
            body["metadata"] = meta
        if retention_policy is not None:
            if not isinstance(retention_policy, ChatRetentionPolicy):
                raise TypeError("retention_policy must be a ChatRetentionPolicy")
            body["retentionPolicy"] = retention_policy._to_wire()
        if not body:
            raise ValueError("give a topic, metadata or retention_policy to update")
        modern = meta is not None or retention_policy is not None
        request = self.request("PATCH", self.path, body=body, api_version=self._modern(modern))
        request.headers["Content-Type"] = "application/merge-patch+json"
        return Call(request, _nothing)

    def send_message(
        self,
        content: object,
        chat_message_type: object = None,
        sender_display_name: object = None,
        metadata: object = None,
    ) -> Call[SendChatMessageResult]:
        body: Json = {"content": _text(content, "content")}
        type_ = ChatMessageType.TEXT if chat_message_type is None else chat_message_type
        try:
            type_ = ChatMessageType(type_)
        except ValueError:
            raise ValueError(
                f"chat_message_type must be 'text' or 'html', not {chat_message_type!r}"
            ) from None
        if type_ not in (ChatMessageType.TEXT, ChatMessageType.HTML):
            raise ValueError(f"chat_message_type must be 'text' or 'html', not {type_.value!r}")
        body["type"] = type_.value
        name = _optional_text(sender_display_name, "sender_display_name")
        if name is not None:
            body["senderDisplayName"] = name
        meta = _metadata(metadata)
        if meta is not None:
            body["metadata"] = meta
        request = self.request("POST", f"{self.path}/messages", body=body)
        return Call(request, lambda r: SendChatMessageResult(str(_json(r)["id"])))

    def get_message(self, message_id: object) -> Call[ChatMessage]:
        request = self.request("GET", self._message_path(message_id))
        return Call(request, lambda r: ChatMessage._from_wire(_json(r)))

    def list_messages(self, results_per_page: object = None, start_time: object = None) -> Paged[ChatMessage]:
        params = {
            "maxPageSize": _count(results_per_page, "results_per_page", 1) or DEFAULT_PAGE_SIZE,
            "startTime": _start_time(start_time),
        }
        request = self.request("GET", f"{self.path}/messages", params=params)
        return Paged(request, ChatMessage._from_wire, frames.messages_frame)

    def list_message_pages(
        self, results_per_page: object = None, start_time: object = None, continuation_token: object = None
    ) -> Paged[ChatMessage]:
        """``list_messages``, or its continuation from a page's ``continuation_token``.

        Raises:
            ValueError: for a token with ``results_per_page`` or ``start_time`` (the token carries the
                listing's own), or a token that is not a link of this thread's listing.
        """
        if continuation_token is None:
            return self.list_messages(results_per_page, start_time)
        if results_per_page is not None or start_time is not None:
            raise ValueError(
                "continuation_token carries the page size and start time of the listing it continues: "
                "give it without results_per_page and start_time"
            )
        return self.list_messages().resume(continuation_token)

    def update_message(
        self, message_id: object, content: object = None, metadata: object = None
    ) -> Call[None]:
        path = self._message_path(message_id)
        body: Json = {}
        if content is not None:
            body["content"] = _text(content, "content")
        if metadata is not None:
            if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in metadata.items()
            ):
                raise TypeError("metadata must be a dict of str to str (None removes a key)")
            body["metadata"] = dict(metadata)
        if not body:
            raise ValueError("give the new content or metadata of the message")
        request = self.request("PATCH", path, body=body)
        request.headers["Content-Type"] = "application/merge-patch+json"
        return Call(request, _nothing)

    def delete_message(self, message_id: object) -> Call[None]:
        return Call(self.request("DELETE", self._message_path(message_id)), _nothing)

    def list_participants(
        self, results_per_page: object = None, skip: object = None
    ) -> Paged[ChatParticipant]:
        params = {
            "maxPageSize": _count(results_per_page, "results_per_page", 1) or DEFAULT_PAGE_SIZE,
            "skip": _count(skip, "skip", 0),
        }
        request = self.request("GET", f"{self.path}/participants", params=params)
        return Paged(request, ChatParticipant._from_wire, frames.participants_frame)

    def add_participants(
        self, thread_participants: object
    ) -> Call[list[tuple[ChatParticipant | None, ChatError]]]:
        participants = _participants(thread_participants, "thread_participants")
        if not participants:
            raise ValueError("thread_participants must not be empty")
        body = {"participants": [_participant_wire(p) for p in participants]}
        modern = any(p.metadata for p in participants)
        request = self.request(
            "POST", f"{self.path}/participants/:add", body=body, api_version=self._modern(modern)
        )
        return Call(request, lambda r: _errors_for(participants, _json(r)))

    def remove_participant(self, identifier: object) -> Call[None]:
        body = as_identifier(identifier)._to_wire()
        return Call(self.request("POST", f"{self.path}/participants/:remove", body=body), _nothing)

    def send_typing_notification(self, sender_display_name: object = None) -> Call[None]:
        name = _optional_text(sender_display_name, "sender_display_name")
        body = {} if name is None else {"senderDisplayName": name}
        return Call(self.request("POST", f"{self.path}/typing", body=body), _nothing)

    def send_read_receipt(self, message_id: object) -> Call[None]:
        body = {"chatMessageId": _text(message_id, "message_id")}
        return Call(self.request("POST", f"{self.path}/readReceipts", body=body), _nothing)

    def list_read_receipts(
        self, results_per_page: object = None, skip: object = None
    ) -> Paged[ChatMessageReadReceipt]:
        params = {
            "maxPageSize": _count(results_per_page, "results_per_page", 1) or DEFAULT_PAGE_SIZE,
            "skip": _count(skip, "skip", 0),
        }
        request = self.request("GET", f"{self.path}/readReceipts", params=params)
        return Paged(request, ChatMessageReadReceipt._from_wire, frames.read_receipts_frame)


# -- identity ----------------------------------------------------------------------------------


def _access_token(body: Json) -> AccessToken:
    return AccessToken(str(body["token"]), parse_rfc3339(str(body["expiresOn"])))


class IdentityOperations(_Requests):
    """Operations of ``CommunicationIdentityClient``; requests are HMAC-signed with the access key."""

    def __init__(self, endpoint: str, access_key: object, api_version: str = IDENTITY_API_VERSION) -> None:
        super().__init__(endpoint, api_version)
        key = getattr(access_key, "key", access_key)  # AzureKeyCredential-like objects
        if not isinstance(key, str) or not key.strip():
            raise TypeError("credential must be the resource's access key (a base64 string)")
        try:
            self._key = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the access key is not base64") from None

    def __repr__(self) -> str:
        return f"<IdentityOperations {self.endpoint}>"

    def sign(self, request: httpx.Request) -> None:
        """Add the HMAC-SHA256 headers to ``request`` (again on every attempt: they carry the time)."""
        target = request.url.raw_path.decode("ascii")
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        request.headers.update(hmac_headers(self._key, request.method, target, host, request.content))

    def create_user(self) -> Call[CommunicationUserIdentifier]:
        request = self.request("POST", "/identities", body={})
        return Call(request, lambda r: CommunicationUserIdentifier(str(_json(r)["identity"]["id"])))

    def create_user_and_token(
        self, scopes: object, token_expires_in: object = None
    ) -> Call[tuple[CommunicationUserIdentifier, AccessToken]]:
        body: Json = {"createTokenWithScopes": _scopes(scopes)}
        minutes = _expires_in_minutes(token_expires_in)
        if minutes is not None:
            body["expiresInMinutes"] = minutes

        def parse(response: httpx.Response) -> tuple[CommunicationUserIdentifier, AccessToken]:
            out = _json(response)
            return CommunicationUserIdentifier(str(out["identity"]["id"])), _access_token(out["accessToken"])

        return Call(self.request("POST", "/identities", body=body), parse)

    def get_token(self, user: object, scopes: object, token_expires_in: object = None) -> Call[AccessToken]:
        path = "/identities/" + quote(_user_id(user), safe="") + "/:issueAccessToken"
        body: Json = {"scopes": _scopes(scopes)}
        minutes = _expires_in_minutes(token_expires_in)
        if minutes is not None:
            body["expiresInMinutes"] = minutes
        return Call(self.request("POST", path, body=body), lambda r: _access_token(_json(r)))

    def revoke_tokens(self, user: object) -> Call[None]:
        path = "/identities/" + quote(_user_id(user), safe="") + "/:revokeAccessTokens"
        return Call(self.request("POST", path, body={}), _nothing)

    def delete_user(self, user: object) -> Call[None]:
        path = "/identities/" + quote(_user_id(user), safe="")
        return Call(self.request("DELETE", path), _nothing)
