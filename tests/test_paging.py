"""``ChatThreadClient.iter_message_pages``: page objects, continuation tokens and resuming, both flavours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
import pytest

import chatnb
import chatnb.aio
from chatnb import frames
from chatnb.emulator import Emulator
from tests.support.clients import assert_schema, aw, collect


@pytest.fixture(scope="module")
def user(emulator: Emulator) -> tuple[chatnb.CommunicationUserIdentifier, str]:
    with chatnb.CommunicationIdentityClient.from_connection_string(emulator.connection_string) as identity:
        user, token = identity.create_user_and_token(["chat"])
    return user, token.token


def make_chat(emulator: Emulator, token: str, is_async: bool) -> Any:
    if is_async:
        return chatnb.aio.ChatClient(emulator.endpoint, chatnb.aio.CommunicationTokenCredential(token))
    return chatnb.ChatClient(emulator.endpoint, chatnb.CommunicationTokenCredential(token))


@pytest.fixture(params=[pytest.param(False, id="sync"), pytest.param(True, id="async")])
async def any_client(request: pytest.FixtureRequest, emulator: Emulator, user: Any) -> AsyncIterator[Any]:
    client = make_chat(emulator, user[1], bool(request.param))
    yield client
    await aw(client.close())


async def seeded_thread(chat: Any, emulator: Emulator, sender: str, count: int) -> Any:
    """A thread with its 2 system messages and ``count`` text messages written straight into the store."""
    thread = chat.get_chat_thread_client((await aw(chat.create_chat_thread("Paging"))).chat_thread.id)
    for i in range(count):
        emulator.store.send_message(
            thread.thread_id, sender, type_="text", content=f"m{i}", display_name=None, metadata=None
        )
    return thread


async def test_pages_frames_items_and_tokens(any_client: Any, emulator: Emulator, user: Any) -> None:
    thread = await seeded_thread(any_client, emulator, user[0].raw_id, 25)
    whole = await aw(thread.list_messages())
    pages = await collect(thread.iter_message_pages(results_per_page=10))

    assert [len(p) for p in pages] == [10, 10, 7]
    assert all(isinstance(p, chatnb.MessagePage) for p in pages)
    assert [p.continuation_token is None for p in pages] == [False, False, True]
    assert all(isinstance(p.continuation_token, str) for p in pages[:2])
    for page in pages:
        assert_schema(page.frame, frames.MESSAGE_COLUMNS)
        assert page.frame["sequence_id"].is_monotonic_increasing  # oldest first within the page
        assert [m.id for m in page.items] == list(page.frame["id"])[::-1]  # newest first, as listed
        assert all(isinstance(m, chatnb.ChatMessage) for m in page.items)
    # newest page first; together, exactly list_messages
    assert pages[0].frame["sequence_id"].min() > pages[1].frame["sequence_id"].max()
    joined = pd.concat([p.frame for p in reversed(pages)], ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole)
    pd.testing.assert_frame_equal(chatnb.MessagePage.concat_frames(pages), whole)
    assert repr(pages[-1]) == "<MessagePage of 7 messages, last page>"


async def test_resume_from_a_token_gives_exactly_the_rest(
    any_client: Any, emulator: Emulator, user: Any
) -> None:
    thread = await seeded_thread(any_client, emulator, user[0].raw_id, 30)
    whole = await aw(thread.list_messages())
    is_async = isinstance(any_client, chatnb.aio.ChatClient)
    listing = thread.iter_message_pages(results_per_page=8)
    if is_async:
        first = await listing.__anext__()
        await listing.aclose()
    else:
        first = next(listing)
        listing.close()
    token = first.continuation_token
    assert isinstance(token, str)

    rest = await collect(thread.iter_message_pages(continuation_token=token))
    assert [len(p) for p in rest] == [8, 8, 8]  # the token carries the page size
    remaining = chatnb.MessagePage.concat_frames(rest)
    pd.testing.assert_frame_equal(
        remaining, whole[~whole["id"].isin(first.frame["id"])].reset_index(drop=True)
    )
    # the token also works in a new client of the other flavour, and again (it does not expire on use)
    other = make_chat(emulator, user[1], not is_async)
    try:
        again = await collect(
            other.get_chat_thread_client(thread.thread_id).iter_message_pages(continuation_token=token)
        )
    finally:
        await aw(other.close())
    pd.testing.assert_frame_equal(chatnb.MessagePage.concat_frames(again), remaining)

    # resuming from the middle page's token gives only the last page
    tail = await collect(thread.iter_message_pages(continuation_token=rest[1].continuation_token))
    assert [list(p.frame["id"]) for p in tail] == [list(rest[2].frame["id"])]


async def test_resume_keeps_the_start_time(any_client: Any, emulator: Emulator, user: Any) -> None:
    thread = await seeded_thread(any_client, emulator, user[0].raw_id, 20)
    since = datetime.now(timezone.utc)
    late = [(await aw(thread.send_message(f"late{i}"))).id for i in range(7)]
    pages = await collect(thread.iter_message_pages(results_per_page=3, start_time=since))
    assert [len(p) for p in pages] == [3, 3, 1]
    resumed = await collect(thread.iter_message_pages(continuation_token=pages[0].continuation_token))
    assert list(chatnb.MessagePage.concat_frames(resumed)["id"]) == late[:4]


async def test_an_empty_listing_is_one_empty_page(any_client: Any, emulator: Emulator, user: Any) -> None:
    thread = await seeded_thread(any_client, emulator, user[0].raw_id, 0)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    pages = await collect(thread.iter_message_pages(start_time=later))
    assert len(pages) == 1 and len(pages[0]) == 0 and pages[0].continuation_token is None
    assert_schema(pages[0].frame, frames.MESSAGE_COLUMNS)
    assert pages[0].items == []


def _with_query(token: str, **changes: str) -> str:
    parts = urlsplit(token)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_bad_tokens(any_client: Any, emulator: Emulator, user: Any) -> None:
    thread = await seeded_thread(any_client, emulator, user[0].raw_id, 5)
    other = await seeded_thread(any_client, emulator, user[0].raw_id, 0)
    page = (await collect(thread.iter_message_pages(results_per_page=2)))[0]
    token = page.continuation_token
    assert token is not None
    # refused before any request: with the listing's own options, or leading elsewhere
    with pytest.raises(ValueError, match="without results_per_page and start_time"):
        thread.iter_message_pages(results_per_page=2, continuation_token=token)
    with pytest.raises(ValueError, match="without results_per_page and start_time"):
        thread.iter_message_pages(start_time=datetime.now(timezone.utc), continuation_token=token)
    with pytest.raises(ValueError, match="not a link of this listing"):
        other.iter_message_pages(continuation_token=token)
    elsewhere = token.replace(urlsplit(token).netloc, "attacker.example:443")
    with pytest.raises(ValueError, match="not a link of this listing"):
        thread.iter_message_pages(continuation_token=elsewhere)
    with pytest.raises(TypeError, match="continuation_token must be a string"):
        thread.iter_message_pages(continuation_token=42)
    with pytest.raises(ValueError, match="must not be empty"):
        thread.iter_message_pages(continuation_token=" ")
    # a token the service does not recognise is its 400
    with pytest.raises(chatnb.BadRequestError):
        await collect(thread.iter_message_pages(continuation_token=_with_query(token, syncState="zz")))
