"""The emulator under API-level abuse: sizes, continuation tokens, Host headers, hidden read receipts,
repeatability keys, method errors, and storage that is locked, full or broken.

Every answer is checked on the wire: status, ACS error body, headers. The storage cases use real
failures: a second process holding SQLite's write lock, a database at its size cap, a table dropped
under the running server.
"""

from __future__ import annotations

import concurrent.futures
import socket
import sqlite3
import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chatnb._time import format_rfc3339, parse_rfc3339, to_us
from chatnb.emulator import Emulator, ServerLimits
from tests.support.net import read_response, request_bytes
from tests.support.waiting import wait_until
from tests.support.wire import CHAT_VERSION, Wire, assert_error, q


def test_405_says_what_it_is_and_what_is_allowed(wire: Wire) -> None:
    alice = wire.new_user()
    error = assert_error(wire.chat("PUT", "/chat/threads", alice, {}), 405, "PUT", code="MethodNotAllowed")
    assert "GET" in error["message"] and "POST" in error["message"]
    response = wire.chat("PUT", "/chat/threads", alice, {})
    assert response.headers["allow"] == "GET, HEAD, POST"
    tid = wire.create_thread(alice)
    response = wire.chat("POST", f"/chat/threads/{q(tid)}", alice, {})
    assert_error(response, 405, code="MethodNotAllowed")
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


# -- 15: sizes ---------------------------------------------------------------------------------


def test_the_28_kb_limit_counts_every_field_in_bytes(wire: Wire) -> None:
    alice = wire.new_user()
    tid = wire.create_thread(alice)
    path = f"/chat/threads/{q(tid)}/messages"
    near = "x" * (28 * 1024 - 150)
    assert (
        wire.chat("POST", path, alice, {"content": near, "senderDisplayName": "n" * 100}).status_code == 201
    )
    too_big = {"content": near, "senderDisplayName": "n" * 200}
    assert_error(wire.chat("POST", path, alice, too_big), 400, "display name", code="MessageTooLarge")
    # 100 two-byte characters of metadata are 200 bytes, not 100 characters
    accented = {"content": near, "metadata": {"k": "é" * 100}}
    assert_error(wire.chat("POST", path, alice, accented), 400, "metadata", code="MessageTooLarge")
    mid = wire.send(tid, alice, near[:-100])
    patch = wire.chat("PATCH", f"{path}/{mid}", alice, {"metadata": {"k": "é" * 200}})
    assert_error(patch, 400, code="MessageTooLarge")  # an edit of metadata alone counts too


def test_topics_and_display_names_are_capped(wire: Wire) -> None:
    alice, bob = wire.new_user(), wire.new_user()
    assert_error(
        wire.chat("POST", "/chat/threads", alice, {"topic": "t" * 251}), 400, "250", code="TopicTooLong"
    )
    assert wire.chat("POST", "/chat/threads", alice, {"topic": "t" * 250}).status_code == 201
    named = {"topic": "t", "participants": [bob.participant("b" * 257)]}
    assert_error(wire.chat("POST", "/chat/threads", alice, named), 400, "256", code="DisplayNameTooLong")
    tid = wire.create_thread(alice)
    base = f"/chat/threads/{q(tid)}"
    assert_error(wire.chat("PATCH", base, alice, {"topic": "t" * 251}), 400, code="TopicTooLong")
    typing = wire.chat("POST", f"{base}/typing", alice, {"senderDisplayName": "n" * 257})
    assert_error(typing, 400, "senderDisplayName", code="DisplayNameTooLong")
    added = wire.chat(
        "POST", f"{base}/participants/:add", alice, {"participants": [bob.participant("b" * 257)]}
    )
    assert_error(added, 400, code="DisplayNameTooLong")
    assert wire.chat("POST", f"{base}/typing", alice, {"senderDisplayName": "n" * 256}).status_code == 200


# -- 16: continuation tokens, 5xx and storage --------------------------------------------------


@pytest.mark.parametrize(
    "token", ["0.0.-1", "-1.0.0", "0.0.+1", "0x1.0.0", " 1.0.0", "1_0.0.0", "0.0.FF", "0.0.", "..", "0.0.0.0"]
)
def test_malformed_thread_continuation_tokens_are_400(wire: Wire, token: str) -> None:
    alice = wire.new_user()
    assert_error(wire.chat("GET", "/chat/threads", alice, params={"syncState": token}), 400, "syncState")


@pytest.mark.parametrize("token", ["-1.0", "1.-1", "+1.0", "1.0x0", "ff .0"])
def test_malformed_message_continuation_tokens_are_400(wire: Wire, token: str) -> None:
    alice = wire.new_user()
    tid = wire.create_thread(alice)
    listing = wire.chat("GET", f"/chat/threads/{q(tid)}/messages", alice, params={"syncState": token})
    assert_error(listing, 400, "syncState")


def file_emulator(tmp_path: Path, **limits: Any) -> Emulator:
    """An emulator keeping its database under ``tmp_path``, with ``ServerLimits(**limits)`` if given."""
    if not limits:
        return Emulator(tmp_path / "emu")
    return Emulator(tmp_path / "emu", server_limits=ServerLimits(**limits))


def database(emu: Emulator) -> Path:
    assert emu.location is not None
    return emu.location / "chatnb.sqlite3"


def tls_connection(emu: Emulator) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(emu.ca_cert))
    raw = socket.create_connection(("127.0.0.1", emu.port), timeout=30)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_5xx_leaves_the_keep_alive_connection_usable(tmp_path: Path) -> None:
    """A table dropped under the running server makes a real 500; the same connection then serves on."""
    with file_emulator(tmp_path) as emu, Wire(emu) as wire:
        alice = wire.new_user()
        tid = wire.create_thread(alice)
        with sqlite3.connect(database(emu)) as other:
            other.execute("DROP TABLE read_receipts")
        base = f"/chat/threads/{q(tid)}"
        headers = {"Authorization": f"Bearer {alice.token}"}
        with tls_connection(emu) as conn:
            conn.sendall(request_bytes("GET", f"{base}/readReceipts?api-version={CHAT_VERSION}", headers))
            broken = read_response(conn)
            assert broken is not None and broken.status == 500
            assert broken.json()["error"]["code"] == "InternalError"
            conn.sendall(request_bytes("GET", f"{base}?api-version={CHAT_VERSION}", headers))
            after = read_response(conn)
        assert after is not None and after.status == 200, "the connection was dropped after the 500"


class Locker:
    """A second process holding SQLite's write lock on ``path`` until :meth:`release`."""

    SCRIPT = (
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "db.execute('COMMIT')\n"
    )

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            self.process.wait(30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Locker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_lock_held_by_another_process_stalls_no_other_request(tmp_path: Path) -> None:
    """While a write waits for the lock, reads are answered; the write goes through once it is free."""
    with file_emulator(tmp_path, storage_timeout=60.0) as emu, Wire(emu) as wire, Wire(emu) as writer:
        alice = wire.new_user()
        tid = wire.create_thread(alice)
        first = wire.send(tid, alice, "before the lock")
        with concurrent.futures.ThreadPoolExecutor(1) as pool, Locker(database(emu)) as lock:
            pending = pool.submit(writer.send, tid, alice, "while locked")
            # the write has reached the database and waits for the lock
            wait_until(
                lambda: emu.store.writes_in_flight > 0 or pending.done(), "the write reaching the database"
            )
            assert not pending.done(), pending.result()
            for _ in range(3):
                assert wire.all_messages(tid, alice)[0]["id"] == first
                assert wire.chat("GET", f"/chat/threads/{q(tid)}", alice).status_code == 200
            assert not pending.done(), "the write finished while the lock was held"
            lock.release()
            written = pending.result(timeout=60)
        assert wire.all_messages(tid, alice)[0]["id"] == written


def test_a_lock_that_outlasts_the_storage_timeout_is_a_503(tmp_path: Path) -> None:
    with file_emulator(tmp_path, storage_timeout=0.3) as emu, Wire(emu) as wire:
        alice = wire.new_user()
        tid = wire.create_thread(alice)
        with Locker(database(emu)):
            response = wire.chat("POST", f"/chat/threads/{q(tid)}/messages", alice, {"content": "x"})
            assert_error(response, 503, "locked", code="StorageUnavailable")
            assert response.headers["retry-after"] == "1"
            assert wire.chat("GET", f"/chat/threads/{q(tid)}", alice).status_code == 200
        assert (
            wire.chat("POST", f"/chat/threads/{q(tid)}/messages", alice, {"content": "x"}).status_code == 201
        )
        assert len(wire.all_messages(tid, alice)) == 3  # two system messages and the one that got through


def test_a_full_database_is_a_503_and_loses_nothing(tmp_path: Path) -> None:
    with file_emulator(tmp_path, max_database_bytes=400 * 1024) as emu, Wire(emu) as wire:
        alice = wire.new_user()
        tid = wire.create_thread(alice)
        path = f"/chat/threads/{q(tid)}/messages"
        sent: list[str] = []
        for _ in range(100):
            response = wire.chat("POST", path, alice, {"content": "x" * 20_000})
            if response.status_code != 201:
                break
            sent.append(response.json()["id"])
        assert_error(response, 503, "full", code="StorageUnavailable")
        assert response.headers["retry-after"] == "1"
        listed = [m["id"] for m in wire.all_messages(tid, alice) if m["type"] == "text"]
        assert sorted(listed) == sorted(sent) and len(sent) > 5
        assert emu.store.integrity_check() == "ok"


# -- 17: links ---------------------------------------------------------------------------------


def test_links_come_from_the_endpoint_not_the_host_header(wire: Wire, emulator: Emulator) -> None:
    alice = wire.new_user()
    evil = {"Host": "evil.example:443"}
    created = wire.chat("POST", "/chat/threads", alice, {"topic": "t"}, headers=evil)
    assert created.status_code == 201
    base = emulator.endpoint.rstrip("/")
    assert "location" not in created.headers  # the recorded service answers have no Location
    tid = created.json()["chatThread"]["id"]
    sent = wire.chat("POST", f"/chat/threads/{q(tid)}/messages", alice, {"content": "x"}, headers=evil)
    assert sent.status_code == 201 and "location" not in sent.headers
    page = wire.chat(
        "GET", f"/chat/threads/{q(tid)}/messages", alice, params={"maxPageSize": 1}, headers=evil
    )
    assert page.json()["nextLink"].startswith(f"{base}/chat/threads/")
    assert "evil" not in page.text


# -- 18: read receipts and shareHistoryTime ----------------------------------------------------


def test_read_receipts_of_hidden_messages_are_hidden(wire: Wire) -> None:
    alice, bob, carol = wire.new_user(), wire.new_user(), wire.new_user()
    tid = wire.create_thread(alice, "t", bob)
    base = f"/chat/threads/{q(tid)}"
    old = wire.send(tid, alice, "before Carol")
    assert wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": old}).status_code == 200
    created = parse_rfc3339(wire.chat("GET", f"{base}/messages/{old}", alice).json()["createdOn"])
    share = format_rfc3339(to_us(created + timedelta(microseconds=1)))
    added = wire.chat(
        "POST", f"{base}/participants/:add", alice, {"participants": [carol.participant(None, share)]}
    )
    assert added.status_code == 201
    receipts = wire.chat("GET", f"{base}/readReceipts", carol).json()["value"]
    assert receipts == [], "Carol sees the id of a message sent before her shareHistoryTime"
    assert len(wire.chat("GET", f"{base}/readReceipts", alice).json()["value"]) == 1
    new = wire.send(tid, alice, "after Carol")
    assert wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": new}).status_code == 200
    receipts = wire.chat("GET", f"{base}/readReceipts", carol).json()["value"]
    assert [r["chatMessageId"] for r in receipts] == [new]


def test_read_receipt_events_of_hidden_messages_are_hidden(emulator: Emulator) -> None:
    with Wire(emulator) as wire:
        alice, bob, carol = wire.new_user(), wire.new_user(), wire.new_user()
        tid = wire.create_thread(alice, "t", bob)
        base = f"/chat/threads/{q(tid)}"
        old = wire.send(tid, alice, "before Carol")
        created = parse_rfc3339(wire.chat("GET", f"{base}/messages/{old}", alice).json()["createdOn"])
        share = format_rfc3339(to_us(created + timedelta(microseconds=1)))
        wire.chat(
            "POST", f"{base}/participants/:add", alice, {"participants": [carol.participant(None, share)]}
        )
        headers = {"Authorization": f"Bearer {carol.token}"}
        with wire.http.stream("GET", f"/chatnb/events?api-version={CHAT_VERSION}", headers=headers) as stream:
            lines = stream.iter_lines()
            assert any(line == "event: realTimeNotificationConnected" for line in lines)
            wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": old})  # hidden from Carol
            new = wire.send(tid, alice, "after Carol")
            wire.chat("POST", f"{base}/readReceipts", bob, {"chatMessageId": new})  # visible to her
            receipts = []
            for line in lines:
                if line.startswith("data: ") and '"chatMessageId"' in line:
                    receipts.append(line)
                    break
        assert new in receipts[0] and old not in receipts[0]


# -- 19: repeatability-request-id --------------------------------------------------------------


def test_a_reused_repeatability_key_replays_the_first_thread_whatever_the_body(wire: Wire) -> None:
    alice, bob = wire.new_user(), wire.new_user()
    key = {"repeatability-request-id": "3f6b5c1e-9a7d-4c2b-8e1f-0a2b3c4d5e6f"}
    first = wire.chat("POST", "/chat/threads", alice, {"topic": "first", "participants": []}, headers=key)
    other = {"topic": "second", "participants": [bob.participant("Bob")]}
    again = wire.chat("POST", "/chat/threads", alice, other, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["chatThread"] == first.json()["chatThread"]
    assert again.json()["chatThread"]["topic"] == "first"
    assert wire.chat("GET", f"/chat/threads/{q(first.json()['chatThread']['id'])}", bob).status_code == 403
    tid = first.json()["chatThread"]["id"]
    assert wire.chat("DELETE", f"/chat/threads/{q(tid)}", alice).status_code == 204
    after_delete = wire.chat("POST", "/chat/threads", alice, other, headers=key)
    assert after_delete.status_code == 201 and after_delete.json()["chatThread"]["id"] == tid
    assert "deletedOn" in after_delete.json()["chatThread"]  # the replay does not hide what happened since
    # another user's identical key is another request
    other_user = wire.chat("POST", "/chat/threads", bob, {"topic": "bob's"}, headers=key)
    assert other_user.json()["chatThread"]["id"] != first.json()["chatThread"]["id"]


@pytest.mark.parametrize(
    "key",
    ["k" * 129, "has space", "tab\tinside", "é-not-ascii"],
    ids=["too-long", "space", "control", "non-ascii"],
)
def test_bad_repeatability_keys_are_400(wire: Wire, key: str) -> None:
    alice = wire.new_user()
    response = wire.http.post(
        "/chat/threads",
        params={"api-version": CHAT_VERSION},
        json={"topic": "t"},
        headers={
            b"Authorization": f"Bearer {alice.token}".encode(),
            b"repeatability-request-id": key.encode(),
        },
    )
    assert_error(response, 400, "repeatability-request-id", code="InvalidRepeatabilityRequestId")


def test_a_100_kb_repeatability_key_is_refused(wire: Wire) -> None:
    alice = wire.new_user()
    response = wire.chat(
        "POST", "/chat/threads", alice, {"topic": "t"}, headers={"repeatability-request-id": "k" * 100_000}
    )
    assert_error(response, 431, code="RequestHeaderFieldsTooLarge")
