"""Errors the emulator answers with, each rendered as the ACS error body.

Every failure a handler meets is raised as a :class:`ServiceError` subclass carrying its HTTP status and
ACS error code; :func:`error_body` renders ``{"error": {"code", "message", "target"?}}``. Anything else that
escapes a handler is a bug in the emulator and becomes a 500 with a generic message (no stack trace, no
request data).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HeadersTooLarge",
    "MethodNotAllowed",
    "NotFound",
    "NotImplementedFeature",
    "PayloadTooLarge",
    "RequestTimeout",
    "ServiceError",
    "ServiceUnavailable",
    "StorageUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "error_body",
]


class ServiceError(Exception):
    """An error with an HTTP status and an ACS error code."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        target: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.target = target
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.target)


class BadRequest(ServiceError):
    status = 400
    default_code = "BadRequest"


class Unauthorized(ServiceError):
    status = 401
    default_code = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    default_code = "Forbidden"


class NotFound(ServiceError):
    status = 404
    default_code = "NotFound"


class MethodNotAllowed(ServiceError):
    """A known path asked with a method it does not serve; ``allow`` lists the ones it does."""

    status = 405
    default_code = "MethodNotAllowed"

    def __init__(self, message: str, *, allow: list[str]) -> None:
        super().__init__(message, headers={"Allow": ", ".join(allow)})


class RequestTimeout(ServiceError):
    status = 408
    default_code = "RequestTimeout"


class Conflict(ServiceError):
    status = 409
    default_code = "Conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    default_code = "RequestEntityTooLarge"


class HeadersTooLarge(ServiceError):
    status = 431
    default_code = "RequestHeaderFieldsTooLarge"


class TooManyRequests(ServiceError):
    status = 429
    default_code = "TooManyRequests"


class NotImplementedFeature(ServiceError):
    """An operation or feature of the real service that the emulator does not implement (501)."""

    status = 501
    default_code = "NotImplemented"


class ServiceUnavailable(ServiceError):
    status = 503
    default_code = "ServiceUnavailable"


class StorageUnavailable(ServiceUnavailable):
    """The database could not do the work now (locked by another process, disk full, I/O error).

    Nothing was changed; the client may retry after ``Retry-After`` seconds.
    """

    default_code = "StorageUnavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    """The ACS ``CommunicationErrorResponse`` body."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    return {"error": error}
