"""Negative tests: each security rule and each bad-input rule of the emulator (issue 2, sections 3 and 4).

Every rejected request must carry the ACS error body, the right status and a message naming the problem;
no client mistake may produce a 500.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest

from chatnb._time import format_rfc3339, parse_rfc3339, to_us
from chatnb.emulator.auth import TokenIssuer
from tests.support.wire import User, Wire, assert_error, q


def _operations(tid: str, mid: str, other: User) -> list[tuple[str, str, Any]]:
    """Every thread operation as ``(method, path, body)``."""
    base = f"/chat/threads/{q(tid)}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"topic": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/messages", {"content": "x"}),
        ("GET", f"{base}/messages", None),
        ("GET", f"{base}/messages/{mid}", None),
        ("PATCH", f"{base}/messages/{mid}", {"content": "x"}),
        ("DELETE", f"{base}/messages/{mid}", None),
        ("GET", f"{base}/participants", None),
        ("POST", f"{base}/participants/:add", {"participants": [other.participant()]}),
        ("POST", f"{base}/participants/:remove", other.identifier),
        ("POST", f"{base}/typing", {}),
        ("POST", f"{base}/readReceipts", {"chatMessageId": mid}),
        ("GET", f"{base}/readReceipts", None),
    ]


# -- section 3: tokens -------------------------------------------------------------------------


def _forged(user: User) -> str:
    """A well-formed token for a real user with a future expiry, signed with some other key."""
    claims = json.loads(base64.b64decode(user.token.split(".")[1] + "=="))
    claims["exp"] = int(time.time()) + 3600
    return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")


def test_forged_token_is_401(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    forged = _forged(alice)
    for path in (f"/chat/threads/{q(tid)}", "/chat/threads"):
        assert_error(wire.chat("GET", path, forged), 401, "not valid", code="Unauthorized")
    header, payload, _ = alice.token.split(".")
    random_signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assert_error(
        wire.chat("GET", "/chat/threads", f"{header}.{payload}.{random_signature}"), 401, "not valid"
    )


def test_expired_token_signed_with_the_right_key_is_401(wire: Wire, alice: User) -> None:
    issuer = TokenIssuer(wire.key, wire.emulator.resource_id)
    expired, exp = issuer.issue(alice.id, ["chat"], 0, -60)
    assert exp < time.time()
    assert_error(wire.chat("GET", "/chat/threads", expired), 401, "expired", code="Unauthorized")
    fresh, _ = issuer.issue(alice.id, ["chat"], 0, 3600)  # the same key, not expired: accepted
    assert wire.chat("GET", "/chat/threads", fresh).status_code == 200


def test_token_for_a_user_that_never_existed_is_401(wire: Wire) -> None:
    issuer = TokenIssuer(wire.key, wire.emulator.resource_id)
    token, _ = issuer.issue(f"8:acs:{wire.emulator.resource_id}_nobody", ["chat"], 0, 3600)
    assert_error(wire.chat("GET", "/chat/threads", token), 401, "does not exist")


def test_revoked_token_is_401_on_every_operation(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "t", bob)
    mid = wire.send(tid, alice)
    assert wire.revoke(alice.id).status_code == 204
    for method, path, body in _operations(tid, mid, bob):
        assert_error(wire.chat(method, path, alice, body), 401, "revoked")
    assert_error(wire.chat("POST", "/chat/threads", alice, {"topic": "t"}), 401, "revoked")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer not-a-jwt", id="garbage"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Bearer a.b.c", id="three-garbage-parts"),
    ],
)
def test_missing_or_garbage_token_is_401(wire: Wire, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = wire.http.get("/chat/threads", params={"api-version": "2024-03-07"}, headers=headers)
    assert_error(response, 401, code="Unauthorized")
    assert "www-authenticate" not in response.headers


def test_token_without_chat_scope_is_refused(wire: Wire) -> None:
    voip = wire.new_user(["voip"])
    assert_error(wire.chat("GET", "/chat/threads", voip), 403, "scope")


# -- section 3: membership ---------------------------------------------------------------------


def test_non_participant_gets_403_on_every_thread_operation(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice)
    mid = wire.send(tid, alice)
    mallory = wire.new_user()
    for method, path, body in _operations(tid, mid, bob):
        assert_error(wire.chat(method, path, mallory, body), 403, "participant", code="Forbidden")
    # nothing changed
    assert wire.chat("GET", f"/chat/threads/{q(tid)}", alice).json()["topic"] == "t"
    assert len(wire.all_messages(tid, alice)) == 3
    assert tid not in {t["id"] for t in wire.chat("GET", "/chat/threads", mallory).json()["value"]}


def test_removed_participant_loses_access_at_once(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "t", bob)
    mid = wire.send(tid, alice)
    assert wire.chat("GET", f"/chat/threads/{q(tid)}/messages", bob).status_code == 200
    assert (
        wire.chat("POST", f"/chat/threads/{q(tid)}/participants/:remove", alice, bob.identifier).status_code
        == 204
    )
    for method, path, body in _operations(tid, mid, alice):
        assert_error(wire.chat(method, path, bob, body), 403, "participant")
    assert tid not in {t["id"] for t in wire.chat("GET", "/chat/threads", bob).json()["value"]}


def test_participant_can_leave_and_then_has_no_access(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "t", bob)
    assert (
        wire.chat("POST", f"/chat/threads/{q(tid)}/participants/:remove", bob, bob.identifier).status_code
        == 204
    )
    assert_error(wire.chat("GET", f"/chat/threads/{q(tid)}", bob), 403, "participant")


def test_share_history_time_hides_older_messages(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice)
    base = f"/chat/threads/{q(tid)}"
    old = wire.send(tid, alice, "before")
    old_created = parse_rfc3339(wire.chat("GET", f"{base}/messages/{old}", alice).json()["createdOn"])
    share = format_rfc3339(to_us(old_created + timedelta(microseconds=1)))
    wire.chat("POST", f"{base}/participants/:add", alice, {"participants": [bob.participant(None, share)]})
    new = wire.send(tid, alice, "after")

    listed = wire.all_messages(tid, bob)
    ids = {m["id"] for m in listed}
    assert new in ids and old not in ids
    assert all(parse_rfc3339(m["createdOn"]) >= parse_rfc3339(share) for m in listed)
    assert_error(wire.chat("GET", f"{base}/messages/{old}", bob), 404, "does not exist")
    assert_error(
        wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": old}), 404, "does not exist"
    )
    assert wire.chat("GET", f"{base}/messages/{new}", bob).status_code == 200
    small = wire.chat("GET", f"{base}/messages", bob, params={"maxPageSize": 1}).json()
    assert len(small["value"]) == 1  # paging works within the visible part too
    assert old in {m["id"] for m in wire.all_messages(tid, alice)}


def test_only_the_sender_may_edit_or_delete(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "t", bob)
    mid = wire.send(tid, alice, "mine")
    path = f"/chat/threads/{q(tid)}/messages/{mid}"
    assert_error(wire.chat("PATCH", path, bob, {"content": "yours"}), 403, "sender", code="Forbidden")
    assert_error(wire.chat("DELETE", path, bob), 403, "sender", code="Forbidden")
    message = wire.chat("GET", path, bob).json()
    assert message["content"]["message"] == "mine" and "deletedOn" not in message
    system = wire.all_messages(tid, alice)[-1]["id"]  # participantAdded: nobody's message
    assert_error(wire.chat("DELETE", f"/chat/threads/{q(tid)}/messages/{system}", alice), 403, "sender")


# -- section 4: bad input ----------------------------------------------------------------------


def test_missing_fields_are_named(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    base = f"/chat/threads/{q(tid)}"
    cases = [
        ("POST", "/chat/threads", {"participants": []}, "topic"),
        ("POST", "/chat/threads", {"topic": ""}, "topic"),
        ("POST", f"{base}/messages", {"type": "text"}, "content"),
        ("POST", f"{base}/messages", {"content": ""}, "content"),
        ("POST", f"{base}/messages", {"content": 5}, "content"),
        ("POST", f"{base}/messages", {"content": "x", "type": "video"}, "type"),
        ("POST", f"{base}/participants/:add", {}, "participants"),
        ("POST", f"{base}/participants/:add", {"participants": []}, "participants"),
        (
            "POST",
            f"{base}/participants/:add",
            {"participants": [{"displayName": "x"}]},
            "communicationIdentifier",
        ),
        ("POST", f"{base}/participants/:remove", {}, "communication user"),
        ("POST", f"{base}/readReceipts", {}, "chatMessageId"),
        ("POST", f"{base}/messages", None, "body"),
    ]
    for method, path, body, word in cases:
        assert_error(wire.chat(method, path, alice, body), 400, word)


def test_content_over_28_kb_is_400(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    path = f"/chat/threads/{q(tid)}/messages"
    assert wire.chat("POST", path, alice, {"content": "x" * 28 * 1024}).status_code == 201
    error = assert_error(wire.chat("POST", path, alice, {"content": "x" * (28 * 1024 + 1)}), 400, "28 KB")
    assert error["target"] == "content"
    assert_error(
        wire.chat("POST", path, alice, {"content": "é" * (15 * 1024)}), 400, "28 KB"
    )  # bytes, not chars
    mid = wire.send(tid, alice, "short")
    assert_error(wire.chat("PATCH", f"{path}/{mid}", alice, {"content": "y" * 30_000}), 400, "28 KB")


def test_participant_limits(wire: Wire, alice: User) -> None:
    users = [wire.new_user() for _ in range(250)]
    too_many = {"topic": "big", "participants": [u.participant() for u in users[:201]]}
    error = assert_error(wire.chat("POST", "/chat/threads", alice, too_many), 400, "201", "200")
    assert error["target"] == "participants"
    created = wire.chat(
        "POST",
        "/chat/threads",
        alice,
        {"topic": "big", "participants": [u.participant() for u in users[:200]]},
    )
    assert created.status_code == 201
    base = f"/chat/threads/{q(created.json()['chatThread']['id'])}/participants"
    add = wire.chat(
        "POST", f"{base}/:add", alice, {"participants": [u.participant() for u in users[200:249]]}
    )
    assert add.status_code == 201  # 1 + 200 + 49 = 250
    assert_error(
        wire.chat("POST", f"{base}/:add", alice, {"participants": [users[249].participant()]}), 400, "250"
    )
    total = 0
    page = wire.chat("GET", base, alice, params={"maxPageSize": 200}).json()
    total += len(page["value"])
    total += len(wire.follow(page["nextLink"], alice).json()["value"])
    assert total == 250
    readd = wire.chat("POST", f"{base}/:add", alice, {"participants": [users[0].participant("again")]})
    assert readd.status_code == 201  # re-adding a member does not count twice


@pytest.mark.parametrize("size", ["0", "-1", "abc", "1.5", ""])
def test_bad_page_size_is_400(wire: Wire, alice: User, size: str) -> None:
    tid = wire.create_thread(alice)
    for path in ("/chat/threads", f"/chat/threads/{q(tid)}/messages", f"/chat/threads/{q(tid)}/participants"):
        assert_error(wire.chat("GET", path, alice, params={"maxPageSize": size}), 400, "maxPageSize")


def test_bad_query_values_are_400(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    messages = f"/chat/threads/{q(tid)}/messages"
    assert_error(wire.chat("GET", messages, alice, params={"startTime": "yesterday"}), 400, "startTime")
    assert_error(wire.chat("GET", messages, alice, params={"syncState": "zz"}), 400, "syncState")
    assert_error(wire.chat("GET", "/chat/threads", alice, params={"syncState": "1.2"}), 400, "syncState")
    assert_error(
        wire.chat("GET", f"/chat/threads/{q(tid)}/participants", alice, params={"skip": "-3"}), 400, "skip"
    )


def test_unknown_api_version_is_400_everywhere(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    for path in ("/chat/threads", f"/chat/threads/{q(tid)}", f"/chat/threads/{q(tid)}/messages"):
        error = assert_error(
            wire.chat("GET", path, alice, version="1999-12-31"), 400, "1999-12-31", "api-version"
        )
        assert error["code"] == "UnsupportedApiVersion"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"{'topic': 'x'}", id="single-quotes"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"[" * 100_000, id="deep-nesting"),
    ],
)
def test_malformed_json_is_400(wire: Wire, alice: User, raw: bytes) -> None:
    assert_error(wire.chat("POST", "/chat/threads", alice, raw=raw), 400, "JSON")


@pytest.mark.parametrize("body", [[], "topic", 3, None])
def test_non_object_body_is_400(wire: Wire, alice: User, body: Any) -> None:
    raw = json.dumps(body).encode()
    assert_error(wire.chat("POST", "/chat/threads", alice, raw=raw), 400, "object")


def test_unknown_thread_and_message_are_404(wire: Wire, alice: User) -> None:
    missing = "19:doesnotexist1@thread.v2"
    error = assert_error(
        wire.chat("GET", f"/chat/threads/{q(missing)}", alice), 404, "thread", "doesnotexist1"
    )
    assert error["code"] == "ThreadNotFound"
    assert_error(
        wire.chat("POST", f"/chat/threads/{q(missing)}/messages", alice, {"content": "x"}), 404, "thread"
    )
    tid = wire.create_thread(alice)
    error = assert_error(
        wire.chat("GET", f"/chat/threads/{q(tid)}/messages/123", alice), 404, "message", "123"
    )
    assert error["code"] == "MessageNotFound"
    assert_error(
        wire.chat("PATCH", f"/chat/threads/{q(tid)}/messages/123", alice, {"content": "x"}), 404, "message"
    )
    assert wire.chat("DELETE", f"/chat/threads/{q(tid)}/messages/123", alice).status_code == 204
    assert_error(
        wire.chat("POST", f"/chat/threads/{q(tid)}/readReceipts", alice, {"chatMessageId": "1"}),
        404,
        "message",
    )
    assert wire.chat("DELETE", f"/chat/threads/{q(missing)}", alice).status_code == 204


def test_unknown_route_and_method_are_json_errors(wire: Wire, alice: User) -> None:
    assert_error(wire.chat("GET", "/chat/nothing", alice), 404, "/chat/nothing")
    assert_error(wire.chat("PUT", "/chat/threads", alice, {}), 405, "PUT")


def test_oversized_body_is_refused_without_500(wire: Wire, alice: User) -> None:
    response = wire.chat("POST", "/chat/threads", alice, raw=b'{"topic":"' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert_error(response, 413, "bytes")


def test_no_client_mistake_produces_a_500(wire: Wire, alice: User, bob: User) -> None:
    """A sweep of odd inputs: every one is answered below 500 with an ACS error or success body."""
    tid = wire.create_thread(alice, "t", bob)
    mid = wire.send(tid, alice)
    base = f"/chat/threads/{q(tid)}"
    odd: list[tuple[str, str, Any, dict[str, Any] | None]] = [
        ("POST", "/chat/threads", {"topic": ["list"]}, None),
        ("POST", "/chat/threads", {"topic": "t", "participants": "bob"}, None),
        ("POST", "/chat/threads", {"topic": "t", "participants": [None]}, None),
        ("POST", "/chat/threads", {"topic": "t", "participants": [{"communicationIdentifier": 5}]}, None),
        (
            "POST",
            "/chat/threads",
            {"topic": "t", "participants": [{"communicationIdentifier": {"phoneNumber": {"value": "+1"}}}]},
            None,
        ),
        (
            "POST",
            "/chat/threads",
            {"topic": "t", "participants": [{"communicationIdentifier": {"communicationUser": {"id": 7}}}]},
            None,
        ),
        (
            "POST",
            "/chat/threads",
            {"topic": "t", "participants": [{**bob.participant(), "shareHistoryTime": "soon"}]},
            None,
        ),
        (
            "POST",
            "/chat/threads",
            {
                "topic": "t",
                "participants": [{**bob.participant(), "shareHistoryTime": "2026-13-45T99:99:99Z"}],
            },
            None,
        ),
        (
            "POST",
            "/chat/threads",
            {"topic": "t", "participants": [{**bob.participant(), "displayName": 3}]},
            None,
        ),
        ("POST", "/chat/threads", {"topic": "t", "metadata": "x"}, {"api-version": "2025-03-15"}),
        (
            "POST",
            "/chat/threads",
            {"topic": "t", "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": "9"}},
            {"api-version": "2025-03-15"},
        ),
        ("PATCH", base, {"topic": 5}, None),
        ("PATCH", base, {"metadata": [1]}, {"api-version": "2025-03-15"}),
        ("POST", f"{base}/messages", {"content": "x", "metadata": {"a": 1}}, None),
        ("POST", f"{base}/messages", {"content": "x", "senderDisplayName": {}}, None),
        ("PATCH", f"{base}/messages/{mid}", {"metadata": "x"}, None),
        ("PATCH", f"{base}/messages/{mid}", {"content": 7}, None),
        ("POST", f"{base}/typing", {"senderDisplayName": 1}, None),
        ("POST", f"{base}/typing", [], None),
        ("POST", f"{base}/readReceipts", {"chatMessageId": 5}, None),
        ("POST", f"{base}/participants/:remove", {"rawId": "x"}, None),
        (
            "POST",
            f"{base}/participants/:remove",
            {"communicationUser": {"id": bob.id}, "rawId": "other"},
            None,
        ),
        ("GET", f"{base}/messages", None, {"maxPageSize": "9" * 40}),
        ("GET", f"{base}/messages", None, {"startTime": "9999-99-99T00:00:00Z"}),
        ("GET", f"{base}/messages", None, {"syncState": "f" * 400 + ".0"}),
        ("GET", "/chat/threads", None, {"syncState": "0.0." + "g" * 10}),
        ("GET", "/chat/threads", None, {"syncState": "0.0." + "ff" * 40}),
        ("GET", f"{base}/participants", None, {"skip": "1e9"}),
        ("GET", f"{base}/participants", None, {"skip": str(2**70)}),
        ("GET", f"/chat/threads/{'%ZZ'}", None, None),
        ("GET", "/chat/threads/" + q("x" * 5000), None, None),
    ]
    for method, path, body, params in odd:
        params = dict(params or {})
        version = params.pop("api-version", "2024-03-07")
        response = wire.chat(method, path, alice, body, params=params, version=version)
        assert response.status_code < 500, (method, path, body, response.text)
        if response.status_code >= 400:
            assert_error(response, response.status_code)


def test_emulator_survives_a_non_ascii_header_value(wire: Wire) -> None:
    response = wire.http.get(
        "/chat/threads",
        params={"api-version": "2024-03-07"},
        headers={b"Authorization": b"Bearer caf\xe9"},
    )
    assert_error(response, 401)


def test_identity_routes_answer_wrong_methods_with_json(wire: Wire) -> None:
    assert_error(wire.http.get("/identities", params={"api-version": "2023-10-01"}), 405, "GET")
