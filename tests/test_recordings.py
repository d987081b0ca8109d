"""Parsing real ACS responses: the official SDK's recorded service traffic, fed to the core's parsers.

Cassettes that ``shared/reference/README.md`` marks as OLD preview (endpoints and shapes that no longer
exist) are left out; every other recorded response goes through the parser of its operation.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import chatnb
from chatnb import _chat_ops, _core, _identity_ops
from chatnb.errors import ChatError

ENDPOINT = "https://sanitized.communication.azure.com"
THREAD = _chat_ops.ThreadOperations(ENDPOINT, "19:x@thread.v2", _core.CHAT_API_VERSION)
CHAT = _chat_ops.ChatOperations(ENDPOINT, _core.CHAT_API_VERSION)
IDENTITY = _identity_ops.IdentityOperations(ENDPOINT, "a2V5a2V5a2V5a2V5a2V5")
USER = "8:acs:r_u"


def cassettes(reference: Path) -> list[Path]:
    readme = (reference / "README.md").read_text()
    old = set(re.findall(r"`(recordings-python-sdk[^`]*\.yaml)`[^\n]*OLD preview", readme))
    assert len(old) >= 5, "the README marks the OLD preview cassettes"
    found = sorted(reference.glob("recordings-python-sdk*/*.yaml"))
    return [p for p in found if str(p.relative_to(reference)) not in old]


def interactions(path: Path) -> list[tuple[httpx.Response, str | None]]:
    data = yaml.safe_load(path.read_text())
    out = []
    for item in data["interactions"]:
        req, resp = item["request"], item["response"]
        body = resp["body"]
        text = body.get("string") if isinstance(body, dict) else body
        headers = {k: v[0] if isinstance(v, list) else v for k, v in (resp.get("headers") or {}).items()}
        headers.pop("transfer-encoding", None)
        headers.pop("content-encoding", None)
        request = httpx.Request(req["method"], req["uri"])
        response = httpx.Response(resp["status"]["code"], headers=headers, content=(text or "").encode())
        response.request = request
        out.append((response, req.get("body")))
    return out


def parse(response: httpx.Response, request_body: str | None) -> Any:
    """The result of the operation the recorded request was."""
    method, path = response.request.method, response.request.url.path
    if path == "/identities" and method == "POST":
        if request_body and "createTokenWithScopes" in request_body:
            return IDENTITY.create_user_and_token(["chat"]).parse(response)
        return IDENTITY.create_user().parse(response)
    if path.endswith("/:issueAccessToken"):
        return IDENTITY.get_token(USER, ["chat"]).parse(response)
    if path.startswith("/identities/"):  # delete user, revoke tokens: empty bodies
        return IDENTITY.delete_user(USER).parse(response)
    if path == "/chat/threads":
        if method == "POST":
            return CHAT.create_chat_thread("t").parse(response)
        return CHAT.list_chat_threads().page(response)
    tail = path.split("/chat/threads/", 1)[1].split("/", 1)
    rest = tail[1] if len(tail) > 1 else ""
    if rest == "":
        if method == "GET":
            return THREAD.get_properties().parse(response)
        return THREAD.delete_message("1").parse(response)  # 204 with no body: delete/update thread
    if rest == "messages":
        if method == "POST":
            return THREAD.send_message("m").parse(response)
        return THREAD.list_messages().page(response)
    if rest.startswith("messages/"):
        if method == "GET":
            return THREAD.get_message("1").parse(response)
        return THREAD.delete_message("1").parse(response)
    if rest == "participants/:add":
        return THREAD.add_participants([USER]).parse(response)
    if rest == "participants":
        return THREAD.list_participants().page(response)
    if rest == "readReceipts" and method == "GET":
        return THREAD.list_read_receipts().page(response)
    return THREAD.send_read_receipt("1").parse(response)  # typing, read receipt, remove: empty bodies


def test_every_recorded_response_parses(reference: Path) -> None:
    kinds: Counter[str] = Counter()
    for path in cassettes(reference):
        for response, request_body in interactions(path):
            if response.status_code >= 400:
                with pytest.raises(chatnb.APIError) as info:
                    parse(response, request_body)
                assert info.value.status_code == response.status_code
                kinds["error"] += 1
                continue
            if b'"value": "sanitized"' in response.content:  # list bodies the recorder blanked out
                with pytest.raises(ChatError, match="'value' array"):
                    parse(response, request_body)
                kinds["sanitized listing"] += 1
                continue
            result = parse(response, request_body)
            kinds[type(result).__name__] += 1
    assert kinds["CreateChatThreadResult"] >= 15
    assert kinds["AccessToken"] >= 5 and kinds["tuple"] >= 1 and kinds["CommunicationUserIdentifier"] >= 5
    assert kinds["ChatMessage"] >= 1 and kinds["ChatThreadProperties"] >= 1
    assert kinds["SendChatMessageResult"] >= 5 and kinds["list"] >= 1 and kinds["NoneType"] >= 20
    assert kinds["error"] >= 1 and kinds["sanitized listing"] >= 5


def test_recorded_models_in_detail(reference: Path) -> None:
    folder = reference / "recordings-python-sdk"
    get_message = interactions(folder / "test_chat_thread_client_e2e.test_get_message.yaml")
    message = next(parse(r, b) for r, b in get_message if r.request.method == "GET")
    assert message.type is chatnb.ChatMessageType.TEXT and message.sequence_id == "3"
    assert message.version == "1631051034460" and message.content.message == "hello world"
    assert message.created_on == datetime(2021, 9, 7, 21, 43, 54, tzinfo=timezone.utc)
    assert isinstance(message.sender, chatnb.CommunicationUserIdentifier)
    assert message.sender.raw_id.startswith("8:acs:fa5c4fc3") and message.sender_display_name == "sender name"

    create = interactions(
        folder / "test_chat_client_e2e.test_create_chat_thread_w_repeatability_request_id.yaml"
    )
    results = [
        parse(r, b) for r, b in create if r.request.url.path == "/chat/threads" and r.status_code == 201
    ]
    assert len(results) == 2 and results[0] == results[1]  # the repeated request returned the same thread
    thread = results[0].chat_thread
    assert (
        thread.id.startswith("19:") and thread.topic == "test topic" and thread.created_on.tzinfo is not None
    )

    tokens = interactions(
        reference / "recordings-python-sdk-identity/test_communication_identity_client.test_get_token.yaml"
    )
    token = next(parse(r, b) for r, b in tokens if r.request.url.path.endswith(":issueAccessToken"))
    assert token.expires_on == datetime(2022, 2, 10, 14, 2, 2, 690580, tzinfo=timezone.utc)

    name = "test_create_user_and_token_with_custom_validity_under_minimum_allowed"
    too_short = interactions(
        reference / "recordings-python-sdk-identity" / f"test_communication_identity_client.{name}.yaml"
    )
    response, body = next((r, b) for r, b in too_short if r.status_code == 400)
    with pytest.raises(chatnb.BadRequestError) as info:
        parse(response, body)
    assert (info.value.code, info.value.target) == ("ValidationError", "ExpiresInMinutes")
    assert "ExpiresInMinutes value 59 is invalid." in str(info.value)
