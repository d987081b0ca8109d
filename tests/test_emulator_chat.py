"""The emulator's Chat API on the wire: every operation, its exact status, system messages and paging."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chatnb._time import parse_rfc3339
from tests.support.wire import User, Wire, assert_error, q

TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z")


def _ident(user: User) -> dict[str, Any]:
    return {"rawId": user.id, "kind": "communicationUser", "communicationUser": {"id": user.id}}


def _messages(wire: Wire, thread_id: str, user: User) -> list[dict[str, Any]]:
    return wire.all_messages(thread_id, user)


# -- every operation, exact status -------------------------------------------------------------


def test_every_operation_answers_with_the_exact_status(wire: Wire, alice: User, bob: User) -> None:
    t = "/chat/threads"
    created = wire.chat("POST", t, alice, {"topic": "plans", "participants": [bob.participant("Bob")]})
    assert created.status_code == 201
    thread = created.json()["chatThread"]
    tid = thread["id"]
    assert re.fullmatch(r"19:[0-9a-zA-Z]+@thread\.v2", tid)
    assert "location" not in created.headers  # the recorded service answers have none
    assert "invalidParticipants" not in created.json()
    assert thread["topic"] == "plans"
    assert thread["createdByCommunicationIdentifier"] == _ident(alice)
    assert TIME_RE.fullmatch(thread["createdOn"])
    assert "metadata" not in thread  # 2024-03-07 has no thread metadata

    base = f"{t}/{q(tid)}"
    assert wire.chat("GET", t, alice).status_code == 200
    got = wire.chat("GET", base, bob)
    assert got.status_code == 200 and got.json()["id"] == tid
    patch = wire.chat(
        "PATCH", base, alice, {"topic": "new plans"}, content_type="application/merge-patch+json"
    )
    assert patch.status_code == 204 and patch.content == b""

    sent = wire.chat("POST", f"{base}/messages", alice, {"content": "hello", "senderDisplayName": "Alice"})
    assert sent.status_code == 201
    mid = sent.json()["id"]
    assert set(sent.json()) == {"id"}
    message = wire.chat("GET", f"{base}/messages/{mid}", bob)
    assert message.status_code == 200
    m = message.json()
    assert m["content"] == {"message": "hello"} and m["type"] == "text"
    assert m["senderDisplayName"] == "Alice"
    assert m["senderCommunicationIdentifier"] == _ident(alice)
    assert m["version"] == mid and isinstance(m["sequenceId"], str)
    assert wire.chat("GET", f"{base}/messages", bob).status_code == 200
    edit = wire.chat(
        "PATCH",
        f"{base}/messages/{mid}",
        alice,
        {"content": "hi"},
        content_type="application/merge-patch+json",
    )
    assert edit.status_code == 204 and edit.content == b""

    assert wire.chat("POST", f"{base}/typing", bob, {"senderDisplayName": "Bob"}).status_code == 200
    assert wire.chat("POST", f"{base}/typing", bob, {}).status_code == 200
    assert wire.chat("POST", f"{base}/typing", bob).status_code == 200
    receipt = wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": mid})
    assert receipt.status_code == 200 and receipt.content == b""
    receipts = wire.chat("GET", f"{base}/readReceipts", alice)
    assert receipts.status_code == 200
    (r,) = receipts.json()["value"]
    assert r["senderCommunicationIdentifier"] == _ident(bob) and r["chatMessageId"] == mid
    assert TIME_RE.fullmatch(r["readOn"])

    carol = wire.new_user()
    added = wire.chat(
        "POST", f"{base}/participants/:add", alice, {"participants": [carol.participant("Carol")]}
    )
    assert added.status_code == 201 and added.json() == {}
    listed = wire.chat("GET", f"{base}/participants", alice)
    assert listed.status_code == 200
    ids = [p["communicationIdentifier"]["rawId"] for p in listed.json()["value"]]
    assert sorted(ids) == sorted([alice.id, bob.id, carol.id])
    removed = wire.chat("POST", f"{base}/participants/:remove", alice, carol.identifier)
    assert removed.status_code == 204 and removed.content == b""

    deleted = wire.chat("DELETE", f"{base}/messages/{mid}", alice)
    assert deleted.status_code == 204 and deleted.content == b""
    gone = wire.chat("DELETE", base, alice)
    assert gone.status_code == 204 and gone.content == b""


def test_creator_is_a_participant_even_without_participants(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice, "solo")
    value = wire.chat("GET", f"/chat/threads/{q(tid)}/participants", alice).json()["value"]
    assert [p["communicationIdentifier"] for p in value] == [_ident(alice)]
    assert value[0]["shareHistoryTime"]  # present, parseable
    parse_rfc3339(value[0]["shareHistoryTime"])


def test_unknown_participant_is_reported_not_added(wire: Wire, alice: User) -> None:
    ghost = User("8:acs:00000000-0000-0000-0000-000000000000_ghost", "")
    response = wire.chat(
        "POST", "/chat/threads", alice, {"topic": "t", "participants": [ghost.participant()]}
    )
    assert response.status_code == 201
    (err,) = response.json()["invalidParticipants"]
    assert err["target"] == ghost.id and err["code"] and err["message"]
    tid = response.json()["chatThread"]["id"]
    value = wire.chat("GET", f"/chat/threads/{q(tid)}/participants", alice).json()["value"]
    assert [p["communicationIdentifier"]["rawId"] for p in value] == [alice.id]


# -- system messages and sequence ids ----------------------------------------------------------


def test_system_messages_at_creation_and_on_every_change(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "first", bob)
    first = _messages(wire, tid, alice)
    assert [(m["type"], m["sequenceId"]) for m in first] == [("topicUpdated", "2"), ("participantAdded", "1")]
    topic, joined = first
    assert topic["content"]["topic"] == "first"
    assert topic["content"]["initiatorCommunicationIdentifier"] == _ident(alice)
    assert {p["communicationIdentifier"]["rawId"] for p in joined["content"]["participants"]} == {
        alice.id,
        bob.id,
    }
    assert "senderCommunicationIdentifier" not in joined

    base = f"/chat/threads/{q(tid)}"
    assert wire.chat("PATCH", base, bob, {"topic": "second"}).status_code == 204
    carol = wire.new_user()
    wire.chat("POST", f"{base}/participants/:add", alice, {"participants": [carol.participant("Carol")]})
    wire.chat("POST", f"{base}/participants/:remove", alice, carol.identifier)
    newest = _messages(wire, tid, alice)[:3]
    assert [(m["type"], m["sequenceId"]) for m in newest] == [
        ("participantRemoved", "5"),
        ("participantAdded", "4"),
        ("topicUpdated", "3"),
    ]
    removed, added, renamed = newest
    assert renamed["content"]["topic"] == "second"
    assert renamed["content"]["initiatorCommunicationIdentifier"] == _ident(bob)
    assert added["content"]["participants"][0]["communicationIdentifier"] == _ident(carol)
    assert added["content"]["participants"][0]["displayName"] == "Carol"
    assert removed["content"]["participants"][0]["communicationIdentifier"] == _ident(carol)
    assert removed["content"]["initiatorCommunicationIdentifier"] == _ident(alice)
    assert wire.chat("GET", base, alice).json()["topic"] == "second"


def test_sequence_ids_increase_per_thread(wire: Wire, alice: User) -> None:
    one, two = wire.create_thread(alice), wire.create_thread(alice)
    for i in range(3):
        wire.send(one, alice, f"a{i}")
    wire.send(two, alice, "b")
    seqs = [int(m["sequenceId"]) for m in _messages(wire, one, alice)]
    assert seqs == [5, 4, 3, 2, 1]
    assert [int(m["sequenceId"]) for m in _messages(wire, two, alice)] == [3, 2, 1]
    ids = [int(m["id"]) for m in _messages(wire, one, alice)]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)


# -- messages: round trip, edit, delete --------------------------------------------------------


def test_message_round_trip_edit_and_delete(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice, "t", bob)
    base = f"/chat/threads/{q(tid)}/messages"
    mid = wire.send(
        tid, alice, "<b>hi</b>", type="html", senderDisplayName="A", metadata={"k": "v", "x": "1"}
    )
    original = wire.chat("GET", f"{base}/{mid}", bob).json()
    assert original["type"] == "html" and original["content"]["message"] == "<b>hi</b>"
    assert original["metadata"] == {"k": "v", "x": "1"}
    assert "editedOn" not in original and "deletedOn" not in original

    patch = {"content": "edited", "metadata": {"x": None, "y": "2"}}
    assert wire.chat("PATCH", f"{base}/{mid}", alice, patch).status_code == 204
    edited = wire.chat("GET", f"{base}/{mid}", bob).json()
    assert edited["content"]["message"] == "edited"
    assert edited["metadata"] == {"k": "v", "y": "2"}  # merge-patch: null removes a key
    assert TIME_RE.fullmatch(edited["editedOn"])
    assert int(edited["version"]) > int(original["version"])
    assert edited["id"] == mid and edited["createdOn"] == original["createdOn"]

    assert wire.chat("DELETE", f"{base}/{mid}", alice).status_code == 204
    assert wire.chat("DELETE", f"{base}/{mid}", alice).status_code == 204
    deleted = wire.chat("GET", f"{base}/{mid}", bob).json()
    assert TIME_RE.fullmatch(deleted["deletedOn"])
    assert "message" not in deleted.get("content", {})
    listed = next(m for m in _messages(wire, tid, bob) if m["id"] == mid)
    assert "deletedOn" in listed and "message" not in listed.get("content", {})
    assert_error(wire.chat("PATCH", f"{base}/{mid}", alice, {"content": "again"}), 404, "deleted")


def test_start_time_lists_messages_changed_since(wire: Wire, alice: User) -> None:
    tid = wire.create_thread(alice)
    old = wire.send(tid, alice, "old")
    edited = wire.send(tid, alice, "to edit")
    cut = wire.chat("GET", f"/chat/threads/{q(tid)}/messages/{edited}", alice).json()["createdOn"]
    cut_time = parse_rfc3339(cut) + timedelta(microseconds=1)
    new = wire.send(tid, alice, "new")
    wire.chat("PATCH", f"/chat/threads/{q(tid)}/messages/{edited}", alice, {"content": "edited"})
    params = {"startTime": cut_time.isoformat().replace("+00:00", "Z")}
    value = wire.chat("GET", f"/chat/threads/{q(tid)}/messages", alice, params=params).json()["value"]
    ids = [m["id"] for m in value]
    assert new in ids and edited in ids and old not in ids


# -- paging ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_thread(wire: Wire) -> tuple[str, User, set[str]]:
    """A thread with 260 text messages (262 with the two system messages)."""
    owner = wire.new_user()
    tid = wire.create_thread(owner, "long")
    sent = {wire.send(tid, owner, f"m{i}") for i in range(260)}
    return tid, owner, sent


def test_paging_260_messages_by_100(wire: Wire, long_thread: tuple[str, User, set[str]]) -> None:
    tid, owner, sent = long_thread
    response = wire.chat("GET", f"/chat/threads/{q(tid)}/messages", owner, params={"maxPageSize": 100})
    pages: list[list[dict[str, Any]]] = []
    links: list[str] = []
    while True:
        assert response.status_code == 200
        body = response.json()
        pages.append(body["value"])
        if "nextLink" not in body:
            break
        links.append(body["nextLink"])
        response = wire.follow(body["nextLink"], owner)
    assert len(pages) >= 3
    assert all(len(page) <= 100 for page in pages)
    items = [m for page in pages for m in page]
    ids = [m["id"] for m in items]
    assert len(ids) == len(set(ids)) == 262
    assert sent <= set(ids)
    seqs = [int(m["sequenceId"]) for m in items]
    assert seqs == list(range(262, 0, -1))  # newest first, system messages interleaved
    for link in links:
        parts = urlsplit(link)
        assert parts.scheme == "https" and parts.netloc == urlsplit(wire.emulator.endpoint).netloc
        query = parse_qs(parts.query)
        assert query["api-version"] == ["2024-03-07"]
        assert query["maxPageSize"] == ["100"]
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", query["syncState"][0])


def test_page_size_is_capped_at_200(wire: Wire, long_thread: tuple[str, User, set[str]]) -> None:
    tid, owner, _ = long_thread
    response = wire.chat("GET", f"/chat/threads/{q(tid)}/messages", owner, params={"maxPageSize": 500})
    body = response.json()
    assert len(body["value"]) == 200
    assert parse_qs(urlsplit(body["nextLink"]).query)["maxPageSize"] == ["200"]
    rest = wire.follow(body["nextLink"], owner).json()
    assert len(rest["value"]) == 62 and "nextLink" not in rest


def test_python_style_continuation_replaces_api_version(
    wire: Wire, long_thread: tuple[str, User, set[str]]
) -> None:
    """Python re-sends the nextLink's query with its own api-version; a continuation is never refused for
    its api-version (absent or unknown)."""
    tid, owner, _ = long_thread
    path = f"/chat/threads/{q(tid)}/messages"
    body = wire.chat("GET", path, owner, params={"maxPageSize": 150}).json()
    query = {k: v[0] for k, v in parse_qs(urlsplit(body["nextLink"]).query).items()}
    query.pop("api-version")
    modern = wire.chat("GET", path, owner, params=query, version="2025-03-15")
    bare = wire.chat("GET", path, owner, params=query, version=None)
    future = wire.chat("GET", path, owner, params=query, version="2099-01-01")
    assert modern.status_code == bare.status_code == future.status_code == 200
    assert [m["id"] for m in modern.json()["value"]] == [m["id"] for m in bare.json()["value"]]
    assert future.json() == bare.json()
    assert len(bare.json()["value"]) == 112


def test_participants_and_threads_page_with_size_1(wire: Wire, alice: User, bob: User) -> None:
    carol = wire.new_user()
    tid = wire.create_thread(alice, "t", bob, carol)
    response = wire.chat("GET", f"/chat/threads/{q(tid)}/participants", alice, params={"maxPageSize": 1})
    seen = []
    while True:
        body = response.json()
        assert len(body["value"]) == 1
        seen.append(body["value"][0]["communicationIdentifier"]["rawId"])
        if "nextLink" not in body:
            break
        query = parse_qs(urlsplit(body["nextLink"]).query)
        assert query["api-version"] == ["2024-03-07"] and "skip" in query
        response = wire.follow(body["nextLink"], alice)
    assert sorted(seen) == sorted([alice.id, bob.id, carol.id])

    owner = wire.new_user()
    topics = {f"t{i}" for i in range(3)}
    for topic in topics:
        wire.create_thread(owner, topic)
    response = wire.chat("GET", "/chat/threads", owner, params={"maxPageSize": 1})
    listed = []
    while True:
        body = response.json()
        assert len(body["value"]) <= 1
        listed += [t["topic"] for t in body["value"]]
        if "nextLink" not in body:
            break
        response = wire.follow(body["nextLink"], owner)
    assert sorted(listed) == sorted(topics)


def test_read_receipts_page_with_skip(wire: Wire, alice: User) -> None:
    readers = [wire.new_user() for _ in range(3)]
    tid = wire.create_thread(alice, "t", *readers)
    mid = wire.send(tid, alice)
    for reader in readers:
        wire.chat("POST", f"/chat/threads/{q(tid)}/readReceipts", reader, {"chatMessageId": mid})
    first = wire.chat("GET", f"/chat/threads/{q(tid)}/readReceipts", alice, params={"maxPageSize": 2}).json()
    second = wire.follow(first["nextLink"], alice).json()
    assert "nextLink" not in second
    senders = [r["senderCommunicationIdentifier"]["rawId"] for r in first["value"] + second["value"]]
    assert sorted(senders) == sorted(u.id for u in readers)


# -- threads: list, delete, idempotency, api versions ------------------------------------------


def test_thread_list_shows_current_topic_and_deleted_thread_is_404(
    wire: Wire, alice: User, bob: User
) -> None:
    tid = wire.create_thread(alice, "before", bob)
    wire.chat("PATCH", f"/chat/threads/{q(tid)}", alice, {"topic": "after"})
    items = wire.chat("GET", "/chat/threads", bob).json()["value"]
    (item,) = [t for t in items if t["id"] == tid]
    assert item["topic"] == "after" and TIME_RE.fullmatch(item["lastMessageReceivedOn"])
    assert wire.chat("DELETE", f"/chat/threads/{q(tid)}", alice).status_code == 204
    assert wire.chat("DELETE", f"/chat/threads/{q(tid)}", alice).status_code == 204
    assert_error(wire.chat("GET", f"/chat/threads/{q(tid)}", alice), 404, "thread")
    assert_error(wire.chat("POST", f"/chat/threads/{q(tid)}/messages", bob, {"content": "x"}), 404, "thread")
    after = [t for t in wire.chat("GET", "/chat/threads", bob).json()["value"] if t["id"] == tid]
    assert after == [] or "deletedOn" in after[0]


def test_repeatability_request_id_replays_the_same_thread(wire: Wire, alice: User, bob: User) -> None:
    rid = str(uuid.uuid4())
    body = {"topic": "once", "participants": [bob.participant()]}
    first = wire.chat("POST", "/chat/threads", alice, body, headers={"repeatability-request-id": rid})
    again = wire.chat("POST", "/chat/threads", alice, body, headers={"repeatability-request-id": rid})
    assert first.status_code == again.status_code == 201
    assert first.json()["chatThread"] == again.json()["chatThread"]
    tid = first.json()["chatThread"]["id"]
    assert len(_messages(wire, tid, alice)) == 2  # created once
    other = wire.chat(
        "POST", "/chat/threads", alice, body, headers={"repeatability-request-id": str(uuid.uuid4())}
    )
    assert other.json()["chatThread"]["id"] != tid


def test_api_version_2025_03_15_metadata_and_retention_policy(wire: Wire, alice: User) -> None:
    v = "2025-03-15"
    body = {
        "topic": "modern",
        "participants": [],
        "metadata": {"team": "red"},
        "retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 30},
    }
    created = wire.chat("POST", "/chat/threads", alice, body, version=v)
    assert created.status_code == 201
    thread = created.json()["chatThread"]
    assert thread["metadata"] == {"team": "red"}
    assert thread["retentionPolicy"] == {"kind": "threadCreationDate", "deleteThreadAfterDays": 30}
    base = f"/chat/threads/{q(thread['id'])}"
    patch = {"metadata": {"team": None, "floor": "2"}, "retentionPolicy": {"kind": "none"}}
    assert wire.chat("PATCH", base, alice, patch, version=v).status_code == 204
    got = wire.chat("GET", base, alice, version=v).json()
    assert got["metadata"] == {"floor": "2"} and got["retentionPolicy"] == {"kind": "none"}
    assert "metadata" not in wire.chat("GET", base, alice).json()  # 2024-03-07 view
    plain = wire.chat("POST", "/chat/threads", alice, {"topic": "p"}, version=v).json()["chatThread"]
    assert plain["metadata"] == {} and plain["retentionPolicy"] == {"kind": "none"}
    bad = {"topic": "x", "retentionPolicy": {"kind": "forever"}}
    assert_error(wire.chat("POST", "/chat/threads", alice, bad, version=v), 400, "retentionPolicy")


@pytest.mark.parametrize("version", ["2021-03-07", "2021-09-07", "2023-11-07", "2024-03-07", "2025-03-15"])
def test_stable_api_versions_are_accepted(wire: Wire, alice: User, version: str) -> None:
    created = wire.chat("POST", "/chat/threads", alice, {"topic": version}, version=version)
    assert created.status_code == 201
    tid = created.json()["chatThread"]["id"]
    assert wire.chat("GET", f"/chat/threads/{q(tid)}/messages", alice, version=version).status_code == 200


def test_unknown_api_version_is_400(wire: Wire, alice: User) -> None:
    error = assert_error(wire.chat("GET", "/chat/threads", alice, version="2099-01-01"), 400, "api-version")
    assert error["code"] == "UnsupportedApiVersion"
    assert_error(wire.chat("GET", "/chat/threads", alice, version=None), 400, "api-version")


def test_share_history_time_round_trips(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice)
    when = datetime(2026, 11, 26, 12, 16, 46, 720500, tzinfo=timezone.utc)
    p = bob.participant("Bob", "2026-11-26T12:16:46.7205Z")
    wire.chat("POST", f"/chat/threads/{q(tid)}/participants/:add", alice, {"participants": [p]})
    value = wire.chat("GET", f"/chat/threads/{q(tid)}/participants", alice).json()["value"]
    (listed,) = [x for x in value if x["communicationIdentifier"]["rawId"] == bob.id]
    assert abs(parse_rfc3339(listed["shareHistoryTime"]) - when) < timedelta(seconds=1)
    assert listed["displayName"] == "Bob"


def test_participant_metadata_needs_api_version_2025_03_15(wire: Wire, alice: User, bob: User) -> None:
    tid = wire.create_thread(alice)
    path = f"/chat/threads/{q(tid)}/participants"
    member = {**bob.participant("Bob"), "metadata": {"role": "guest"}}
    assert (
        wire.chat("POST", f"{path}/:add", alice, {"participants": [member]}, version="2025-03-15").status_code
        == 201
    )
    modern = wire.chat("GET", path, alice, version="2025-03-15").json()["value"]
    assert next(p for p in modern if p.get("displayName") == "Bob")["metadata"] == {"role": "guest"}
    too_big = {**bob.participant(), "metadata": {"k": "v" * 1100}}
    assert_error(
        wire.chat("POST", f"{path}/:add", alice, {"participants": [too_big]}, version="2025-03-15"),
        400,
        "metadata",
    )
