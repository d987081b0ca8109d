"""Listings against a hostile server (issue 13, items 3 and 4): where a ``nextLink`` may lead, loops of
``nextLink`` and pages larger than their page size.

Every server here is real (:class:`hostile.HostileServer` on a free loopback port, TLS where the endpoint
is https), and the listings go through the clients (sync and async), the export and the poller. What is
checked is on both sides: the client's typed error, and what the servers received (nothing at all
where the token must not go; a bounded number of pages where a loop would have gone on for ever).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import chatnb
import chatnb.aio
from chatnb._polling import Poller
from chatnb.export import ExportError
from tests.support.clients import aw, collect
from tests.support.hostile import (
    JSON,
    Conn,
    HostileServer,
    Request,
    chat_client,
    message_item,
    page_of,
    thread_item,
    thread_properties,
    tls_pair,
)
from tests.support.tokens import fake_jwt

FLAVOURS = [pytest.param("sync", id="sync"), pytest.param("async", id="async")]
THREAD = "19:t0@thread.v2"
MESSAGES = f"/chat/threads/{THREAD}/messages"
#: A loop the fixed client would have broken long before: after this many pages the server ends it (so
#: that a client without the check finishes, and its test fails instead of hanging).
LOOP_GUARD = 30


def listing_url(base: str, state: str) -> str:
    return f"{base}{MESSAGES}?syncState={state}&maxPageSize=200&api-version=2024-03-07"


def thread_of(chat: Any) -> Any:
    return chat.get_chat_thread_client(THREAD)


# -- item 3: a nextLink leads only to the endpoint's scheme, host and port ---------------------------


def _elsewhere(case: str, port: int) -> str:
    """The nextLink of each case, relative to the endpoint ``https://127.0.0.1:<port>``."""
    return {
        "other host, in clear": f"http://127.0.0.2:{port}",
        "other port": f"https://127.0.0.1:{port}",
        "network-path reference": f"//127.0.0.2:{port}",
    }[case]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", ["other host, in clear", "other port", "network-path reference"])
async def test_a_nextlink_to_another_origin_is_refused_and_the_token_goes_nowhere(
    tmp_path: Path, flavour: str, case: str
) -> None:
    server_tls, client_tls = tls_pair(tmp_path)
    token = fake_jwt(3600)

    async def elsewhere_answers(request: Request, conn: Conn) -> None:  # what an attacker would log
        await conn.respond(200, page_of([]), JSON)

    tls_elsewhere = server_tls if case == "other port" else None
    host = "127.0.0.1" if case == "other port" else "127.0.0.2"
    with HostileServer(elsewhere_answers, host=host, tls=tls_elsewhere) as elsewhere:
        link = _elsewhere(case, elsewhere.port) + MESSAGES + "?syncState=x&api-version=2024-03-07"

        async def endpoint_answers(request: Request, conn: Conn) -> None:
            await conn.respond(200, page_of([message_item(1)], link), JSON)

        with HostileServer(endpoint_answers, tls=server_tls) as endpoint:
            chat = chat_client(flavour, endpoint.url, token, connection_verify=client_tls)
            try:
                with pytest.raises(chatnb.RefusedAnswerError) as info:
                    await aw(thread_of(chat).list_messages())
                with pytest.raises(chatnb.RefusedAnswerError):
                    await collect(thread_of(chat).iter_messages())
            finally:
                await aw(chat.close())
            assert len(endpoint.requests) == 2  # the first page, once per listing
        assert elsewhere.connections == 0 and elsewhere.requests == []  # no connection, so no token

    error = info.value
    assert isinstance(error, chatnb.DecodingError) and isinstance(error, chatnb.ChatError)
    refused = f"{'http' if case == 'other host, in clear' else 'https'}://{host}:{elsewhere.port}"
    assert refused in str(error) and f"https://127.0.0.1:{endpoint.port}" in str(error)
    assert token not in str(error) and token not in repr(error)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_nextlink_to_another_scheme_of_the_same_host_and_port_is_refused(flavour: str) -> None:
    """An http endpoint whose nextLink says https on the same host and port: another origin, refused
    before a connection is attempted (the client would otherwise speak TLS to it)."""
    token = fake_jwt(3600)

    async def answers(request: Request, conn: Conn) -> None:
        link = f"https://127.0.0.1:{conn.server.port}/chat/threads?p=2"
        await conn.respond(200, page_of([thread_item(1)], link), JSON)

    with HostileServer(answers) as server:
        chat = chat_client(flavour, server.url, token)
        try:
            with pytest.raises(chatnb.RefusedAnswerError) as info:
                await aw(chat.list_chat_threads())
        finally:
            await aw(chat.close())
        assert server.connections == 1 and len(server.requests) == 1
    assert f"https://127.0.0.1:{server.port}" in str(info.value) and token not in str(info.value)


# -- item 4: loops of nextLink, and pages over their page size ---------------------------------------


def looping(cycle: int) -> Any:
    """A messages listing whose pages link in a cycle of ``cycle`` links (1: the same link again and
    again), ended by the server after :data:`LOOP_GUARD` pages."""

    async def answers(request: Request, conn: Conn) -> None:
        if not request.path.endswith("/messages"):  # the export asks for the thread's properties first
            await conn.respond(200, json.dumps(thread_properties(THREAD)).encode(), JSON)
            return
        n = sum(r.path.endswith("/messages") for r in conn.server.requests)
        state = parse_qs(urlsplit(request.target).query).get("syncState", ["0"])[0]
        following = None if n >= LOOP_GUARD else listing_url(conn.server.url, str((int(state) % cycle) + 1))
        await conn.respond(200, page_of([message_item(n)], following), JSON)

    return answers


def serve_loop(cycle: int) -> HostileServer:
    return HostileServer(looping(cycle))


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("cycle", [pytest.param(1, id="same-link"), pytest.param(3, id="cycle-of-3")])
async def test_a_repeated_nextlink_stops_list_messages_with_a_clear_error(flavour: str, cycle: int) -> None:
    with serve_loop(cycle) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600))
        try:
            with pytest.raises(chatnb.RefusedAnswerError) as info:
                await aw(thread_of(chat).list_messages())
        finally:
            await aw(chat.close())
        # the first page, then each link of the cycle once, and the repeat is never asked for
        assert len(server.requests) == 1 + cycle
    assert "paging loop" in str(info.value) and MESSAGES.split("/")[1] in str(info.value)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_repeated_nextlink_stops_export_history(tmp_path: Path, flavour: str) -> None:
    """The export asks for each page on its own (``iter_message_pages(continuation_token=...)``): the loop
    is caught across those calls too, and the export ends with the error instead of listing for ever."""
    with serve_loop(2) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600))
        export = chatnb.aio.export_history if flavour == "async" else chatnb.export_history
        try:
            with pytest.raises(ExportError) as info:  # the thread's failure, reported at the end
                await aw(export(thread_of(chat), tmp_path / "out", format="jsonl", progress=False))
        finally:
            await aw(chat.close())
        listed = [r for r in server.requests if r.path.endswith("/messages")]
        assert len(listed) <= 4  # the first page, the two links, perhaps one page fetched ahead
    (error,) = info.value.errors
    assert isinstance(error, chatnb.RefusedAnswerError) and "paging loop" in str(error)


async def test_a_repeated_nextlink_ends_the_poller_with_the_error() -> None:
    """The poller lists the user's threads every round: a listing that loops ends it (raised), rather
    than a round that never finishes."""

    async def answers(request: Request, conn: Conn) -> None:
        n = len(conn.server.requests)
        following = (
            None if n >= LOOP_GUARD else f"{conn.server.url}/chat/threads?syncState=same&api-version=x"
        )
        await conn.respond(200, page_of([thread_item(n)], following), JSON)

    with HostileServer(answers) as server:
        poller = Poller(server.url, fake_jwt(3600, skypeid="acs:me"), interval=0.05, backoff=(0.01, 0.02))
        events = poller.__aiter__()
        try:
            with pytest.raises(chatnb.RefusedAnswerError) as info:
                await asyncio.wait_for(events.__anext__(), 10)
        finally:
            await events.aclose()
        assert len(server.requests) == 2
    assert "paging loop" in str(info.value)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("asked", "sent"),
    [pytest.param(None, 10_000, id="10000-items-page"), pytest.param(5, 6, id="one-over-results_per_page")],
)
async def test_a_page_over_its_page_size_is_refused(flavour: str, asked: int | None, sent: int) -> None:
    async def answers(request: Request, conn: Conn) -> None:
        await conn.respond(200, page_of([message_item(i) for i in range(sent)]), JSON)

    with HostileServer(answers) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600))
        try:
            with pytest.raises(chatnb.RefusedAnswerError) as info:
                await aw(thread_of(chat).list_messages(results_per_page=asked))
        finally:
            await aw(chat.close())
    limit = asked or 200
    assert f"a page of {sent} items, over its page size {limit}" in str(info.value)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_page_at_its_page_size_and_a_link_to_the_endpoint_are_followed(flavour: str) -> None:
    """The bounds refuse only what is out of them: 200 items, then a relative and an absolute link to
    the endpoint (with its default port spelled out or not), are one listing."""

    async def answers(request: Request, conn: Conn) -> None:
        n = len(conn.server.requests)
        links = {1: f"{MESSAGES}?syncState=2&api-version=x", 2: listing_url(conn.server.url, "3")}
        await conn.respond(200, page_of([message_item(1000 * n + i) for i in range(200)], links.get(n)), JSON)

    with HostileServer(answers) as server:
        chat = chat_client(flavour, server.url, fake_jwt(3600))
        try:
            frame = await aw(thread_of(chat).list_messages())
        finally:
            await aw(chat.close())
        assert len(server.requests) == 3
    assert len(frame) == 600
