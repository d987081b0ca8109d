"""The authorisation matrix: every Chat endpoint against every kind of caller that should be refused.

For each of the 16 operations of the 2024-03-07 Chat API and the event stream (``GET /chatnb/events``),
and each caller, the expected status is written out in ``MATRIX`` below and asserted case by case. Each
case runs against a thread of its own (a secret topic, a secret message ``M`` by the owner, a bystander, a
removed member and a member whose ``shareHistoryTime`` hides ``M``), and checks that:

- the status is the one in the table;
- a refused request changed nothing (the thread's topic, messages and participants are as before);
- nothing leaks: no token or access key in any response, no stack trace, no secret topic or content and
  no other user's id in an error, no trace of the thread for callers outside it, and no trace of ``M``
  for the member whose history starts after it.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from chatnb._time import format_rfc3339, to_us
from chatnb.emulator import Emulator
from chatnb.emulator.auth import TokenIssuer
from tests.support.waiting import clock_tick
from tests.support.wire import CHAT_VERSION, User, Wire, q

CALLERS = ("none", "garbage", "forged", "expired", "revoked", "deleted", "nonmember", "removed", "hidden")

# fmt: off
#: endpoint -> expected status for each caller, in the order of CALLERS.
MATRIX: dict[str, tuple[int, ...]] = {
    #                     none garb forg expi revo dele nonm remo hidden
    "create_thread":      (401, 401, 401, 401, 401, 401, 201, 201, 201),
    "list_threads":       (401, 401, 401, 401, 401, 401, 200, 200, 200),
    "get_thread":         (401, 401, 401, 401, 401, 401, 403, 403, 200),
    "update_thread":      (401, 401, 401, 401, 401, 401, 403, 403, 204),
    "delete_thread":      (401, 401, 401, 401, 401, 401, 403, 403, 204),
    "send_message":       (401, 401, 401, 401, 401, 401, 403, 403, 201),
    "list_messages":      (401, 401, 401, 401, 401, 401, 403, 403, 200),
    "get_message":        (401, 401, 401, 401, 401, 401, 403, 403, 404),
    "update_message":     (401, 401, 401, 401, 401, 401, 403, 403, 404),
    "delete_message":     (401, 401, 401, 401, 401, 401, 403, 403, 204),  # hidden: nothing to delete
    "list_participants":  (401, 401, 401, 401, 401, 401, 403, 403, 200),
    "add_participants":   (401, 401, 401, 401, 401, 401, 403, 403, 201),
    "remove_participant": (401, 401, 401, 401, 401, 401, 403, 403, 204),
    "send_typing":        (401, 401, 401, 401, 401, 401, 403, 403, 200),
    "send_read_receipt":  (401, 401, 401, 401, 401, 401, 403, 403, 404),
    "list_read_receipts": (401, 401, 401, 401, 401, 401, 403, 403, 200),
    "event_stream":       (401, 401, 401, 401, 401, 401, 200, 200, 200),
}
# fmt: on

#: Cases that succeed but must still leave the thread as it was.
UNCHANGED_ON_SUCCESS = {("delete_message", "hidden"), ("event_stream", "hidden"), ("send_typing", "hidden")}


@dataclass
class Scene:
    """One case's thread: the secret topic and message, and the people around it."""

    thread: str
    message: str
    topic: str
    content: str
    later_topic: str
    later_content: str
    owner: User
    bystander: User
    newcomer: User
    caller_token: str | None
    tokens: list[str] = field(default_factory=list)


@dataclass
class Cast:
    """The users shared by every case."""

    wire: Wire
    emulator: Emulator
    owner: User
    bystander: User
    newcomer: User
    nonmember: User
    asserted: int = 0
    tokens: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def cast() -> Iterator[Cast]:
    with Emulator() as emu, Wire(emu) as wire:
        owner, bystander, newcomer, nonmember = users = [wire.new_user() for _ in range(4)]
        c = Cast(wire, emu, owner, bystander, newcomer, nonmember)
        c.tokens = [u.token for u in users]
        yield c
        print(f"\nauthorisation matrix: {c.asserted} cases asserted")


def _random_signature(token: str) -> str:
    header, payload, _ = token.split(".")
    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{header}.{payload}.{signature}"


def _scene(cast: Cast, caller: str) -> Scene:
    """A fresh thread set up for ``caller``, and the token the caller presents."""
    wire = cast.wire
    tag = secrets.token_hex(6)
    topic, content = f"SECRET-TOPIC-{tag}", f"SECRET-CONTENT-{tag}"
    removed, hidden = wire.new_user(), wire.new_user()
    extra: list[User] = []
    if caller in ("revoked", "deleted"):
        extra.append(wire.new_user())
    thread = wire.create_thread(cast.owner, topic, cast.bystander, removed, *extra)
    message = wire.send(thread, cast.owner, content)
    share_from = format_rfc3339(to_us(clock_tick()))  # the hidden member's history starts strictly after M
    added = wire.chat(
        "POST",
        f"/chat/threads/{q(thread)}/participants/:add",
        cast.owner,
        {"participants": [hidden.participant(share_history_time=share_from)]},
    )
    assert added.status_code == 201, added.text
    removal = wire.chat(
        "POST", f"/chat/threads/{q(thread)}/participants/:remove", cast.owner, removed.identifier
    )
    assert removal.status_code == 204, removal.text
    # What happens after the removal must never reach the removed member, even on the event stream.
    later_topic, later_content = f"SECRET-LATER-TOPIC-{tag}", f"SECRET-LATER-CONTENT-{tag}"
    renamed = wire.chat("PATCH", f"/chat/threads/{q(thread)}", cast.owner, {"topic": later_topic})
    assert renamed.status_code == 204, renamed.text
    wire.send(thread, cast.owner, later_content)
    key = base64.b64decode(cast.emulator.access_key)
    token: str | None
    if caller == "none":
        token = None
    elif caller == "garbage":
        token = "garbage-" + secrets.token_urlsafe(24)
    elif caller == "forged":
        token = _random_signature(cast.owner.token)
    elif caller == "expired":
        issuer = TokenIssuer(key, cast.emulator.resource_id)
        token, _ = issuer.issue(cast.owner.id, ["chat"], generation=0, expires_in_s=-60)
    elif caller == "revoked":
        token = extra[0].token
        assert wire.revoke(extra[0].id).status_code == 204
    elif caller == "deleted":
        token = extra[0].token
        assert wire.delete_user(extra[0].id).status_code == 204
    elif caller == "nonmember":
        token = cast.nonmember.token
    elif caller == "removed":
        token = removed.token
    else:
        token = hidden.token
    tokens = [*cast.tokens, removed.token, hidden.token, *(u.token for u in extra)]
    if token is not None:
        tokens.append(token)
    return Scene(
        thread,
        message,
        topic,
        content,
        later_topic,
        later_content,
        cast.owner,
        cast.bystander,
        cast.newcomer,
        token,
        tokens,
    )


Request = tuple[str, str, Any]


def _request(endpoint: str, s: Scene) -> Request:
    t, m = f"/chat/threads/{q(s.thread)}", s.message
    add = {"participants": [s.newcomer.participant()]}
    requests: dict[str, Callable[[], Request]] = {
        "create_thread": lambda: ("POST", "/chat/threads", {"topic": "my own", "participants": []}),
        "list_threads": lambda: ("GET", "/chat/threads", None),
        "get_thread": lambda: ("GET", t, None),
        "update_thread": lambda: ("PATCH", t, {"topic": "renamed"}),
        "delete_thread": lambda: ("DELETE", t, None),
        "send_message": lambda: ("POST", f"{t}/messages", {"content": "hello"}),
        "list_messages": lambda: ("GET", f"{t}/messages", None),
        "get_message": lambda: ("GET", f"{t}/messages/{m}", None),
        "update_message": lambda: ("PATCH", f"{t}/messages/{m}", {"content": "edited"}),
        "delete_message": lambda: ("DELETE", f"{t}/messages/{m}", None),
        "list_participants": lambda: ("GET", f"{t}/participants", None),
        "add_participants": lambda: ("POST", f"{t}/participants/:add", add),
        "remove_participant": lambda: ("POST", f"{t}/participants/:remove", s.bystander.identifier),
        "send_typing": lambda: ("POST", f"{t}/typing", {}),
        "send_read_receipt": lambda: ("POST", f"{t}/readReceipts", {"chatMessageId": m}),
        "list_read_receipts": lambda: ("GET", f"{t}/readReceipts", None),
        "event_stream": lambda: ("GET", "/chatnb/events", None),
    }  # fmt: skip
    return requests[endpoint]()


def _read_stream(wire: Wire, token: str | None) -> tuple[int, str, str]:
    """Status, content type and what the event stream sent from the start of the journal."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    params = {"api-version": CHAT_VERSION, "lastEventId": "0"}
    timeout = httpx.Timeout(10.0, read=0.5)
    with wire.http.stream(
        "GET", "/chatnb/events", params=params, headers=headers, timeout=timeout
    ) as response:
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_raw():
                chunks.append(chunk)
        except httpx.ReadTimeout:
            pass  # the stream stays open; everything it had to say has been said
        return response.status_code, response.headers.get("content-type", ""), b"".join(chunks).decode()


def _snapshot(wire: Wire, s: Scene) -> Any:
    """What the owner sees of the thread (or None once it is deleted)."""
    thread = wire.chat("GET", f"/chat/threads/{q(s.thread)}", s.owner)
    if thread.status_code == 404:
        return None
    messages = wire.all_messages(s.thread, s.owner)
    people = wire.chat("GET", f"/chat/threads/{q(s.thread)}/participants", s.owner).json()["value"]
    return thread.json(), messages, sorted(json.dumps(p, sort_keys=True) for p in people)


def _assert_no_leak(endpoint: str, caller: str, status: int, text: str, s: Scene, cast: Cast) -> None:
    for token in s.tokens:
        assert token not in text, f"{endpoint}/{caller}: a token leaked"
    assert cast.emulator.access_key not in text, f"{endpoint}/{caller}: the access key leaked"
    for marker in ("Traceback", 'File "', "sqlite", "Error("):
        assert marker not in text, f"{endpoint}/{caller}: internals leaked: {text[:300]}"
    secrets_ = (s.topic, s.content, s.later_topic, s.later_content)
    if status >= 400:
        for secret in (*secrets_, s.owner.id, s.bystander.id):
            assert secret not in text, f"{endpoint}/{caller}: error names {secret!r}: {text[:300]}"
    if caller == "nonmember" or (caller == "removed" and endpoint != "event_stream"):
        for secret in secrets_:
            assert secret not in text, f"{endpoint}/{caller}: thread data leaked"
    if caller == "removed":
        # The event stream replays what happened while they were a member, and nothing after.
        assert s.later_topic not in text and s.later_content not in text, f"{endpoint}/{caller}: leaked"
    if caller == "nonmember":
        assert s.thread not in text, f"{endpoint}/{caller}: the thread's id leaked"
    if caller == "hidden":
        assert s.content not in text, f"{endpoint}/{caller}: the hidden message's content leaked"
        if endpoint != "get_message" and endpoint != "update_message" and endpoint != "send_read_receipt":
            assert f'"{s.message}"' not in text, f"{endpoint}/{caller}: the hidden message's id leaked"


CASES = [(endpoint, caller) for endpoint in MATRIX for caller in CALLERS]


@pytest.mark.parametrize(("endpoint", "caller"), CASES, ids=[f"{e}-{c}" for e, c in CASES])
def test_authorisation(cast: Cast, endpoint: str, caller: str) -> None:
    expected = MATRIX[endpoint][CALLERS.index(caller)]
    s = _scene(cast, caller)
    before = _snapshot(cast.wire, s)
    method, path, body = _request(endpoint, s)
    if endpoint == "event_stream":
        status, content_type, text = _read_stream(cast.wire, s.caller_token)
    else:
        response = cast.wire.chat(method, path, s.caller_token, body)
        status, content_type, text = (
            response.status_code,
            response.headers.get("content-type", ""),
            response.text,
        )
    assert status == expected, f"{endpoint}/{caller}: {status} {text[:300]}"
    if status >= 400:
        assert content_type.startswith("application/json")
        error = json.loads(text)["error"]
        assert error["code"] and error["message"]
    elif endpoint == "event_stream":
        assert content_type.startswith("text/event-stream") and "realTimeNotificationConnected" in text
    _assert_no_leak(endpoint, caller, status, text, s, cast)
    if status >= 400 or (endpoint, caller) in UNCHANGED_ON_SUCCESS:
        assert _snapshot(cast.wire, s) == before, f"{endpoint}/{caller}: a refused request changed the thread"
    if endpoint == "list_threads" and caller != "hidden" and status == 200:
        assert all(t["id"] != s.thread for t in json.loads(text)["value"])
    if endpoint == "list_threads" and caller == "hidden":
        assert any(t["id"] == s.thread for t in json.loads(text)["value"])
    if endpoint == "list_messages" and caller == "hidden":
        ids = [m["id"] for m in json.loads(text)["value"]]
        assert s.message not in ids and ids, "the hidden member sees the messages after their history starts"
    cast.asserted += 1


def test_the_matrix_covers_every_operation_of_the_spec(reference: Any) -> None:
    spec = json.loads((reference / "chat-2024-03-07" / "swagger.json").read_text())
    operations = [op for ops in spec["paths"].values() for name, op in ops.items() if name != "parameters"]
    assert len(operations) == 16
    assert len(MATRIX) == len(operations) + 1  # and the event stream
    assert len(CASES) == 17 * 9
