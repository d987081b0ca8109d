"""The emulator's manual clock: stored times, token expiry (the chatnb client refreshes), the event
stream, and the retention policy follow it; it moves only when told to, through the API or the
HMAC-authenticated endpoint, and a system clock refuses to move."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

import chatnb.aio
from chatnb import (
    ChatClient,
    ChatParticipant,
    CommunicationIdentityClient,
    CommunicationTokenCredential,
)
from chatnb._time import to_datetime
from chatnb.emulator import Emulator
from chatnb.emulator.clock import Clock, ClockError
from chatnb.errors import AuthenticationError, NotFoundError
from chatnb.models import ChatRetentionPolicy
from tests.support.processes import Served
from tests.support.wire import Wire, assert_error, q


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(clock="manual") as emulator:
        yield emulator


@pytest.fixture
def identity(emu: Emulator) -> Iterator[CommunicationIdentityClient]:
    with CommunicationIdentityClient.from_connection_string(emu.connection_string) as client:
        yield client


def test_a_manual_clock_stands_still_and_stamps_what_is_stored(
    emu: Emulator, identity: CommunicationIdentityClient
) -> None:
    start = emu.clock.now_us()
    _, token = identity.create_user_and_token(["chat"])
    with ChatClient(emu.endpoint, token.token) as chat:
        thread = chat.get_chat_thread_client(chat.create_chat_thread("t").chat_thread.id)
        created = thread.get_properties().created_on
        emu.advance(timedelta(hours=20, minutes=30))
        message = thread.get_message(thread.send_message("later").id)
    later = start + (20 * 60 + 30) * 60 * 1_000_000
    assert emu.clock.now_us() == later  # it stood still through every request
    assert created == to_datetime(start)
    assert message.created_on == to_datetime(later)
    assert abs(token.expires_on.timestamp() - (start / 1e6 + 24 * 3600)) < 1  # issued by the clock


def test_advancing_expires_tokens_and_the_client_refreshes(
    emu: Emulator, identity: CommunicationIdentityClient
) -> None:
    user, token = identity.create_user_and_token(["chat"], token_expires_in=timedelta(hours=1))
    refreshed: list[str] = []

    def refresher() -> object:
        fresh = identity.get_token(user, ["chat"])
        refreshed.append(fresh.token)
        return fresh

    with ChatClient(emu.endpoint, token.token) as fixed:
        thread_id = fixed.create_chat_thread("before").chat_thread.id
        emu.advance(timedelta(minutes=61))
        with pytest.raises(AuthenticationError, match="expired"):
            fixed.get_chat_thread_client(thread_id).get_properties()  # no refresher: refused
    credential = CommunicationTokenCredential(token.token, token_refresher=refresher)
    with ChatClient(emu.endpoint, credential) as chat:
        assert chat.get_chat_thread_client(thread_id).get_properties().topic == "before"
    assert len(refreshed) == 1 and credential.get_token().token == refreshed[0]


async def test_the_async_client_refreshes_too(emu: Emulator, identity: CommunicationIdentityClient) -> None:
    user, token = identity.create_user_and_token(["chat"])

    async def refresher() -> object:
        async with chatnb.aio.CommunicationIdentityClient.from_connection_string(
            emu.connection_string
        ) as ids:
            return await ids.get_token(user, ["chat"])

    credential = chatnb.aio.CommunicationTokenCredential(token.token, token_refresher=refresher)
    async with chatnb.aio.ChatClient(emu.endpoint, credential) as chat:
        created = await chat.create_chat_thread("async")
        emu.advance(timedelta(days=2))
        thread = chat.get_chat_thread_client(created.chat_thread.id)
        assert (await thread.get_properties()).topic == "async"
    assert (await credential.get_token()).token != token.token


def test_the_event_stream_ends_when_the_clock_expires_its_token(emu: Emulator) -> None:
    with Wire(emu) as wire:
        alice = wire.new_user()
        with wire.http.stream(
            "GET", "/chatnb/events?api-version=2024-03-07", headers={"Authorization": f"Bearer {alice.token}"}
        ) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == (
                "event: realTimeNotificationConnected"
            )
            emu.advance(timedelta(hours=25))
            rest = list(lines)  # the stream ends: the token expired by the emulator's clock
        assert not any(line.startswith("event:") for line in rest)
        refused = wire.chat("GET", "/chatnb/events", alice)
        assert_error(refused, 401, "expired")


def test_retention_deletes_threads_once_their_days_have_passed(
    emu: Emulator, identity: CommunicationIdentityClient
) -> None:
    (a, a_token), (b, _) = identity.create_user_and_token(["chat"]), identity.create_user_and_token(["chat"])
    refreshing = CommunicationTokenCredential(
        a_token.token, token_refresher=lambda: identity.get_token(a, ["chat"])
    )
    with ChatClient(emu.endpoint, refreshing) as chat:  # 30 days outlive any token: it refreshes
        policy = ChatRetentionPolicy.thread_creation_date(30)
        doomed = chat.create_chat_thread(
            "doomed", [ChatParticipant(b)], retention_policy=policy
        ).chat_thread.id
        spared = chat.create_chat_thread("spared", retention_policy=policy).chat_thread.id
        kept = chat.create_chat_thread("kept").chat_thread.id
        chat.get_chat_thread_client(spared).update_properties(retention_policy=ChatRetentionPolicy())
        emu.advance(timedelta(days=29, hours=23))
        assert chat.get_chat_thread_client(doomed).get_properties().topic == "doomed"
        emu.advance(timedelta(hours=1))  # 30 days since creation: the sweep ran before advance returned
        with pytest.raises(NotFoundError):
            chat.get_chat_thread_client(doomed).get_properties()
        assert chat.get_chat_thread_client(spared).get_properties().topic == "spared"
        assert chat.get_chat_thread_client(kept).get_properties().topic == "kept"
        listed = chat.list_chat_threads()
        deleted = listed.loc[listed["id"] == doomed, "deleted_on"].iloc[0]
        assert deleted is not None and abs(deleted.timestamp() * 1e6 - emu.clock.now_us()) < 1000
    assert emu.retention.deleted == 1


def test_the_clock_endpoint_reads_and_moves_the_clock_with_the_access_key(emu: Emulator) -> None:
    with Wire(emu) as wire:
        before = emu.clock.now_us()
        moved = wire.signed("POST", "/chatnb/clock/:advance", {"seconds": 3600})
        assert moved.status_code == 200 and moved.json()["mode"] == "manual"
        assert emu.clock.now_us() - before == 3600 * 1_000_000
        assert wire.signed("GET", "/chatnb/clock").json()["now"] == moved.json()["now"]
        assert_error(wire.signed("POST", "/chatnb/clock/:advance", {"seconds": -1}), 400, "seconds")
        assert_error(wire.signed("POST", "/chatnb/clock/:advance", {"seconds": "1h"}), 400, "seconds")
        unsigned = wire.http.post("/chatnb/clock/:advance", json={"seconds": 1})
        assert unsigned.status_code == 401 and emu.clock.now_us() - before == 3600 * 1_000_000


def test_a_system_clock_cannot_be_moved(emulator: Emulator) -> None:
    with pytest.raises(ClockError, match="clock='manual'"):
        emulator.advance(timedelta(seconds=1))
    with Wire(emulator) as wire:
        error = assert_error(wire.signed("POST", "/chatnb/clock/:advance", {"seconds": 1}), 409, "manual")
        assert error["code"] == "ClockNotManual"
    with pytest.raises(ClockError, match="forward"):
        Clock("manual").advance(-1)
    with pytest.raises(ValueError, match="'system' or 'manual'"):
        Emulator(clock="lunar")


def test_chatnb_serve_clock_manual() -> None:
    with Served("--in-memory", "--clock", "manual") as served, served.wire() as wire:
        assert served.field("clock").startswith("manual")
        alice = wire.new_user()
        tid = wire.create_thread(alice)
        assert wire.signed("POST", "/chatnb/clock/:advance", {"seconds": 90000}).status_code == 200
        assert_error(wire.chat("GET", f"/chat/threads/{q(tid)}", alice), 401, "expired")


def test_share_history_time_is_compared_with_the_emulators_clock(
    emu: Emulator, identity: CommunicationIdentityClient
) -> None:
    (_, a_token), (b, b_token) = (
        identity.create_user_and_token(["chat"]),
        identity.create_user_and_token(["chat"]),
    )
    with ChatClient(emu.endpoint, a_token.token) as chat, ChatClient(emu.endpoint, b_token.token) as late:
        thread = chat.get_chat_thread_client(chat.create_chat_thread("history").chat_thread.id)
        thread.send_message("before")
        emu.advance(timedelta(hours=2))
        joined_at = to_datetime(emu.clock.now_us() - 3600 * 1_000_000)  # an hour ago, by the emulator's clock
        thread.send_message("after")
        thread.add_participants([ChatParticipant(b, share_history_time=joined_at)])
        seen = late.get_chat_thread_client(thread.thread_id).list_messages()
        texts = [m for m in seen["content"].dropna() if m in ("before", "after")]
    assert texts == ["after"]
