"""Honest coverage: which operations of the ACS Chat and Identity APIs the emulator serves, which it answers
501 for, and the API versions it accepts.

Every route carries its operation id (the swaggers' ``operationId``, as ``Route(name=...)``), so the table
is read from the application itself (:func:`operations`), printed by ``chatnb serve --list-operations``
and kept in ``docs/emulator/api-versions.md`` (a test checks that it is current).

An operation or feature of the real service that the emulator lacks answers ``501 NotImplemented`` with
the ACS error body naming what is missing and what to use instead, never a bare 404:
:data:`NOT_IMPLEMENTED` lists the operations (Trouter real-time configuration, image upload, the Teams
token exchanges and Teams Phone extension assignments); Teams identifiers as chat participants answer
501 too (:func:`chatnb.emulator.wire.parse_identifier`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import NotImplementedFeature
from .http import CHAT_API_VERSIONS, IDENTITY_API_VERSIONS

__all__ = [
    "NOT_IMPLEMENTED",
    "Operation",
    "api_versions_table",
    "not_implemented_routes",
    "operations",
    "operations_table",
]

_T = "/chat/threads/{thread_id}"
_ASSIGNMENT = "/access/teamsExtension/tenants/{tenant_id}/assignments/{object_id}"
_TEAMS = "Teams interoperability (Teams users' tokens and identities) is not emulated"
#: ``(method, path, operation id, what is missing and what to do instead)``
NOT_IMPLEMENTED: tuple[tuple[str, str, str, str], ...] = (
    (
        "GET",
        "/chat/config/realTimeNotifications",
        "Chat_GetRealTimeNotificationConfiguration",
        "real-time notifications over Trouter (the browser SDK's startRealtimeNotifications); use the "
        "emulator's event stream (GET /chatnb/events, chatnb's ChatClient.on) or Event Grid delivery",
    ),
    ("POST", f"{_T}/images", "ChatThread_UploadChatImage", "image upload (inline images and attachments)"),
    ("DELETE", f"{_T}/images/{{image_id}}", "ChatThread_DeleteChatImage", "image upload and deletion"),
    ("POST", "/teamsUser/:exchangeAccessToken", "TeamsUserOperations_ExchangeTeamsUserAccessToken", _TEAMS),
    ("POST", "/access/teamsExtension/:exchangeAccessToken", "TeamsExtensionOperations_ExchangeToken", _TEAMS),
    ("GET", _ASSIGNMENT, "TeamsExtensionOperations_GetAssignment", _TEAMS),
    ("PUT", _ASSIGNMENT, "TeamsExtensionOperations_UpsertAssignment", _TEAMS),
    ("DELETE", _ASSIGNMENT, "TeamsExtensionOperations_DeleteAssignment", _TEAMS),
)


def _answer_501(method: str, path: str, operation: str, what: str) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        raise NotImplementedFeature(
            f"The chatnb emulator does not implement {operation} ({method} {path}): {what}. "
            "`chatnb serve --list-operations` lists what it implements.",
            target=operation,
        )

    return handler


def not_implemented_routes() -> list[Route]:
    """A 501 route for each of :data:`NOT_IMPLEMENTED`."""
    return [
        Route(path, _answer_501(method, path, operation, what), methods=[method], name=f"501:{operation}")
        for method, path, operation, what in NOT_IMPLEMENTED
    ]


@dataclass(frozen=True, slots=True)
class Operation:
    """One row of the coverage table."""

    api: str
    method: str
    path: str
    operation: str
    status: str


def _api(path: str) -> str:
    if path.startswith("/chat/"):
        return "Chat"
    if path.startswith("/chatnb/"):
        return "chatnb"
    return "Identity"


def operations(routes: Sequence[BaseRoute]) -> list[Operation]:
    """The coverage table of an application's routes: API, method, path, operation id and status
    (``implemented``, ``501`` or ``emulator`` for the emulator's own ``/chatnb/`` endpoints)."""
    rows = []
    for route in routes:
        if not isinstance(route, Route) or not route.methods:
            continue
        name = route.name or ""
        api = _api(route.path)
        if name.startswith("501:"):
            status, name = "501", name[4:]
        else:
            status = "emulator" if api == "chatnb" else "implemented"
        for method in sorted(route.methods - {"HEAD"}):
            rows.append(Operation(api, method, route.path, name, status))
    order = {"Identity": 0, "Chat": 1, "chatnb": 2}
    return sorted(rows, key=lambda r: (order[r.api], r.status == "501", r.path, r.method))


def operations_table(routes: Sequence[BaseRoute]) -> str:
    """:func:`operations` as a Markdown table."""
    lines = ["| API | Method | Path | Operation | Status |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.api} | {r.method} | `{r.path}` | {r.operation} | {r.status} |" for r in operations(routes)
    ]
    return "\n".join(lines)


def api_versions_table() -> str:
    """The accepted ``api-version`` values of each API as a Markdown table (others get 400
    ``UnsupportedApiVersion``, as from the service, unless the emulator runs with ``--loose``)."""
    rows = ["| API | Stable versions | Preview versions |", "|---|---|---|"]
    for api, known in (("Identity", IDENTITY_API_VERSIONS), ("Chat", CHAT_API_VERSIONS)):
        stable = ", ".join(sorted(v for v in known if "preview" not in v))
        preview = ", ".join(sorted(v for v in known if "preview" in v))
        rows.append(f"| {api} | {stable} | {preview} |")
    return "\n".join(rows)
