"""The error tree: real 401/403/404/400 from the emulator, other statuses and retries via MockTransport
(statuses our server does not produce), transport failures, argument checks and secrecy."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatnb
import chatnb.aio
from chatnb._core import RetryPolicy, parse_retry_after
from chatnb.emulator import Emulator
from tests.support.clients import aw
from tests.support.tokens import fake_jwt

FAST = RetryPolicy(backoff_factor=0.0)
ENDPOINT = "https://acs.example.test"
TOKEN = fake_jwt(seconds=3600)


@pytest.fixture
def thread_of(emulator: Emulator, identity: Any) -> Any:
    """(owner chat client, thread id), closed afterwards."""
    clients: list[chatnb.ChatClient] = []

    def make() -> tuple[chatnb.ChatClient, str]:
        _, token = identity.create_user_and_token(["chat"])
        chat = chatnb.ChatClient(emulator.endpoint, token.token)
        clients.append(chat)
        return chat, chat.create_chat_thread("Errors").chat_thread.id

    yield make
    for chat in clients:
        chat.close()


# -- errors the emulator produces -----------------------------------------------------------------


def test_forged_token_is_an_authentication_error(emulator: Emulator, identity: Any) -> None:
    _, token = identity.create_user_and_token(["chat"])
    header, payload, _ = token.token.split(".")
    forged = f"{header}.{payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with (
        chatnb.ChatClient(emulator.endpoint, forged) as chat,
        pytest.raises(chatnb.AuthenticationError) as info,
    ):
        chat.list_chat_threads()
    error = info.value
    assert isinstance(error, chatnb.APIError) and isinstance(error, chatnb.ChatError)
    assert error.status_code == 401 and error.code and error.message
    assert str(error).startswith("401 ") and error.message in str(error)
    assert forged not in str(error) and payload not in repr(error)


def test_revoked_token_is_an_authentication_error(emulator: Emulator, identity: Any) -> None:
    user, token = identity.create_user_and_token(["chat"])
    identity.revoke_tokens(user)
    with chatnb.ChatClient(emulator.endpoint, token.token) as chat, pytest.raises(chatnb.AuthenticationError):
        chat.create_chat_thread("Nope")


def test_non_member_is_forbidden(emulator: Emulator, identity: Any, thread_of: Any) -> None:
    _, thread_id = thread_of()
    _, token = identity.create_user_and_token(["chat"])
    with chatnb.ChatClient(emulator.endpoint, token.token) as stranger:
        thread = stranger.get_chat_thread_client(thread_id)
        for call in (thread.get_properties, thread.list_messages, lambda: thread.send_message("hi")):
            with pytest.raises(chatnb.ForbiddenError) as info:
                call()
            assert info.value.status_code == 403


def test_only_the_sender_may_edit(emulator: Emulator, identity: Any, thread_of: Any) -> None:
    owner, thread_id = thread_of()
    user, token = identity.create_user_and_token(["chat"])
    owner.get_chat_thread_client(thread_id).add_participants([chatnb.ChatParticipant(user)])
    mine = owner.get_chat_thread_client(thread_id).send_message("mine").id
    other = chatnb.ChatClient(emulator.endpoint, token.token)
    with other, pytest.raises(chatnb.ForbiddenError, match="403"):
        other.get_chat_thread_client(thread_id).update_message(mine, "yours now")


def test_unknown_thread_and_message_are_not_found(thread_of: Any) -> None:
    owner, thread_id = thread_of()
    with pytest.raises(chatnb.NotFoundError) as info:
        owner.get_chat_thread_client("19:doesnotexist@thread.v2").get_properties()
    assert info.value.status_code == 404 and "404" in str(info.value)
    with pytest.raises(chatnb.NotFoundError):
        owner.get_chat_thread_client(thread_id).get_message("12345")


def test_service_validation_is_a_bad_request(thread_of: Any) -> None:
    owner, thread_id = thread_of()
    with pytest.raises(chatnb.BadRequestError) as info:
        owner.get_chat_thread_client(thread_id).send_message("x" * 40_000)
    assert info.value.status_code == 400 and info.value.code == "MessageTooLarge"
    assert info.value.target == "content" and "(target: content)" in str(info.value)


# -- statuses the emulator does not produce: MockTransport ---------------------------------------------


def mock_chat(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> chatnb.ChatThreadClient:
    kwargs.setdefault("retry_policy", FAST)
    return chatnb.ChatThreadClient(
        ENDPOINT, TOKEN, "19:t@thread.v2", transport=httpx.MockTransport(handler), **kwargs
    )


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "target": "thing"}}
    return httpx.Response(status, json=body, headers={"x-ms-request-id": "req-1", **headers})


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        pytest.param(400, chatnb.BadRequestError, id="400"),
        pytest.param(409, chatnb.ConflictError, id="409"),
        pytest.param(418, chatnb.APIError, id="418"),
        pytest.param(500, chatnb.ServerError, id="500"),
        pytest.param(502, chatnb.ServerError, id="502"),
    ],
)
def test_status_map_and_no_retry(status: int, cls: type[chatnb.APIError]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(status, "Boom", "it broke")

    with mock_chat(handler) as thread, pytest.raises(cls) as info:
        thread.get_properties()
    assert type(info.value) is cls and len(calls) == 1
    exc = info.value
    assert (exc.status_code, exc.code, exc.message, exc.target, exc.request_id) == (
        status,
        "Boom",
        "it broke",
        "thing",
        "req-1",
    )
    assert f"{status} Boom: it broke" in str(exc) and "GET https://acs.example.test/chat/threads/" in str(exc)


def test_error_without_a_json_body_is_still_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, text="plain conflict", headers={"content-type": "text/plain"})

    with mock_chat(handler) as thread, pytest.raises(chatnb.ConflictError) as info:
        thread.delete_message("1")
    assert info.value.code is None and info.value.message == "plain conflict"


def test_429_is_retried_honouring_retry_after() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return error(429, "TooManyRequests", "slow down", **{"Retry-After": "0"})
        return httpx.Response(200, json={"id": "19:t@thread.v2", "topic": "ok"})

    with mock_chat(handler, retry_policy=RetryPolicy(backoff_factor=60)) as thread:
        assert thread.get_properties().topic == "ok"  # Retry-After: 0 wins over the 60 s backoff
    assert len(calls) == 3
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in calls)


def test_503_with_an_http_date_is_retried() -> None:
    calls: list[httpx.Request] = []
    past = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=5), usegmt=True)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return error(503, "ServiceUnavailable", "busy", **{"Retry-After": past})
        return httpx.Response(201, json={"id": "m1"})

    with mock_chat(handler) as thread:
        assert thread.send_message("hi").id == "m1"
    assert len(calls) == 2 and calls[0].content == calls[1].content


def test_retries_are_bounded() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(503, "ServiceUnavailable", "down", **{"Retry-After": "0"})

    policy = RetryPolicy(max_retries=2)
    with (
        mock_chat(handler, retry_policy=policy) as thread,
        pytest.raises(chatnb.ServiceUnavailableError) as info,
    ):
        thread.get_properties()
    assert len(calls) == 3 and isinstance(info.value, chatnb.ServerError)
    assert info.value.retry_after == 0


def test_a_wait_past_the_budget_is_not_made() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(429, "TooManyRequests", "come back in a minute", **{"Retry-After": "60"})

    started = time.monotonic()
    policy = RetryPolicy(max_total_wait=10)
    with mock_chat(handler, retry_policy=policy) as thread, pytest.raises(chatnb.RateLimitError) as info:
        thread.list_messages()
    assert len(calls) == 1 and info.value.retry_after == 60
    assert time.monotonic() - started < 5


def test_backoff_without_retry_after() -> None:
    policy = RetryPolicy(backoff_factor=0.5, backoff_max=3, max_retries=5)
    busy = httpx.Response(503)
    assert [policy.next_delay(busy, n, 0) for n in range(6)] == [0.5, 1.0, 2.0, 3, 3, None]
    assert policy.next_delay(httpx.Response(500), 0, 0) is None
    assert policy.next_delay(httpx.Response(429), 0, policy.max_total_wait) is None


def test_parse_retry_after() -> None:
    now = time.time()
    later = format_datetime(datetime.fromtimestamp(now + 30, timezone.utc), usegmt=True)
    assert parse_retry_after({"retry-after": "7"}) == 7
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after": later}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_async_client_retries_and_maps_errors() -> None:
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return error(429, "TooManyRequests", "slow", **{"Retry-After": "0"})
        return error(409, "Conflict", "taken")

    transport = httpx.MockTransport(handler)
    async with chatnb.aio.ChatClient(ENDPOINT, TOKEN, transport=transport, retry_policy=FAST) as chat:
        with pytest.raises(chatnb.ConflictError):
            await chat.create_chat_thread("x")
    assert len(calls) == 2
    assert calls[0].headers["repeatability-request-id"] == calls[1].headers["repeatability-request-id"]


# -- no response ------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("flavour", ["sync", "async", "identity"])
async def test_closed_port_is_a_transport_error(flavour: str) -> None:
    endpoint = f"https://127.0.0.1:{closed_port()}"
    client: Any
    if flavour == "sync":
        client = chatnb.ChatClient(endpoint, TOKEN, connection_verify=False)
        call = client.list_chat_threads
    elif flavour == "async":
        client = chatnb.aio.ChatClient(endpoint, TOKEN, connection_verify=False)
        call = client.list_chat_threads
    else:
        client = chatnb.CommunicationIdentityClient(endpoint, "a2V5a2V5a2V5a2V5a2V5", connection_verify=False)
        call = client.create_user
    with pytest.raises(chatnb.TransportError) as info:
        await aw(call())
    await aw(client.close())
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert endpoint in str(info.value) and not isinstance(info.value, chatnb.APIError)


def test_a_stopped_emulator_is_a_transport_error(identity: Any) -> None:
    with Emulator() as emu:
        ident = chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string)
        _, token = ident.create_user_and_token(["chat"])
        chat = chatnb.ChatClient(emu.endpoint, token.token, connection_verify=str(emu.ca_cert))
        chat.list_chat_threads()
    with chat, ident, pytest.raises(chatnb.TransportError):
        chat.list_chat_threads()


# -- argument mistakes never reach the network --------------------------------------------------------


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"sent {request.method} {request.url}")


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        pytest.param(lambda c, t: c.get_chat_thread_client(""), ValueError, id="empty-thread-id"),
        pytest.param(lambda c, t: c.get_chat_thread_client(None), TypeError, id="none-thread-id"),
        pytest.param(lambda c, t: c.create_chat_thread("  "), ValueError, id="empty-topic"),
        pytest.param(lambda c, t: c.create_chat_thread("t", [42]), TypeError, id="bad-participant"),
        pytest.param(lambda c, t: c.create_chat_thread("t", "8:acs:x"), TypeError, id="participants-str"),
        pytest.param(lambda c, t: c.delete_chat_thread(""), ValueError, id="delete-empty"),
        pytest.param(lambda c, t: t.send_message(""), ValueError, id="empty-content"),
        pytest.param(lambda c, t: t.send_message(42), TypeError, id="int-content"),
        pytest.param(lambda c, t: t.send_message("x", chat_message_type="video"), ValueError, id="type"),
        pytest.param(
            lambda c, t: t.send_message("x", chat_message_type="topicUpdated"), ValueError, id="system"
        ),
        pytest.param(lambda c, t: t.send_message("x", metadata={"k": 1}), TypeError, id="metadata"),
        pytest.param(lambda c, t: t.get_message(""), ValueError, id="message-id"),
        pytest.param(lambda c, t: t.update_message("1"), ValueError, id="nothing-to-update"),
        pytest.param(lambda c, t: t.list_messages(results_per_page=0), ValueError, id="page-size"),
        pytest.param(lambda c, t: t.list_messages(start_time="yesterday"), ValueError, id="start-time"),
        pytest.param(lambda c, t: t.list_messages(start_time=3), TypeError, id="start-time-type"),
        pytest.param(lambda c, t: t.list_participants(skip=-1), ValueError, id="skip"),
        pytest.param(lambda c, t: t.add_participants([]), ValueError, id="no-participants"),
        pytest.param(lambda c, t: t.remove_participant(""), ValueError, id="remove-empty"),
        pytest.param(lambda c, t: t.send_read_receipt(""), ValueError, id="receipt"),
        pytest.param(lambda c, t: t.update_topic(""), ValueError, id="topic"),
        pytest.param(lambda c, t: t.iter_messages(results_per_page=True), TypeError, id="iter-args"),
    ],
)
def test_argument_mistakes_raise_before_any_request(call: Callable[[Any, Any], Any], exc: type) -> None:
    transport = httpx.MockTransport(no_network)
    with chatnb.ChatClient(ENDPOINT, TOKEN, transport=transport) as chat, pytest.raises(exc):
        call(chat, chat.get_chat_thread_client("19:t@thread.v2"))


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        pytest.param(lambda i: i.create_user_and_token([]), ValueError, id="no-scopes"),
        pytest.param(lambda i: i.create_user_and_token(["chat", "admin"]), ValueError, id="unknown-scope"),
        pytest.param(lambda i: i.get_token("8:acs:x", 5), TypeError, id="scopes-type"),
        pytest.param(
            lambda i: i.get_token("8:acs:x", ["chat"], token_expires_in=timedelta(minutes=5)),
            ValueError,
            id="too-short",
        ),
        pytest.param(
            lambda i: i.get_token("8:acs:x", ["chat"], token_expires_in=60), TypeError, id="minutes"
        ),
        pytest.param(lambda i: i.delete_user(""), ValueError, id="empty-user"),
        pytest.param(lambda i: i.revoke_tokens(3), TypeError, id="user-type"),
    ],
)
async def test_identity_argument_mistakes(call: Callable[[Any], Any], exc: type) -> None:
    with (
        chatnb.CommunicationIdentityClient(
            ENDPOINT, "a2V5a2V5a2V5a2V5a2V5", transport=httpx.MockTransport(no_network)
        ) as identity,
        pytest.raises(exc),
    ):
        call(identity)

    async def no_network_async(request: httpx.Request) -> httpx.Response:
        return no_network(request)

    async with chatnb.aio.CommunicationIdentityClient(
        ENDPOINT, "a2V5a2V5a2V5a2V5a2V5", transport=httpx.MockTransport(no_network_async)
    ) as aidentity:
        with pytest.raises(exc):
            await call(aidentity)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError):
        chatnb.ChatClient(ENDPOINT, None)
    with pytest.raises(ValueError):
        chatnb.ChatClient("", TOKEN)
    with pytest.raises(ValueError):
        chatnb.ChatClient(ENDPOINT, TOKEN, connection_verify="/no/such/ca.pem")
    with pytest.raises(ValueError):
        chatnb.CommunicationTokenCredential("definitely-not-a-jwt")
    with pytest.raises(ValueError):
        chatnb.CommunicationTokenCredential(TOKEN, proactive_refresh=True)
    with pytest.raises(ValueError):
        chatnb.CommunicationIdentityClient(ENDPOINT, "not base64!!")


@pytest.mark.parametrize("text", ["", "not a certificate\n", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_a_ca_file_without_a_certificate_is_a_clear_error(tmp_path: Path, text: str) -> None:
    """A PEM that is empty, not a PEM or cut short names itself and what to pass (not a bare SSLError)."""
    bad = tmp_path / "ca.pem"
    bad.write_text(text)
    for module in (chatnb, chatnb.aio):
        with pytest.raises(ValueError, match=r"'.*ca\.pem' holds no certificate that can be loaded"):
            module.ChatClient(ENDPOINT, TOKEN, connection_verify=str(bad))


# -- secrets stay out of messages and reprs ------------------------------------------------------------


def test_secrets_never_show() -> None:
    secret_key = "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="
    credential = chatnb.CommunicationTokenCredential(TOKEN)
    assert TOKEN not in repr(credential) and TOKEN not in repr(credential.get_token())
    assert TOKEN not in repr(chatnb.aio.CommunicationTokenCredential(TOKEN))
    with chatnb.CommunicationIdentityClient(ENDPOINT, secret_key) as identity:
        assert secret_key not in repr(identity) and secret_key not in repr(vars(identity))
    with pytest.raises(ValueError) as info:
        chatnb.CommunicationIdentityClient.from_connection_string(f"endpoint=;accesskey={secret_key}")
    assert secret_key not in str(info.value)
    with pytest.raises(ValueError) as bad:
        chatnb.CommunicationTokenCredential("secret-token-value.%%%.sig")
    assert "secret-token-value" not in str(bad.value)

    def handler(request: httpx.Request) -> httpx.Response:
        return error(401, "Unauthorized", "bad token")

    with mock_chat(handler) as thread, pytest.raises(chatnb.AuthenticationError) as denied:
        thread.list_messages()
    assert TOKEN not in str(denied.value) and TOKEN not in repr(denied.value)


# -- a success answer that is not the JSON expected: DecodingError ------------------------------------

MESSAGE = {"id": "1", "type": "text", "sequenceId": "1", "version": "1", "createdOn": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("status", "content", "headers", "call", "problem"),
    [
        pytest.param(200, b"<html>busy</html>", {}, "get_properties", "not JSON", id="not-json"),
        pytest.param(200, b"[1, 2]", {}, "get_properties", "a list where a JSON object", id="a-list"),
        pytest.param(200, b'{"topic": "x"}', {}, "get_properties", "missing 'id'", id="missing-field"),
        pytest.param(201, b"{}", {}, "send_message", "missing 'id'", id="no-message-id"),
        pytest.param(200, b'{"value": {}}', {}, "list_messages", "without a 'value' array", id="value"),
        pytest.param(200, b'{"value": [1, "x"]}', {}, "list_messages", "not all JSON objects", id="items"),
        pytest.param(200, b'{"value": [], "nextLink": 5}', {}, "list_messages", "'nextLink'", id="link"),
        pytest.param(
            200,
            json.dumps({"value": [{**MESSAGE, "createdOn": "secret words"}]}).encode(),
            {},
            "iter_messages",
            "wrong type (ValueError)",
            id="bad-item",
        ),
        pytest.param(
            200,
            b"not gzip at all",
            {"content-encoding": "gzip"},
            "get_properties",
            "does not decode",
            id="gzip",
        ),
    ],
)
def test_a_success_body_that_is_not_the_json_expected_is_a_decoding_error(
    status: int, content: bytes, headers: dict[str, str], call: str, problem: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=content, headers={"content-type": "application/json", **headers}
        )

    with mock_chat(handler) as thread, pytest.raises(chatnb.DecodingError) as info:
        if call == "send_message":
            thread.send_message("hi")
        elif call == "iter_messages":
            list(thread.iter_messages())
        else:
            getattr(thread, call)()
    error = info.value
    assert isinstance(error, chatnb.ChatError) and not isinstance(error, chatnb.APIError)
    assert problem in str(error) and "https://acs.example.test/chat/threads/" in str(error)
    assert error.method == "GET" or call == "send_message"
    assert "secret words" not in str(error) and TOKEN not in str(error)


async def test_the_async_client_raises_the_same_decoding_errors() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"value": [MESSAGE, ["not", "an", "object"]]})

    transport = httpx.MockTransport(handler)
    async with chatnb.aio.ChatThreadClient(ENDPOINT, TOKEN, "19:t@thread.v2", transport=transport) as thread:
        with pytest.raises(chatnb.DecodingError, match="not all JSON objects"):
            await thread.list_messages()
        with pytest.raises(chatnb.DecodingError, match="not all JSON objects"):
            [m async for m in thread.iter_messages()]
