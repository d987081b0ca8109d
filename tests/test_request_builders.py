"""The sans-I/O request builders, without a server: each operation's method, URL, query, headers and body.

Every operation of :mod:`chatnb._chat_ops` and :mod:`chatnb._identity_ops` is here (a test below checks
that none is missing), so a change to what goes on the wire shows up as a failing case.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from chatnb import ChatParticipant, ChatRetentionPolicy, CommunicationUserIdentifier
from chatnb._chat_ops import ChatOperations, ThreadOperations
from chatnb._core import Call, Paged
from chatnb._identity_ops import IdentityOperations

ENDPOINT = "https://acs.example.test"
THREAD = "19:t@thread.v2"
QUOTED = "19%3At%40thread.v2"
USER = "8:acs:r_u"
ALICE = CommunicationUserIdentifier(USER)
WIRE_ALICE = {"rawId": USER, "communicationUser": {"id": USER}}
KEY = base64.b64encode(b"k" * 32).decode()

chat = ChatOperations(ENDPOINT, "2024-03-07")
thread = ThreadOperations(ENDPOINT, THREAD, "2024-03-07")
identity = IdentityOperations(ENDPOINT, KEY)


def request_of(built: Call[Any] | Paged[Any]) -> httpx.Request:
    return built.request


def body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


# (id, built, method, path, query, headers it must have, body)
CASES: list[Any] = [
    pytest.param(
        lambda: chat.create_chat_thread("Lunch", [ChatParticipant(ALICE, "Alice")], "idem-1"),
        "POST",
        "/chat/threads",
        {"api-version": "2024-03-07"},
        {"repeatability-request-id": "idem-1", "content-type": "application/json"},
        {"topic": "Lunch", "participants": [{"communicationIdentifier": WIRE_ALICE, "displayName": "Alice"}]},
        id="create_chat_thread",
    ),
    pytest.param(
        lambda: chat.create_chat_thread(
            "Kept", None, "idem-2", {"team": "blue"}, ChatRetentionPolicy("threadCreationDate", 30)
        ),
        "POST",
        "/chat/threads",
        {"api-version": "2025-03-15"},
        {"repeatability-request-id": "idem-2"},
        {
            "topic": "Kept",
            "participants": [],
            "metadata": {"team": "blue"},
            "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
        },
        id="create_chat_thread-metadata-retention",
    ),
    pytest.param(
        lambda: chat.list_chat_threads(10, datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        "GET",
        "/chat/threads",
        {"maxPageSize": "10", "startTime": "2024-01-02T03:04:05.0000000Z", "api-version": "2024-03-07"},
        {"accept": "application/json"},
        None,
        id="list_chat_threads",
    ),
    pytest.param(
        lambda: chat.delete_chat_thread(THREAD),
        "DELETE",
        f"/chat/threads/{QUOTED}",
        {"api-version": "2024-03-07"},
        {},
        None,
        id="delete_chat_thread",
    ),
    pytest.param(
        lambda: thread.get_properties(),
        "GET",
        f"/chat/threads/{QUOTED}",
        {"api-version": "2025-03-15"},
        {},
        None,
        id="get_properties",
    ),
    pytest.param(
        lambda: thread.update_properties("New topic"),
        "PATCH",
        f"/chat/threads/{QUOTED}",
        {"api-version": "2024-03-07"},
        {"content-type": "application/merge-patch+json"},
        {"topic": "New topic"},
        id="update_properties-topic",
    ),
    pytest.param(
        lambda: thread.update_properties(None, {"k": "v"}, ChatRetentionPolicy("none")),
        "PATCH",
        f"/chat/threads/{QUOTED}",
        {"api-version": "2025-03-15"},
        {"content-type": "application/merge-patch+json"},
        {"metadata": {"k": "v"}, "retentionPolicy": {"kind": "none"}},
        id="update_properties-metadata-retention",
    ),
    pytest.param(
        lambda: thread.send_message("hi", "html", "Jack", {"m": "1"}),
        "POST",
        f"/chat/threads/{QUOTED}/messages",
        {"api-version": "2024-03-07"},
        {"content-type": "application/json"},
        {"content": "hi", "type": "html", "senderDisplayName": "Jack", "metadata": {"m": "1"}},
        id="send_message",
    ),
    pytest.param(
        lambda: thread.send_message("plain"),
        "POST",
        f"/chat/threads/{QUOTED}/messages",
        {"api-version": "2024-03-07"},
        {},
        {"content": "plain", "type": "text"},
        id="send_message-defaults",
    ),
    pytest.param(
        lambda: thread.get_message("1700000000000"),
        "GET",
        f"/chat/threads/{QUOTED}/messages/1700000000000",
        {"api-version": "2024-03-07"},
        {},
        None,
        id="get_message",
    ),
    pytest.param(
        lambda: thread.list_messages(),
        "GET",
        f"/chat/threads/{QUOTED}/messages",
        {"maxPageSize": "200", "api-version": "2024-03-07"},
        {},
        None,
        id="list_messages",
    ),
    pytest.param(
        lambda: thread.list_message_pages(5, "2024-01-01T00:00:00Z"),
        "GET",
        f"/chat/threads/{QUOTED}/messages",
        {"maxPageSize": "5", "startTime": "2024-01-01T00:00:00.0000000Z", "api-version": "2024-03-07"},
        {},
        None,
        id="list_message_pages",
    ),
    pytest.param(
        lambda: thread.list_message_pages(
            continuation_token=f"{ENDPOINT}/chat/threads/{QUOTED}/messages?syncState=abc&api-version=2024-03-07"
        ),
        "GET",
        f"/chat/threads/{QUOTED}/messages",
        {"syncState": "abc", "api-version": "2024-03-07"},
        {"accept": "application/json"},
        None,
        id="list_message_pages-continued",
    ),
    pytest.param(
        lambda: thread.update_message("17", "edited", {"k": None}),
        "PATCH",
        f"/chat/threads/{QUOTED}/messages/17",
        {"api-version": "2024-03-07"},
        {"content-type": "application/merge-patch+json"},
        {"content": "edited", "metadata": {"k": None}},
        id="update_message",
    ),
    pytest.param(
        lambda: thread.delete_message("17"),
        "DELETE",
        f"/chat/threads/{QUOTED}/messages/17",
        {"api-version": "2024-03-07"},
        {},
        None,
        id="delete_message",
    ),
    pytest.param(
        lambda: thread.list_participants(20, 40),
        "GET",
        f"/chat/threads/{QUOTED}/participants",
        {"maxPageSize": "20", "skip": "40", "api-version": "2024-03-07"},
        {},
        None,
        id="list_participants",
    ),
    pytest.param(
        lambda: thread.add_participants(
            [ChatParticipant(ALICE, "Alice", datetime(2024, 1, 1, tzinfo=timezone.utc))]
        ),
        "POST",
        f"/chat/threads/{QUOTED}/participants/:add",
        {"api-version": "2024-03-07"},
        {},
        {
            "participants": [
                {
                    "communicationIdentifier": WIRE_ALICE,
                    "displayName": "Alice",
                    "shareHistoryTime": "2024-01-01T00:00:00.0000000Z",
                }
            ]
        },
        id="add_participants",
    ),
    pytest.param(
        lambda: thread.add_participants([ChatParticipant(ALICE, metadata={"role": "host"})]),
        "POST",
        f"/chat/threads/{QUOTED}/participants/:add",
        {"api-version": "2025-03-15"},
        {},
        {"participants": [{"communicationIdentifier": WIRE_ALICE, "metadata": {"role": "host"}}]},
        id="add_participants-metadata",
    ),
    pytest.param(
        lambda: thread.remove_participant(USER),
        "POST",
        f"/chat/threads/{QUOTED}/participants/:remove",
        {"api-version": "2024-03-07"},
        {},
        WIRE_ALICE,
        id="remove_participant",
    ),
    pytest.param(
        lambda: thread.send_typing_notification("Jack"),
        "POST",
        f"/chat/threads/{QUOTED}/typing",
        {"api-version": "2024-03-07"},
        {},
        {"senderDisplayName": "Jack"},
        id="send_typing_notification",
    ),
    pytest.param(
        lambda: thread.send_typing_notification(),
        "POST",
        f"/chat/threads/{QUOTED}/typing",
        {"api-version": "2024-03-07"},
        {},
        {},
        id="send_typing_notification-anonymous",
    ),
    pytest.param(
        lambda: thread.send_read_receipt("17"),
        "POST",
        f"/chat/threads/{QUOTED}/readReceipts",
        {"api-version": "2024-03-07"},
        {},
        {"chatMessageId": "17"},
        id="send_read_receipt",
    ),
    pytest.param(
        lambda: thread.list_read_receipts(None, 3),
        "GET",
        f"/chat/threads/{QUOTED}/readReceipts",
        {"maxPageSize": "200", "skip": "3", "api-version": "2024-03-07"},
        {},
        None,
        id="list_read_receipts",
    ),
    pytest.param(
        lambda: identity.create_user(),
        "POST",
        "/identities",
        {"api-version": "2023-10-01"},
        {"content-type": "application/json"},
        {},
        id="create_user",
    ),
    pytest.param(
        lambda: identity.create_user_and_token(["chat", "voip"], timedelta(hours=2)),
        "POST",
        "/identities",
        {"api-version": "2023-10-01"},
        {},
        {"createTokenWithScopes": ["chat", "voip"], "expiresInMinutes": 120},
        id="create_user_and_token",
    ),
    pytest.param(
        lambda: identity.get_token(ALICE, ["chat"]),
        "POST",
        "/identities/8%3Aacs%3Ar_u/:issueAccessToken",
        {"api-version": "2023-10-01"},
        {},
        {"scopes": ["chat"]},
        id="get_token",
    ),
    pytest.param(
        lambda: identity.revoke_tokens(USER),
        "POST",
        "/identities/8%3Aacs%3Ar_u/:revokeAccessTokens",
        {"api-version": "2023-10-01"},
        {},
        {},
        id="revoke_tokens",
    ),
    pytest.param(
        lambda: identity.delete_user(USER),
        "DELETE",
        "/identities/8%3Aacs%3Ar_u",
        {"api-version": "2023-10-01"},
        {},
        None,
        id="delete_user",
    ),
]


@pytest.mark.parametrize(("build", "method", "path", "query", "headers", "payload"), CASES)
def test_the_request_of_each_operation(
    build: Any, method: str, path: str, query: dict[str, str], headers: dict[str, str], payload: Any
) -> None:
    request = request_of(build())
    assert request.method == method
    assert (request.url.scheme, request.url.host) == ("https", "acs.example.test")
    assert request.url.raw_path.decode().split("?")[0] == path
    assert dict(request.url.params) == query
    assert request.headers["user-agent"].startswith("chatnb/")
    for name, value in headers.items():
        assert request.headers[name] == value
    assert body(request) == payload
    if payload is not None:
        assert request.headers["content-type"] in ("application/json", "application/merge-patch+json")
    assert "authorization" not in request.headers  # the sender authorises, on every attempt


def test_every_operation_has_a_case() -> None:
    covered = {p.id.split("-")[0] for p in CASES}
    operations = {
        name
        for ops in (ChatOperations, ThreadOperations, IdentityOperations)
        for name, member in vars(ops).items()
        if inspect.isfunction(member) and not name.startswith("_") and name not in ("sign", "modern")
    }
    assert operations == covered


def test_a_thread_is_created_with_a_fresh_idempotency_token_unless_given() -> None:
    first, second = chat.create_chat_thread("a").request, chat.create_chat_thread("a").request
    assert first.headers["repeatability-request-id"] != second.headers["repeatability-request-id"]


def test_identity_requests_are_signed_with_the_access_key() -> None:
    request = identity.get_token(ALICE, ["chat"]).request
    identity.sign(request)
    assert (
        request.headers["x-ms-content-sha256"]
        == base64.b64encode(hashlib.sha256(request.content).digest()).decode()
    )
    assert request.headers["authorization"].startswith("HMAC-SHA256 SignedHeaders=")
    assert "x-ms-date" in request.headers and KEY not in request.headers["authorization"]


def test_a_continuation_token_of_another_thread_or_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="another endpoint or thread"):
        thread.list_message_pages(continuation_token=f"{ENDPOINT}/chat/threads/19%3Aother/messages?x=1")
    with pytest.raises(ValueError, match="another endpoint or thread"):
        thread.list_message_pages(continuation_token=f"https://evil.example/chat/threads/{QUOTED}/messages")
    with pytest.raises(ValueError, match="without results_per_page"):
        thread.list_message_pages(5, continuation_token=f"{ENDPOINT}/chat/threads/{QUOTED}/messages")


@pytest.mark.parametrize(
    ("build", "error"),
    [
        pytest.param(lambda: chat.create_chat_thread(""), ValueError, id="empty-topic"),
        pytest.param(lambda: chat.create_chat_thread("t", "8:acs:x"), TypeError, id="participants-str"),
        pytest.param(lambda: chat.delete_chat_thread(" "), ValueError, id="empty-thread-id"),
        pytest.param(lambda: thread.send_message("hi", "topicUpdated"), ValueError, id="system-type"),
        pytest.param(lambda: thread.send_message("hi", metadata={"k": 1}), TypeError, id="metadata-values"),
        pytest.param(lambda: thread.update_properties(), ValueError, id="nothing-to-update"),
        pytest.param(lambda: thread.update_message("1"), ValueError, id="nothing-to-edit"),
        pytest.param(lambda: thread.list_participants(0), ValueError, id="page-size-0"),
        pytest.param(lambda: thread.add_participants([]), ValueError, id="no-participants"),
        pytest.param(lambda: identity.get_token(USER, ["nope"]), ValueError, id="unknown-scope"),
        pytest.param(
            lambda: identity.get_token(USER, ["chat"], timedelta(minutes=5)), ValueError, id="short"
        ),
    ],
)
def test_bad_arguments_fail_before_any_request(build: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()
