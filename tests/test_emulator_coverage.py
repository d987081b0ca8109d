"""Honest coverage and service rules: the operations table is read from the routes and the site's copy
(docs/emulator/api-versions.md) is current; what the emulator does not implement answers 501 with a clear
ACS error body; unknown api-versions answer as the service does unless ``loose``; the response headers the
recorded traffic shows; no typing notifications or read receipts on threads of more than 20 participants."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatnb.cli import main
from chatnb.emulator import Emulator
from chatnb.emulator.app import routes
from chatnb.emulator.coverage import NOT_IMPLEMENTED, api_versions_table, operations, operations_table
from tests.support.wire import Wire, assert_error, q

TABLE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "emulator" / "api-versions.md"
START, END = "<!-- operations:start -->", "<!-- operations:end -->"


@pytest.fixture(scope="module")
def wire(emulator: Emulator) -> Iterator[Wire]:
    with Wire(emulator) as client:
        yield client


def test_the_docs_table_is_the_one_read_from_the_routes() -> None:
    text = TABLE_PAGE.read_text(encoding="utf-8")
    assert START in text and END in text, "docs/emulator/api-versions.md lost its operations table markers"
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    expected = api_versions_table() + "\n\n" + operations_table(routes())
    assert table == expected, (
        "docs/emulator/api-versions.md has a stale table: paste `chatnb serve --list-operations` there"
    )


def test_list_operations_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--list-operations"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == api_versions_table() + "\n\n" + operations_table(routes())


def swagger_operations(path: Path) -> set[str]:
    paths = json.loads(path.read_text())["paths"]
    return {op["operationId"] for ops in paths.values() for m, op in ops.items() if m != "parameters"}


def test_every_operation_of_the_newest_swaggers_is_implemented_or_501(reference: Path) -> None:
    table = {row.operation: row.status for row in operations(routes())}
    chat = swagger_operations(reference / "chat-2025-03-15" / "swagger.json")
    identity = swagger_operations(reference / "identity-2026-09-23" / "swagger.json")
    assert {op: table.get(op) for op in chat} == dict.fromkeys(chat, "implemented")
    teams = {op for op in identity if op.startswith("Teams")}
    assert {op: table.get(op) for op in identity - teams} == dict.fromkeys(identity - teams, "implemented")
    assert {op: table.get(op) for op in teams} == dict.fromkeys(teams, "501")
    assert {table[op] for _, _, op, _ in NOT_IMPLEMENTED} == {"501"}


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [pytest.param(m, p, o, id=o) for m, p, o, _ in NOT_IMPLEMENTED],
)
def test_what_is_not_implemented_answers_501_naming_it(
    wire: Wire, method: str, path: str, operation: str
) -> None:
    concrete = re.sub(r"\{\w+\}", "x", path)
    response = wire.http.request(method, concrete, params={"api-version": "2024-03-07"}, json={})
    error = assert_error(
        response, 501, operation, "does not implement", "--list-operations", code="NotImplemented"
    )
    assert error["target"] == operation


def test_the_trouter_configuration_says_what_to_use_instead(wire: Wire) -> None:
    alice = wire.new_user()
    response = wire.chat("GET", "/chat/config/realTimeNotifications", alice, version="2024-09-01")
    assert_error(response, 501, "Trouter", "/chatnb/events", "Event Grid")


def test_teams_participants_are_501_and_phone_numbers_400(wire: Wire) -> None:
    alice = wire.new_user()
    teams = {"rawId": "8:orgid:abc", "microsoftTeamsUser": {"userId": "abc"}}
    created = wire.chat(
        "POST", "/chat/threads", alice, {"topic": "t", "participants": [{"communicationIdentifier": teams}]}
    )
    assert_error(created, 501, "Teams", code="NotImplemented")
    phone = {"rawId": "4:+15551234567", "phoneNumber": {"value": "+15551234567"}}
    created = wire.chat(
        "POST", "/chat/threads", alice, {"topic": "t", "participants": [{"communicationIdentifier": phone}]}
    )
    assert_error(created, 400, "phoneNumber")


def test_an_unknown_operation_is_a_404_that_says_so(wire: Wire) -> None:
    assert_error(wire.http.get("/chat/nothing-here"), 404, "No operation", code="UnknownOperation")


def test_an_unknown_api_version_answers_as_the_service_does(wire: Wire) -> None:
    alice = wire.new_user()
    error = assert_error(
        wire.chat("GET", "/chat/threads", alice, version="2099-01-01"), 400, code="UnsupportedApiVersion"
    )
    assert error["message"].startswith(
        "The HTTP resource that matches the request URI '/chat/threads' does not support the API version "
        "'2099-01-01'."
    )
    identity = wire.signed("POST", "/identities?api-version=2020-01-01", {})
    assert_error(identity, 400, "'2020-01-01'", "--loose", code="UnsupportedApiVersion")


def test_loose_accepts_any_api_version() -> None:
    with Emulator(loose=True) as emu, Wire(emu) as wire:
        created = wire.signed(
            "POST", "/identities?api-version=2099-12-31", {"createTokenWithScopes": ["chat"]}
        )
        assert created.status_code == 201
        token = created.json()["accessToken"]["token"]
        thread = wire.chat("POST", "/chat/threads", token, {"topic": "any"}, version="9999-99-99")
        assert thread.status_code == 201
        assert "retentionPolicy" in thread.json()["chatThread"]  # read as the newest stable version


def test_response_headers_are_the_recorded_ones(wire: Wire) -> None:
    alice = wire.new_user()
    created = wire.chat("POST", "/chat/threads", alice, {"topic": "headers"})
    assert created.status_code == 201 and "location" not in created.headers
    assert created.headers["api-supported-versions"].startswith("2020-09-21-preview2, ")
    assert "2025-03-15" in created.headers["api-supported-versions"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{22}\.0", created.headers["ms-cv"])
    assert re.fullmatch(r"\d+ms", created.headers["x-processing-time"])
    assert created.headers["strict-transport-security"] == "max-age=2592000"
    assert "server" not in created.headers
    echoed = wire.signed(
        "POST",
        "/identities?api-version=2023-10-01",
        {},
        headers={"x-ms-client-request-id": "req-42", "x-ms-return-client-request-id": "true"},
    )
    assert echoed.headers["x-ms-client-request-id"] == "req-42"
    assert echoed.headers["api-supported-versions"].startswith("2020-07-20-preview2, ")
    other = wire.chat("GET", "/chat/threads", alice)
    assert (
        other.headers["ms-cv"] != created.headers["ms-cv"] and "x-ms-client-request-id" not in other.headers
    )


@pytest.mark.parametrize(("members", "delivered"), [(20, True), (21, False)])
def test_no_typing_or_read_receipts_above_20_participants(wire: Wire, members: int, delivered: bool) -> None:
    users = [wire.new_user() for _ in range(members)]
    owner, reader = users[0], users[1]
    tid = wire.create_thread(owner, "crowd", *users[1:])
    t = f"/chat/threads/{q(tid)}"
    message_id = wire.send(tid, owner, "first")
    assert wire.chat("POST", f"{t}/typing", reader, {}).status_code == 200  # accepted either way
    assert wire.chat("POST", f"{t}/readReceipts", reader, {"chatMessageId": message_id}).status_code == 200
    wire.send(tid, owner, "sentinel")  # the stream replays in order: what came before it is all there is
    types = set(_events_until_second_message(wire, reader.token))
    assert ("typingIndicatorReceived" in types) is delivered
    assert ("readReceiptReceived" in types) is delivered
    receipts = wire.chat("GET", f"{t}/readReceipts", owner).json()["value"]
    assert len(receipts) == (1 if delivered else 0)  # not stored either


def _events_until_second_message(wire: Wire, token: str) -> list[str]:
    """The event types one user's stream replays from the start of the journal, up to the second message."""
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "0"}
    with wire.http.stream("GET", "/chatnb/events?api-version=2024-03-07", headers=headers) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
                if seen.count("chatMessageReceived") == 2:
                    break
    return seen
