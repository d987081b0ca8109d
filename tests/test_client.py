"""The chat and identity clients against the real emulator; each scenario runs through both flavours."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import httpx
import pandas as pd
import pytest

import chatnb
import chatnb.aio
import chatnb.credential
from chatnb import frames
from chatnb.emulator import Emulator
from tests.support.clients import assert_schema, aw, closing, collect
from tests.support.tokens import fake_jwt
from tests.support.waiting import clock_tick, wait_until


@dataclass
class Party:
    """A user with a chat client of the flavour under test."""

    user: chatnb.CommunicationUserIdentifier
    token: chatnb.AccessToken
    chat: Any
    is_async: bool

    def thread(self, thread_id: str) -> Any:
        return self.chat.get_chat_thread_client(thread_id)


@pytest.fixture(params=[pytest.param(False, id="sync"), pytest.param(True, id="async")])
def flavour(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def party_factory(
    emulator: Emulator, identity: chatnb.CommunicationIdentityClient, flavour: bool
) -> AsyncIterator[Any]:
    made: list[Party] = []

    def make() -> Party:
        user, token = identity.create_user_and_token(["chat"])
        if flavour:
            chat: Any = chatnb.aio.ChatClient(
                emulator.endpoint, chatnb.aio.CommunicationTokenCredential(token.token)
            )
        else:
            chat = chatnb.ChatClient(emulator.endpoint, chatnb.CommunicationTokenCredential(token.token))
        made.append(Party(user, token, chat, flavour))
        return made[-1]

    yield make
    for party in made:
        await aw(party.chat.close())


@pytest.fixture
def ann(party_factory: Any) -> Party:
    return party_factory()  # type: ignore[no-any-return]


@pytest.fixture
def ben(party_factory: Any) -> Party:
    return party_factory()  # type: ignore[no-any-return]


def seed(emulator: Emulator, thread_id: str, sender: str, count: int) -> None:
    """``count`` messages written straight into the emulator's store (quicker than sending them)."""
    for i in range(count):
        emulator.store.send_message(
            thread_id, sender, type_="text", content=f"m{i}", display_name=None, metadata=None
        )


async def new_thread(owner: Party, *others: Party, topic: str = "Lunch") -> Any:
    participants = [chatnb.ChatParticipant(p.user, display_name=f"p{i}") for i, p in enumerate(others)]
    result = await aw(owner.chat.create_chat_thread(topic, thread_participants=participants))
    return owner.thread(result.chat_thread.id)


# -- threads ---------------------------------------------------------------------------------------


async def test_thread_lifecycle(ann: Party, ben: Party) -> None:
    result = await aw(
        ann.chat.create_chat_thread("Lunch", [chatnb.ChatParticipant(ben.user, display_name="Bob")])
    )
    props = result.chat_thread
    assert isinstance(result, chatnb.CreateChatThreadResult) and result.errors is None
    assert props.topic == "Lunch" and props.created_by == ann.user
    assert props.created_on.tzinfo is not None and props.deleted_on is None
    thread = ann.thread(props.id)
    assert thread.thread_id == props.id

    await aw(thread.update_topic("Dinner"))
    assert (await aw(ben.thread(props.id).get_properties())).topic == "Dinner"

    threads = await aw(ann.chat.list_chat_threads())
    assert_schema(threads, frames.THREAD_COLUMNS)
    assert threads.set_index("id").loc[props.id, "topic"] == "Dinner"
    items = await collect(ben.chat.iter_chat_threads(results_per_page=1))
    assert [i.id for i in items] == [props.id] and isinstance(items[0], chatnb.ChatThreadItem)

    await aw(ann.chat.delete_chat_thread(props.id))
    await aw(ann.chat.delete_chat_thread(props.id))  # idempotent
    after = (await aw(ann.chat.list_chat_threads())).set_index("id")
    assert props.id not in after.index or pd.notna(after.loc[props.id, "deleted_on"])
    with pytest.raises(chatnb.NotFoundError) as info:
        await aw(thread.get_properties())
    assert info.value.status_code == 404


async def test_list_chat_threads_since(ann: Party) -> None:
    old = (await aw(ann.chat.create_chat_thread("Old"))).chat_thread.id
    since = clock_tick()
    new = (await aw(ann.chat.create_chat_thread("New"))).chat_thread.id
    assert list((await aw(ann.chat.list_chat_threads(start_time=since)))["id"]) == [new]
    await aw(ann.thread(old).send_message("revived"))
    recent = await aw(ann.chat.list_chat_threads(start_time=since))
    assert list(recent["id"]) == [old, new]  # most recently active first
    assert recent["last_message_received_on"].iloc[0] >= since


async def test_create_is_idempotent_with_a_token(ann: Party) -> None:
    first = await aw(ann.chat.create_chat_thread("Once", idempotency_token="same-request"))
    again = await aw(ann.chat.create_chat_thread("Once", idempotency_token="same-request"))
    other = await aw(ann.chat.create_chat_thread("Once"))
    assert first.chat_thread.id == again.chat_thread.id != other.chat_thread.id


async def test_thread_metadata_and_retention(ann: Party) -> None:
    policy = chatnb.ChatRetentionPolicy.thread_creation_date(30)
    result = await aw(ann.chat.create_chat_thread("Kept", metadata={"team": "red"}, retention_policy=policy))
    thread = ann.thread(result.chat_thread.id)
    props = await aw(thread.get_properties())
    assert props.metadata == {"team": "red"} and props.retention_policy == policy
    await aw(thread.update_properties(metadata={"floor": "3"}))
    assert (await aw(thread.get_properties())).metadata == {"team": "red", "floor": "3"}


# -- messages ---------------------------------------------------------------------------------------


async def test_message_round_trip_edit_and_delete(ann: Party, ben: Party) -> None:
    thread = await new_thread(ann, ben)
    sent = await aw(thread.send_message("hello", sender_display_name="Alice", metadata={"k": "v"}))
    html = await aw(thread.send_message("<b>hi</b>", chat_message_type=chatnb.ChatMessageType.HTML))
    doomed = await aw(thread.send_message("oops"))
    assert isinstance(sent, chatnb.SendChatMessageResult) and sent.id

    message = await aw(ben.thread(thread.thread_id).get_message(sent.id))
    assert message.type is chatnb.ChatMessageType.TEXT and message.content.message == "hello"
    assert message.sender == ann.user and message.sender_display_name == "Alice"
    assert message.metadata == {"k": "v"} and message.edited_on is None
    assert (await aw(thread.get_message(html.id))).type is chatnb.ChatMessageType.HTML

    await aw(thread.update_message(sent.id, "hello, edited", metadata={"k2": "v2"}))
    await aw(thread.delete_message(doomed.id))
    edited = await aw(thread.get_message(sent.id))
    assert edited.content.message == "hello, edited" and edited.edited_on is not None
    assert edited.version != message.version and edited.metadata == {"k": "v", "k2": "v2"}

    frame = await aw(thread.list_messages())
    assert_schema(frame, frames.MESSAGE_COLUMNS)
    assert frame["sequence_id"].is_monotonic_increasing and frame["sequence_id"].is_unique
    assert list(frame["type"]) == ["participantAdded", "topicUpdated", "text", "html", "text"]
    by_id = frame.set_index("id")
    assert by_id.loc[sent.id, "content"] == "hello, edited" and pd.notna(by_id.loc[sent.id, "edited_on"])
    assert by_id.loc[sent.id, "metadata"] == {"k": "v", "k2": "v2"}
    assert by_id.loc[sent.id, "sender_id"] == ann.user.raw_id
    assert pd.isna(by_id.loc[doomed.id, "content"]) and pd.notna(by_id.loc[doomed.id, "deleted_on"])
    added, topic = frame.iloc[0], frame.iloc[1]
    assert sorted(added["participant_ids"]) == sorted([ann.user.raw_id, ben.user.raw_id])
    assert added["initiator_id"] == ann.user.raw_id and topic["topic"] == "Lunch"

    models = await collect(thread.iter_messages(results_per_page=2))
    assert [m.id for m in models] == list(frame["id"])[::-1]  # newest first
    assert all(isinstance(m, chatnb.ChatMessage) for m in models)
    assert models[-1].content.participants[0].identifier in (ann.user, ben.user)


async def test_paging_and_start_time(ann: Party, emulator: Emulator) -> None:
    thread = await new_thread(ann)
    seed(emulator, thread.thread_id, ann.user.raw_id, 445)
    since = clock_tick()
    late = [(await aw(thread.send_message(f"late{i}"))).id for i in range(5)]

    frame = await aw(thread.list_messages(results_per_page=200))
    assert len(frame) == 452 and frame["sequence_id"].is_unique
    assert frame["sequence_id"].is_monotonic_increasing
    assert list(frame["content"].iloc[2:5]) == ["m0", "m1", "m2"] and list(frame["id"].iloc[-5:]) == late

    recent = await aw(thread.list_messages(start_time=since))
    assert list(recent["id"]) == late
    first = frame["id"].iloc[2]
    await aw(thread.update_message(first, "changed"))
    assert set((await aw(thread.list_messages(start_time=since)))["id"]) == {*late, first}
    assert (await aw(thread.list_messages(start_time=since + timedelta(days=1)))).empty


async def test_list_uses_pages_of_200(ann: Party, emulator: Emulator, flavour: bool) -> None:
    requests: list[httpx.Request] = []
    context = ssl.create_default_context(cafile=str(emulator.ca_cert))
    credential = chatnb.CommunicationTokenCredential(ann.token.token)
    if flavour:

        class CountingAsync(httpx.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                requests.append(request)
                return await super().handle_async_request(request)

        chat: Any = chatnb.aio.ChatClient(
            emulator.endpoint, credential, transport=CountingAsync(verify=context)
        )
    else:

        class Counting(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                requests.append(request)
                return super().handle_request(request)

        chat = chatnb.ChatClient(emulator.endpoint, credential, transport=Counting(verify=context))
    async with closing(chat):
        result = await aw(chat.create_chat_thread("Big"))
        thread = chat.get_chat_thread_client(result.chat_thread.id)
        seed(emulator, thread.thread_id, ann.user.raw_id, 448)
        requests.clear()
        frame = await aw(thread.list_messages())
    assert len(frame) == 450 and len(requests) == 3
    assert [r.url.params["maxPageSize"] for r in requests] == ["200"] * 3
    assert all(r.url.params["api-version"] == "2024-03-07" for r in requests)
    assert "syncState" in requests[1].url.params


# -- participants, typing, read receipts -----------------------------------------------------------


async def test_participants(ann: Party, ben: Party, party_factory: Any) -> None:
    carol = party_factory()
    thread = await new_thread(ann, ben)
    failed = await aw(thread.add_participants([chatnb.ChatParticipant(carol.user, display_name="Carol")]))
    assert failed == []

    ghost = chatnb.ChatParticipant(
        chatnb.CommunicationUserIdentifier("8:acs:00000000-0000-0000-0000-000000000000_ghost")
    )
    failed = await aw(thread.add_participants([ghost]))
    assert len(failed) == 1 and failed[0][0] == ghost
    assert isinstance(failed[0][1], chatnb.ChatError) and failed[0][1].target == ghost.identifier.raw_id

    frame = await aw(thread.list_participants())
    assert_schema(frame, frames.PARTICIPANT_COLUMNS)
    assert set(frame["id"]) == {ann.user.raw_id, ben.user.raw_id, carol.user.raw_id}
    assert frame.set_index("id").loc[carol.user.raw_id, "display_name"] == "Carol"
    paged = await collect(thread.iter_participants(results_per_page=1))
    assert sorted(p.identifier.raw_id for p in paged) == sorted(frame["id"])
    assert len(await aw(thread.list_participants(skip=1))) == 2

    await aw(thread.remove_participant(carol.user))
    assert carol.user.raw_id not in set((await aw(thread.list_participants()))["id"])
    with pytest.raises(chatnb.ForbiddenError):
        await aw(carol.thread(thread.thread_id).send_message("still here?"))
    added = (await aw(thread.list_messages())).query("type == 'participantRemoved'")
    assert list(added["participant_ids"].iloc[0]) == [carol.user.raw_id]


async def test_typing_and_read_receipts(ann: Party, ben: Party) -> None:
    thread = await new_thread(ann, ben)
    assert_schema(await aw(thread.list_read_receipts()), frames.READ_RECEIPT_COLUMNS)
    assert await aw(thread.send_typing_notification()) is None
    assert await aw(thread.send_typing_notification(sender_display_name="Alice")) is None
    sent = await aw(thread.send_message("read me"))
    await aw(ben.thread(thread.thread_id).send_read_receipt(sent.id))

    frame = await aw(thread.list_read_receipts())
    assert_schema(frame, frames.READ_RECEIPT_COLUMNS)
    assert list(frame["sender_id"]) == [ben.user.raw_id] and list(frame["chat_message_id"]) == [sent.id]
    receipts = await collect(thread.iter_read_receipts(results_per_page=1))
    assert receipts[0].sender == ben.user and receipts[0].read_on.tzinfo is not None


async def test_empty_listings_are_typed_frames(ann: Party, party_factory: Any) -> None:
    loner = party_factory()
    assert_schema(await aw(loner.chat.list_chat_threads()), frames.THREAD_COLUMNS)
    assert (await aw(loner.chat.list_chat_threads())).empty
    thread = await new_thread(ann)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    for frame, columns in [
        (await aw(thread.list_messages(start_time=future)), frames.MESSAGE_COLUMNS),
        (await aw(thread.list_participants(skip=50)), frames.PARTICIPANT_COLUMNS),
        (await aw(thread.list_read_receipts()), frames.READ_RECEIPT_COLUMNS),
    ]:
        assert frame.empty
        assert_schema(frame, columns)


# -- identity ----------------------------------------------------------------------------------------


async def test_identity_lifecycle(emulator: Emulator, flavour: bool) -> None:
    cls: Any = chatnb.aio.CommunicationIdentityClient if flavour else chatnb.CommunicationIdentityClient
    async with closing(cls.from_connection_string(emulator.connection_string)) as identity:
        bare = await aw(identity.create_user())
        assert isinstance(bare, chatnb.CommunicationUserIdentifier) and bare.raw_id.startswith("8:acs:")
        user, token = await aw(identity.create_user_and_token(["chat"], token_expires_in=timedelta(hours=1)))
        left = token.expires_on - datetime.now(timezone.utc)
        assert timedelta(minutes=58) < left <= timedelta(hours=1, seconds=5)
        fresh = await aw(identity.get_token(user, [chatnb.CommunicationTokenScope.CHAT]))
        assert fresh.expires_on.tzinfo is not None and fresh.token != token.token
        tok, expires = fresh  # unpacks like azure.core's AccessToken
        assert tok == fresh.token and expires == fresh.expires_on

        with chatnb.ChatClient(emulator.endpoint, chatnb.CommunicationTokenCredential(fresh.token)) as chat:
            chat.list_chat_threads()
            await aw(identity.revoke_tokens(user))
            with pytest.raises(chatnb.AuthenticationError):
                chat.list_chat_threads()
        await aw(identity.delete_user(user))
        with pytest.raises(chatnb.NotFoundError):
            await aw(identity.get_token(user, ["chat"]))


# -- transport settings, lifecycle, notebooks ----------------------------------------------------------


def test_thread_client_shares_the_parent_connection(emulator: Emulator, identity: Any) -> None:
    _, token = identity.create_user_and_token(["chat"])
    with chatnb.ChatClient(emulator.endpoint, token.token, timeout=7) as chat:
        thread = chat.get_chat_thread_client(chat.create_chat_thread("Shared").chat_thread.id)
        assert thread.http_client is chat.http_client and thread.credential is chat.credential
        assert thread.timeout == chat.timeout == httpx.Timeout(7)
        with thread:
            thread.send_message("hi")
        assert not chat.http_client.is_closed  # the thread client does not own it
        standalone = chatnb.ChatThreadClient(emulator.endpoint, chat.credential, thread.thread_id)
        with standalone:
            assert len(standalone.list_messages()) == 3
        assert standalone.http_client.is_closed
    assert chat.http_client.is_closed


async def test_async_clients_close(emulator: Emulator, identity: Any) -> None:
    _, token = identity.create_user_and_token(["chat"])
    async with chatnb.aio.ChatClient(emulator.endpoint, token.token) as chat:
        thread = chat.get_chat_thread_client((await chat.create_chat_thread("Async")).chat_thread.id)
        await thread.send_message("hi")
        assert thread.http_client is chat.http_client
    assert chat.http_client.is_closed


def test_emulator_certificate_is_trusted_automatically(emulator: Emulator, identity: Any) -> None:
    _, token = identity.create_user_and_token(["chat"])
    with chatnb.ChatClient(emulator.endpoint, token.token) as chat:
        assert isinstance(chat.connection_verify, ssl.SSLContext)
        chat.list_chat_threads()
    with chatnb.ChatClient(emulator.endpoint, token.token, connection_verify=str(emulator.ca_cert)) as chat:
        chat.list_chat_threads()
    with chatnb.ChatClient(emulator.endpoint, token.token, connection_verify=False) as chat:
        chat.list_chat_threads()
    with chatnb.ChatClient(emulator.endpoint, token.token, connection_verify=True) as chat:
        with pytest.raises(chatnb.TransportError) as info:
            chat.list_chat_threads()
        assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_sync_client_inside_a_running_event_loop(emulator: Emulator, identity: Any) -> None:
    assert asyncio.get_running_loop().is_running()  # as in a notebook cell
    _, token = identity.create_user_and_token(["chat"])
    with chatnb.ChatClient(emulator.endpoint, chatnb.CommunicationTokenCredential(token.token)) as chat:
        thread = chat.get_chat_thread_client(chat.create_chat_thread("In a cell").chat_thread.id)
        thread.send_message("works")
        frame = thread.list_messages()
    assert frame["content"].iloc[-1] == "works"
    assert asyncio.get_running_loop().is_running()


# -- token refresh ---------------------------------------------------------------------------------------


async def test_token_refresher_is_used_before_expiry(
    emulator: Emulator, identity: Any, flavour: bool
) -> None:
    user, _ = identity.create_user_and_token(["chat"])
    calls: list[int] = []

    def refresh() -> chatnb.AccessToken:
        calls.append(1)
        return identity.get_token(user, ["chat"])  # type: ignore[no-any-return]

    expiring = fake_jwt(seconds=120)  # within the 10-minute window, and not a token the emulator accepts
    if flavour:

        async def arefresh() -> chatnb.AccessToken:
            return refresh()

        credential: Any = chatnb.aio.CommunicationTokenCredential(expiring, token_refresher=arefresh)
        chat: Any = chatnb.aio.ChatClient(emulator.endpoint, credential)
    else:
        credential = chatnb.CommunicationTokenCredential(expiring, token_refresher=refresh)
        chat = chatnb.ChatClient(emulator.endpoint, credential)
    async with closing(chat):
        await aw(chat.list_chat_threads())
        await aw(chat.list_chat_threads())
    assert calls == [1]  # refreshed once; the fresh token is far from expiry
    assert (await aw(credential.get_token())).expires_on > datetime.now(timezone.utc) + timedelta(hours=1)
    without = chatnb.CommunicationTokenCredential(expiring)
    assert without.get_token().token == expiring  # no refresher: the token as given


def returning(value: object) -> Callable[[], object]:
    """A token refresher that returns ``value``."""
    return lambda: value


def test_refresher_results_of_every_shape() -> None:
    far = fake_jwt(seconds=7200)
    official_like = SimpleNamespace(token=far, expires_on="2099-01-01T00:00:00.0000000+00:00")
    for result, expected in [
        (far, chatnb.credential.token_expiry(far)),
        (official_like, datetime(2099, 1, 1, tzinfo=timezone.utc)),
        (SimpleNamespace(token=far, expires_on=4_102_444_800), datetime(2100, 1, 1, tzinfo=timezone.utc)),
    ]:
        credential = chatnb.CommunicationTokenCredential(
            fake_jwt(seconds=60), token_refresher=returning(result)
        )
        token = credential.get_token()
        assert token.token == far and token.expires_on == expected
    stale = chatnb.CommunicationTokenCredential(fake_jwt(seconds=60), token_refresher=lambda: fake_jwt(-10))
    with pytest.raises(ValueError, match="expired"):
        stale.get_token()


def test_concurrent_get_token_refreshes_once() -> None:
    calls: list[int] = []
    gate = threading.Event()

    def slow_refresh() -> str:
        calls.append(1)
        gate.wait(5)
        return fake_jwt(seconds=7200)

    credential = chatnb.CommunicationTokenCredential(fake_jwt(seconds=30), token_refresher=slow_refresh)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(credential.get_token) for _ in range(8)]
        wait_until(lambda: calls, "the first refresh started")
        gate.set()
        tokens = {f.result().token for f in futures}
    assert calls == [1] and len(tokens) == 1


def test_proactive_refresh_runs_in_the_background() -> None:
    refreshed = threading.Event()

    def refresh() -> str:
        refreshed.set()
        return fake_jwt(seconds=7200)

    with chatnb.CommunicationTokenCredential(
        fake_jwt(seconds=2), token_refresher=refresh, proactive_refresh=True
    ) as credential:
        assert refreshed.wait(10)  # nobody called get_token
        assert credential.get_token().expires_on > datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(RuntimeError):
        credential.get_token()


async def test_async_credential_refreshes_with_sync_or_async_refreshers() -> None:
    async def arefresh() -> str:
        return fake_jwt(seconds=7200)

    for refresher in (arefresh, lambda: fake_jwt(seconds=7200)):
        async with chatnb.aio.CommunicationTokenCredential(
            fake_jwt(seconds=60), token_refresher=refresher, proactive_refresh=True
        ) as credential:
            token = await credential.get_token()
            assert token.expires_on > datetime.now(timezone.utc) + timedelta(hours=1)
        with pytest.raises(RuntimeError):
            await credential.get_token()
