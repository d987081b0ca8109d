"""The Event Grid delivery's HTTP client (:mod:`chatnb.emulator.gridclient`) and :class:`GridSender`'s
deadline against webhooks that misbehave, scripted byte by byte (``tests.support.hostile``).

Nothing a webhook answers stays in the worker unbounded: an endless body is cut after 64 KiB and its
connection dropped, an endless head refused, an answer cut short or never given is an outcome, not a
hang; no header or request line carries a CR/LF, and no connection is opened for one that would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from chatnb.emulator.gridclient import MAX_BODY_BYTES, MAX_HEAD_BYTES, WebhookClient, WebhookError
from chatnb.emulator.gridhttp import Batch, GridSender
from chatnb.emulator.gridsubs import EventGridSubscription, SubscriptionError
from tests.support.hostile import Conn, HostileServer, Request, head, tls_pair

DEADLINE = 30.0  # far beyond what any exchange here takes: hitting it is a failure


async def exchange(
    client: WebhookClient, url: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    answer = await asyncio.wait_for(client.request("POST", url, headers, b"[]"), DEADLINE)
    return answer.status, answer.body


def batch() -> Batch:
    event = {"id": "e1", "eventType": "Microsoft.Communication.ChatMessageReceived"}
    return Batch(events=[event], encoded=[b'{"id": "e1"}'], started=time.monotonic(), publish_us=0)


async def test_an_endless_answer_body_is_cut_at_64_kib_and_its_connection_dropped() -> None:
    async def endless(request: Request, conn: Conn) -> None:
        await conn.send(head(200, {"Content-Type": "application/json"}, 2**40, close=False))
        while await conn.send(b"x" * 65536):  # a terabyte announced: until the client leaves
            pass
        conn.server.note("left after", conn.sent)

    with HostileServer(endless) as server:
        client = WebhookClient()
        try:
            status, body = await exchange(client, server.url)
            assert status == 200 and body == b"x" * MAX_BODY_BYTES
            assert await server.until(lambda s: "left after" in s.notes)
            assert server.notes["left after"] < 2**30  # it stopped reading, far short of the terabyte
            await exchange(client, server.url)  # the cut connection was not kept: a new one
            assert server.connections == 2
        finally:
            await client.aclose()


async def test_a_whole_answer_over_64_kib_gives_its_first_64_kib() -> None:
    async def large(request: Request, conn: Conn) -> None:
        await conn.respond(200, bytes(range(256)) * 1024)  # 256 KiB

    with HostileServer(large) as server:
        client = WebhookClient()
        try:
            status, body = await exchange(client, server.url)
        finally:
            await client.aclose()
    assert status == 200 and body == (bytes(range(256)) * 1024)[:MAX_BODY_BYTES]


async def test_an_endless_answer_head_is_refused() -> None:
    async def headers_forever(request: Request, conn: Conn) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\n")
        while await conn.send(b"X-Filler: " + b"y" * 1000 + b"\r\n"):
            pass

    with HostileServer(headers_forever) as server:
        client = WebhookClient()
        try:
            with pytest.raises(WebhookError, match=f"head over {MAX_HEAD_BYTES} bytes"):
                await exchange(client, server.url)
        finally:
            await client.aclose()


async def test_an_answer_cut_short_is_an_error_and_a_generic_error_outcome() -> None:
    async def cut(request: Request, conn: Conn) -> None:
        await conn.send(head(200, length=100) + b"only ten b")  # then the connection closes

    with HostileServer(cut) as server:
        sub = EventGridSubscription.parse(server.url + "/,name=cut")
        async with GridSender.open("topic", DEADLINE) as sender:
            with pytest.raises(WebhookError, match="closed the connection before answering in full"):
                await exchange(sender.http, server.url)
            assert await sender.post(sub, batch()) == (None, "GenericError")


async def test_a_webhook_that_never_answers_is_timed_out_by_the_deadline() -> None:
    async def silent(request: Request, conn: Conn) -> None:
        conn.server.note("held", True)
        await conn.hold()

    with HostileServer(silent) as server:
        sub = EventGridSubscription.parse(server.url + "/,name=silent")
        async with GridSender.open("topic", 0.2) as sender:
            assert await sender.post(sub, batch()) == (None, "TimedOut")
            state, error = await sender.handshake(sub, "CODE", "https://emulator/validate?code=CODE")
        assert server.notes["held"] is True
    assert state == "Failed" and error is not None and error.startswith("TimedOut")


@pytest.mark.parametrize(
    ("url_suffix", "headers"),
    [
        ("/", {"aeg-subscription-name": "SUB\r\nX-Injected: 1"}),
        ("/", {"X-Name\r\nX-Injected": "1"}),
        ("/", {"aeg-delivery-count": "0\nX-Injected: 1"}),
        ("/path\r\nX-Injected: 1", {}),
        ("/path HTTP/1.1\r\nHost: other\r\n\r\nGET /", {}),
    ],
)
async def test_no_header_or_request_line_with_a_control_character_is_sent(
    url_suffix: str, headers: dict[str, str]
) -> None:
    async def answer(request: Request, conn: Conn) -> None:
        await conn.respond(200)

    with HostileServer(answer) as server:
        client = WebhookClient()
        try:
            with pytest.raises(WebhookError, match="control character"):
                await exchange(client, server.url + url_suffix, headers)
            assert await exchange(client, server.url + "/") == (200, b"")  # the client still works
        finally:
            await client.aclose()
        assert server.connections == 1  # none opened for the refused request
        assert [r.headers.get("x-injected") for r in server.requests] == [None]


async def test_a_kept_connection_is_reused_and_one_the_webhook_closed_is_replaced() -> None:
    async def two_then_close(request: Request, conn: Conn) -> None:
        await conn.respond(200, b"first", close=False)
        if await conn.next_request() is not None:
            await conn.respond(200, b"second", close=False)  # keep-alive announced, then closed

    with HostileServer(two_then_close) as server:
        client = WebhookClient()
        try:
            assert await exchange(client, server.url) == (200, b"first")
            assert await exchange(client, server.url) == (200, b"second")
            assert server.connections == 1
            assert await exchange(client, server.url) == (200, b"first")  # on a new connection
        finally:
            await client.aclose()
        assert server.connections == 2 and len(server.requests) == 3


async def test_https_is_verified_by_the_system_trust_store(tmp_path: Path) -> None:
    server_tls, _ = tls_pair(tmp_path)  # a self-signed certificate no system trusts

    async def answer(request: Request, conn: Conn) -> None:
        await conn.respond(200)

    with HostileServer(answer, tls=server_tls) as server:
        client = WebhookClient()
        try:
            with pytest.raises(WebhookError, match="CERTIFICATE_VERIFY_FAILED"):
                await exchange(client, server.url)
            with pytest.raises(WebhookError, match="not an http"):
                await exchange(client, "ftp://127.0.0.1/")
        finally:
            await client.aclose()
        assert server.requests == []


async def test_a_url_beyond_ascii_is_sent_percent_encoded_and_a_bad_host_or_port_is_an_error() -> None:
    async def answer(request: Request, conn: Conn) -> None:
        await conn.respond(200)

    with HostileServer(answer) as server:
        client = WebhookClient()
        try:
            assert await exchange(client, server.url + "/hooks/caf\u00e9/\u20ac?q=\u00fc&r=1") == (200, b"")
            for netloc in ("127.0.0.1:abc", "127.0.0.1:99999", "[::1", "a..b"):
                with pytest.raises(WebhookError, match=r"not a valid URL \(host or port\)"):
                    await exchange(client, f"http://{netloc}/")
        finally:
            await client.aclose()
    [request] = server.requests
    assert request.target == "/hooks/caf%C3%A9/%E2%82%AC?q=%C3%BC&r=1"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("netloc", ["127.0.0.1:abc", "127.0.0.1:99999", "127.0.0.1:-1", "[::1"])
def test_a_subscription_endpoint_whose_port_or_host_does_not_parse_is_refused(netloc: str) -> None:
    with pytest.raises(SubscriptionError, match=r"https:// URL \(its port a number from 0 to 65535"):
        EventGridSubscription.parse(f"http://{netloc}/hook")
