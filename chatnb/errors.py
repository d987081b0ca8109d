"""Errors raised by chatnb, one tree rooted at :class:`ChatError`::

    ChatError                       root; also the shape of per-participant errors (code, message, target)
    ├── TransportError              no response: refused, reset, timed out, TLS failure, server gone
    ├── DecodingError               a success answer whose body is not the JSON expected
    │   └── RefusedAnswerError      an answer out of chatnb's bounds: a nextLink to another origin or seen
    │                               before, a page over the page size, an event-stream line or event
    │                               over the caps
    ├── StreamUnavailable           the endpoint serves no chatnb event stream (not the emulator): poll
    ├── ExportError                 some threads of an export failed (the others were exported); its
    │                               ``errors`` are theirs, each one of this tree (or an OSError)
    └── APIError                    the service answered with an error status
        ├── BadRequestError         400  the service rejected the request's content
        ├── AuthenticationError     401  forged, expired or revoked token; deleted user; bad access key
        ├── ForbiddenError          403  not a participant, not the sender, token scope too narrow
        ├── NotFoundError           404  unknown or deleted thread, message or user
        ├── ConflictError           409
        ├── RateLimitError          429  retried first, raised when the retries are used up
        └── ServerError             5xx
            └── ServiceUnavailableError  503  retried first, like 429

Every exception chatnb raises for a fault of the service or of the network is in this tree. Every
:class:`APIError` carries ``status_code``, the service's error ``code``, its ``message`` and ``target``,
and says all of them in ``str(error)``. Client-side argument mistakes (an empty thread id, empty content,
unknown scopes, a sync client given to an async function...) raise ``ValueError`` or ``TypeError`` before
any request is sent. No error message ever contains an access token, an access key, a header value or
chat content.

>>> try:
...     thread.get_message("nope")
... except chatnb.NotFoundError as exc:
...     print(exc.status_code, exc.code)
404 MessageNotFound
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ChatError",
    "ConflictError",
    "DecodingError",
    "ForbiddenError",
    "NotFoundError",
    "RateLimitError",
    "RefusedAnswerError",
    "ServerError",
    "ServiceUnavailableError",
    "StreamUnavailable",
    "TransportError",
    "decoding_error",
    "error_from_response",
    "refused_answer",
    "safe_reason",
    "transport_error",
]


class ChatError(Exception):
    """The root of every chatnb error.

    Instances are also what :meth:`ChatThreadClient.add_participants` and
    ``CreateChatThreadResult.errors`` pair with each participant the service refused (the official
    SDK's ``ChatError`` model has the same ``code``, ``message`` and ``target`` attributes).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        target: str | None = None,
        details: Sequence[dict[str, Any]] = (),
        inner_error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.target = target
        self.details = list(details)
        self.inner_error = inner_error

    @classmethod
    def _from_wire(cls, body: dict[str, Any]) -> ChatError:
        return cls(
            str(body.get("message") or ""),
            code=None if body.get("code") is None else str(body["code"]),
            target=None if body.get("target") is None else str(body["target"]),
            details=[d for d in body.get("details") or () if isinstance(d, dict)],
            inner_error=body.get("innererror") if isinstance(body.get("innererror"), dict) else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, target={self.target!r})"


class TransportError(ChatError):
    """No response arrived: the connection was refused or reset, timed out, or TLS failed.

    The httpx exception is chained as ``__cause__``; ``method`` and ``url`` name the request.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message, code=None)
        self.method = method
        self.url = url


class DecodingError(ChatError):
    """The service answered with a success status, but its body is not the JSON expected (not JSON at
    all, not an object, a listing without a ``value`` array or with items that are not objects, a
    required field missing or of the wrong type). ``method`` and ``url`` name the request; the message
    says what was wrong, never the body's content.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.url = url


class RefusedAnswerError(DecodingError):
    """chatnb refused an answer that is out of its bounds, before acting on it: a ``nextLink`` to another
    scheme, host or port than the endpoint (the token would go there), a ``nextLink`` the listing has
    followed before (a loop), a page with more items than its page size, an event-stream line or event
    over the caps. The message names what was refused (an origin, a count), never a token.
    """


class StreamUnavailable(ChatError):
    """The endpoint serves no chatnb event stream (it is not the emulator): poll instead."""


class APIError(ChatError):
    """The service answered with an error status.

    Attributes:
        status_code: the HTTP status.
        code: the service's error code (``"Forbidden"``, ``"ThreadNotFound"``...), or ``None``.
        message: the service's error message.
        target: what the error is about (a field name, a participant id), or ``None``.
        request_id: the service's request or correlation id, when it sent one.
        retry_after: seconds the service asked to wait (429/503), when it said.

    ``note`` adds chatnb's own word to ``str(error)`` (a wait asked that is longer than chatnb waits).
    """

    def __init__(
        self,
        status_code: int,
        code: str | None,
        message: str,
        target: str | None = None,
        *,
        details: Sequence[dict[str, Any]] = (),
        inner_error: dict[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        url: str | None = None,
        note: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.method = method
        self.url = url
        text = f"{status_code} {code or _REASONS.get(status_code, 'Error')}: {message or '(no message)'}"
        if target:
            text += f" (target: {target})"
        if method and url:
            text += f" [{method} {url}]"
        if note:
            text += f"; {note}"
        super().__init__(text, code=code, target=target, details=details, inner_error=inner_error)
        self.message = message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"message={self.message!r}, target={self.target!r})"
        )


class BadRequestError(APIError):
    """400: the service rejected the request's content."""


class AuthenticationError(APIError):
    """401: the token is forged, expired or revoked, its user was deleted, or the access key is wrong."""


class ForbiddenError(APIError):
    """403: the caller may not do this (not a participant, not the sender, a too narrow token scope)."""


class NotFoundError(APIError):
    """404: the thread, message or user does not exist (or was deleted)."""


class ConflictError(APIError):
    """409: the request conflicts with the resource's current state."""


class RateLimitError(APIError):
    """429: too many requests; raised once the client's retries are used up."""


class ServerError(APIError):
    """5xx: the service failed."""


class ServiceUnavailableError(ServerError):
    """503: the service is temporarily unavailable; raised once the client's retries are used up."""


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _error_class(status: int) -> type[APIError]:
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    return ServerError if status >= 500 else APIError


def _request_id(headers: httpx.Headers) -> str | None:
    for name in ("x-ms-request-id", "x-microsoft-skype-chain-id", "ms-cv", "x-ms-client-request-id"):
        if name in headers:
            return headers[name]
    return None


def error_from_response(
    response: httpx.Response, retry_after: float | None = None, *, note: str | None = None
) -> APIError:
    """The :class:`APIError` subclass for an error ``response``, filled from the ACS error body.

    A body that is not the ACS error JSON still gives a typed error, with the text's start as message.
    """
    code: str | None = None
    target: str | None = None
    details: list[dict[str, Any]] = []
    inner: dict[str, Any] | None = None
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, RecursionError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        parsed = ChatError._from_wire(error)
        code, message, target, details, inner = (
            parsed.code,
            parsed.message,
            parsed.target,
            parsed.details,
            parsed.inner_error,
        )
    else:
        message = response.text[:200].strip() or response.reason_phrase
    url = None
    method = None
    try:
        request = response.request
    except RuntimeError:  # a response built by hand has no request
        pass
    else:
        method = request.method
        url = str(request.url.copy_with(query=None))
    return _error_class(response.status_code)(
        response.status_code,
        code,
        message,
        target,
        details=details,
        inner_error=inner,
        request_id=_request_id(response.headers),
        retry_after=retry_after,
        method=method,
        url=url,
        note=note,
    )


_BYTES_REPR = re.compile(r"(?<!\w)b'(?:[^'\\]|\\.)*'|(?<!\w)b\"(?:[^\"\\]|\\.)*\"")


def safe_reason(exc: BaseException, request: httpx.Request | None = None) -> str:
    """``exc``'s message without what may hold a secret: no value of ``request``'s headers (the
    ``Authorization`` token, the access key's signature) and no bytes an httpx or h11 message quotes
    (``Illegal header value b'Bearer ...'``)."""
    if isinstance(exc, httpx.LocalProtocolError):  # h11 refused what chatnb was about to send
        return (
            f"{type(exc).__name__}: the request could not be sent, it is not valid HTTP "
            "(a header value with a control character, for instance)"
        )
    reason = _BYTES_REPR.sub("<bytes>", str(exc))
    for value in () if request is None else request.headers.values():
        if len(value) >= 8:
            reason = reason.replace(value, "<header>")
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def transport_error(exc: httpx.HTTPError, request: httpx.Request) -> TransportError:
    """A :class:`TransportError` describing an httpx failure to get a response for ``request`` (its
    message never repeats a header value: see :func:`safe_reason`)."""
    url = str(request.url.copy_with(query=None))
    return TransportError(
        f"no response from {request.method} {url}: {safe_reason(exc, request)}",
        method=request.method,
        url=url,
    )


def decoding_error(request: httpx.Request, problem: str, status_code: int | None = None) -> DecodingError:
    """A :class:`DecodingError` for the answer to ``request``: ``problem`` says what is wrong with it
    (without quoting the body: it may hold chat content)."""
    url = str(request.url.copy_with(query=None))
    return DecodingError(
        f"the answer to {request.method} {url} is not the JSON expected: {problem}",
        status_code=status_code,
        method=request.method,
        url=url,
    )


def refused_answer(request: httpx.Request | None, problem: str) -> RefusedAnswerError:
    """A :class:`RefusedAnswerError` for the answer to ``request`` (``None``: not known, or the event
    stream); ``problem`` says what was refused (an origin, a count: never a token)."""
    if request is None:
        return RefusedAnswerError(f"chatnb refused an answer of the service: {problem}")
    url = str(request.url.copy_with(query=None))
    return RefusedAnswerError(
        f"chatnb refused the answer to {request.method} {url}: {problem}", method=request.method, url=url
    )
