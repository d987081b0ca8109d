"""``chatnb.connect()``: starting, reusing and stopping the shared emulator; named users across sessions."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import chatnb
from chatnb.emulator import Emulator
from chatnb.location import LocationError, count_leases, default_location, read_server_info
from chatnb.session import CONNECTION_STRING_ENV


@pytest.fixture
def spawned(home: Path) -> Iterator[chatnb.Session]:
    """A session that started its own emulator under a fresh CHATNB_HOME (stopped afterwards)."""
    location = default_location()
    location.mkdir(parents=True)
    stale = {"pid": 2**22 + 12345, "endpoint": "https://127.0.0.1:9/", "ca_cert": "/nope.pem"}
    (location / "server.json").write_text(json.dumps(stale))  # a crashed emulator's leftovers
    session = chatnb.connect()
    try:
        yield session
    finally:
        session.stop()


def test_connect_starts_reuses_and_stops_the_emulator(spawned: chatnb.Session, home: Path) -> None:
    location = home / "emulator"
    assert default_location() == location
    assert spawned.is_emulator and spawned.started_emulator and spawned.location == location
    info = read_server_info(location)
    assert info is not None and info["endpoint"].rstrip("/") == spawned.endpoint
    assert "accesskey" not in repr(spawned).lower()

    jack, jill = spawned.user("Jack"), spawned.user("Jill")
    assert spawned.user("Jack") is jack and jack.id != jill.id
    thread = jack.create_thread("Lunch", participants=[jill])
    thread.send_message("Pizza?")
    frame = jill.thread(thread.thread_id).list_messages()
    assert frame["content"].iloc[-1] == "Pizza?" and frame["sender_display_name"].iloc[-1] == "Jack"
    participants = thread.list_participants().set_index("id")["display_name"].to_dict()
    assert participants == {jack.id: "Jack", jill.id: "Jill"}

    other = chatnb.connect()  # a second notebook: same emulator, same Jack, a token of its own
    try:
        assert not other.started_emulator and other.endpoint == spawned.endpoint
        assert count_leases(location) == 2
        jack2 = other.user("Jack")
        assert jack2.id == jack.id and jack2 is not jack and jack2.credential is not jack.credential
        assert thread.thread_id in set(jack2.threads()["id"])
    finally:
        other.close()  # releases its lease: the emulator stays for the first session
    assert count_leases(location) == 1
    assert thread.send_message("still here").id
    assert read_server_info(location) == info

    pid = info["pid"]
    assert spawned.stop() is True
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert read_server_info(location) is None


def test_connection_string_session(emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONNECTION_STRING_ENV, emulator.connection_string)
    with chatnb.connect() as session:
        assert session.endpoint == emulator.endpoint.rstrip("/") and not session.started_emulator
        assert session.is_emulator  # an emulator this process runs; its certificate is trusted
        ann = session.user("Ann")
        bea = ann.create_thread("Hi", participants=["Bea"])  # a name makes (or finds) that user
        bea_id = session.users["Bea"].id
        assert set(bea.list_participants()["id"]) == {ann.id, bea_id}
        saved = json.loads((session.location / "users.json").read_text())
        assert saved == {"users": {"Ann": ann.id, "Bea": bea_id}}  # keyed by the resource's folder only
        assert session.location.is_relative_to(home)
        session.identity_client.delete_user(ann.identifier)
    with chatnb.connect() as again:
        assert again.user("Bea").id == bea_id
        assert again.user("Ann").id != ann.id  # the deleted user is replaced
    with pytest.raises(ValueError):
        again.user("  ")


def test_user_tokens_refresh_through_the_identity_client(emulator: Emulator, home: Path) -> None:
    with chatnb.connect(emulator.connection_string) as session:
        user = session.user("Zed")
        fresh = user._fresh_token()  # what the user's credential calls near expiry
        claims = json.loads(base64.urlsafe_b64decode(fresh.token.split(".")[1] + "=="))
        assert "8:" + claims["skypeid"] == user.id and fresh.expires_on.tzinfo is not None
        with chatnb.ChatClient(session.endpoint, fresh.token) as chat:
            assert chat.list_chat_threads().empty
        assert isinstance(user.chat_client, chatnb.ChatClient) and "Zed" in repr(user)


def test_two_kernels_racing_to_start_share_one_emulator(home: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        sessions = list(pool.map(lambda _: chatnb.connect(), range(2)))
    try:
        assert sessions[0].endpoint == sessions[1].endpoint
        assert sorted(s.started_emulator for s in sessions) == [False, True]
        assert sessions[0].user("Kim").id == sessions[1].user("Kim").id
    finally:
        assert sorted(session.stop() for session in sessions) == [False, True]  # stopped once, for both
    assert read_server_info(home / "emulator") is None


def test_a_corrupt_users_file_is_refused_and_kept(emulator: Emulator, home: Path) -> None:
    with chatnb.connect(emulator.connection_string) as session:
        session.user("Ann")
        path = session.location / "users.json"
        path.write_text('{"users": {"Ann": "8:acs:x"')  # cut short, as by a full disk in an editor
        again = chatnb.connect(emulator.connection_string)
        with pytest.raises(LocationError, match=r"users\.json is not a valid chatnb users file"):
            again.user("Bea")
        again.close()
        assert path.read_text() == '{"users": {"Ann": "8:acs:x"'  # not replaced


def test_connection_string_and_temporary_cannot_mix(home: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        chatnb.connect(location=home / "x", temporary=True)
    assert not (home / "x").exists()
