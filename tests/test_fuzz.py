"""Fuzzing the emulator's API: requests generated from the official Chat specification, and malformed ones.

Three generators, each against a running emulator:

- schemathesis, positive: requests that follow the 2024-03-07 swagger (with ``$ref``s into
  ``common.json`` resolved in memory), mostly with a valid bearer token and the id of a real thread and
  message substituted, so they reach the handlers' deeper paths;
- schemathesis, negative: requests that violate the schema (wrong types, missing fields, bad values);
- raw hypothesis requests over plain sockets: bad JSON, huge strings, bad percent-encoding, unknown
  api-versions, missing, garbage or malformed auth, unknown methods, the event stream.

Every response must be below 500; every error must be the ACS error body ``{"error": {"code", "message"}}``
with a JSON content type; and the server must keep serving afterwards. The CI variants run a bounded
number of examples; the ``slow`` variants (``make test-long``) run many more.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from chatnb.emulator import Emulator
from tests.support.wire import CHAT_VERSION, User, Wire, q

COMMON_REF = "../../../Common/stable/2023-11-15/common.json"
CI_EXAMPLES = 250
LONG_EXAMPLES = 4000


def resolved_spec(reference: Path) -> dict[str, Any]:
    """The 2024-03-07 Chat swagger with its ``common.json`` references pointing inside the document."""
    spec: dict[str, Any] = json.loads((reference / "chat-2024-03-07" / "swagger.json").read_text())
    common = json.loads((reference / "common-2023-11-15" / "common.json").read_text())
    spec["definitions"].update(common["definitions"])

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: v.replace(COMMON_REF, "") if k == "$ref" and isinstance(v, str) else fix(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    out: dict[str, Any] = fix(spec)
    assert COMMON_REF not in json.dumps(out)
    return out


# -- the world the requests aim at -------------------------------------------------------------


@dataclass
class World:
    """A running emulator with a member, a thread and a message for the fuzzers to aim at."""

    emulator: Emulator
    wire: Wire
    user: User
    thread: str = ""
    message: str = ""
    statuses: Counter[int] = field(default_factory=Counter)

    def refresh(self) -> None:
        """A new thread and message, after a fuzz case deleted or left the old ones."""
        self.thread = self.wire.create_thread(self.user, "fuzz target", self.wire.new_user())
        self.message = self.wire.send(self.thread, self.user, "fuzz message")

    def healthy(self) -> None:
        """The server still answers a valid request correctly."""
        response = self.wire.chat("GET", "/chat/threads", self.user)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["value"], list)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Emulator(http_port=0) as emu, Wire(emu) as wire:
        w = World(emu, wire, wire.new_user())
        w.refresh()
        yield w
        w.healthy()
        print(f"\nfuzz statuses: {dict(sorted(w.statuses.items()))}")


@pytest.fixture(scope="module")
def schema(reference: Path) -> Any:
    return schemathesis.openapi.from_dict(resolved_spec(reference))


def check_response(status: int, content_type: str | None, body: bytes, what: str) -> None:
    """No 5xx but a 501 NotImplemented (a Teams identifier, which the emulator does not emulate); every
    error is the ACS error body with a JSON content type."""
    not_implemented = status == 501 and b'"code":"NotImplemented"' in body
    assert status < 500 or not_implemented, f"{what} -> {status} {body[:300]!r}"
    if status >= 400:
        assert (content_type or "").startswith("application/json"), f"{what} -> {status} {content_type}"
        if what.startswith("HEAD "):  # a HEAD response has the headers of the error but no body
            return
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and error["code"], (what, error)
        assert isinstance(error["message"], str) and error["message"], (what, error)
        assert "Traceback" not in error["message"]
    elif body and (content_type or "").startswith("application/json"):
        json.loads(body)


# -- schemathesis ------------------------------------------------------------------------------


def run_schema_fuzz(world: World, schema: Any, mode: str, examples: int) -> int:
    """Send ``examples`` schemathesis cases of ``mode`` (a :class:`GenerationMode`, a ``str``: with
    ``python_version = "3.10"`` mypy sees its members as plain strings); return how many were sent."""
    strategy = schema.as_strategy(generation_mode=mode)
    session = requests.Session()
    base_url = world.emulator.endpoint.rstrip("/")
    verify = str(world.emulator.ca_cert)
    sent = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        nonlocal sent
        case = data.draw(strategy)
        aim = data.draw(st.sampled_from(["real", "real", "real", "generated"]), label="aim")
        if aim == "real":
            params = case.path_parameters or {}
            if "chatThreadId" in params:
                params["chatThreadId"] = world.thread
            if "chatMessageId" in params:
                params["chatMessageId"] = world.message
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {world.user.token}"}
            if data.draw(st.integers(0, 4), label="api-version") > 0:  # mostly a valid one
                case.query = {**(case.query or {}), "api-version": CHAT_VERSION}
        response = case.call(base_url=base_url, session=session, verify=verify, timeout=30)
        sent += 1
        world.statuses[response.status_code] += 1
        what = f"{case.method} {case.formatted_path}"
        content_type = (response.headers.get("content-type") or [None])[0]
        check_response(response.status_code, content_type, response.content, what)
        destructive = case.method == "DELETE" or case.operation.path.endswith(":remove")
        if destructive and response.status_code < 300:
            world.refresh()

    try:
        fuzz()
    finally:
        session.close()
    world.healthy()
    return sent


def test_spec_generated_requests_never_fail_the_server(world: World, schema: Any) -> None:
    sent = run_schema_fuzz(world, schema, GenerationMode.POSITIVE, CI_EXAMPLES)
    print(f"\nschemathesis positive cases: {sent}")
    assert sent >= CI_EXAMPLES * 0.9


def test_schema_violating_requests_get_acs_errors(world: World, schema: Any) -> None:
    sent = run_schema_fuzz(world, schema, GenerationMode.NEGATIVE, CI_EXAMPLES)
    print(f"\nschemathesis negative cases: {sent}")
    assert sent >= CI_EXAMPLES * 0.9


# -- raw malformed requests --------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes | None = None


_OPERATIONS = [
    ("POST", "/chat/threads"),
    ("GET", "/chat/threads"),
    ("GET", "/chat/threads/{t}"),
    ("PATCH", "/chat/threads/{t}"),
    ("DELETE", "/chat/threads/{t}"),
    ("POST", "/chat/threads/{t}/messages"),
    ("GET", "/chat/threads/{t}/messages"),
    ("GET", "/chat/threads/{t}/messages/{m}"),
    ("PATCH", "/chat/threads/{t}/messages/{m}"),
    ("DELETE", "/chat/threads/{t}/messages/{m}"),
    ("GET", "/chat/threads/{t}/participants"),
    ("POST", "/chat/threads/{t}/participants/:add"),
    ("POST", "/chat/threads/{t}/participants/:remove"),
    ("POST", "/chat/threads/{t}/typing"),
    ("POST", "/chat/threads/{t}/readReceipts"),
    ("GET", "/chat/threads/{t}/readReceipts"),
    ("GET", "/chatnb/events"),
    ("POST", "/identities"),
    ("POST", "/identities/{u}/:issueAccessToken"),
    ("POST", "/identities/{u}/:revokeAccessTokens"),
    ("DELETE", "/identities/{u}"),
]

_BAD_PERCENT = ["%", "%Z", "%ZZ", "%FF", "%C3%28", "%00", "%2F", "%E2%82", "%ED%A0%80", "%25%", "%u00e9"]
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ["topic", "participants", "content", "type", "metadata", "senderDisplayName", "chatMessageId",
           "communicationIdentifier", "rawId", "communicationUser", "shareHistoryTime", "displayName",
           "retentionPolicy", "createTokenWithScopes", "scopes", "expiresInMinutes"]  # fmt: skip


@st.composite
def path_segment(draw: st.DrawFn, real: str) -> str:
    kind = draw(st.sampled_from(["real", "real", "text", "percent", "long"]))
    if kind == "real":
        return q(real)
    if kind == "text":
        return quote(draw(st.text(min_size=1, max_size=40)), safe="")
    if kind == "percent":
        parts = draw(st.lists(st.sampled_from([*_BAD_PERCENT, "x", "19:", "@thread.v2"]), min_size=1))
        return "".join(parts)
    return "a" * draw(st.integers(100, 20_000))


@st.composite
def body(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "json", "fields", "bad", "deep", "huge", "surrogate", "binary"]))
    if kind == "none":
        return None
    if kind == "json":
        return json.dumps(draw(_JSON_VALUES)).encode()
    if kind == "fields":
        keys = draw(st.lists(st.sampled_from(_FIELDS), max_size=5))
        return json.dumps({k: draw(_JSON_VALUES) for k in keys}).encode()
    if kind == "bad":
        good = json.dumps({"content": "x", "topic": "t"})
        return good[: draw(st.integers(0, len(good) - 1))].encode() + draw(st.binary(max_size=8))
    if kind == "deep":
        depth = draw(st.integers(50, 200_000))
        return b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if kind == "huge":
        size = draw(st.sampled_from([29_000, 300_000, 1_100_000]))
        name = draw(st.sampled_from(_FIELDS))
        return json.dumps({name: "x" * size, "content": "y" * (size // 2)}).encode()
    if kind == "surrogate":
        name = draw(st.sampled_from(_FIELDS))
        return json.dumps({name: "a?b", "content": "?"}).replace("?", "\\ud800").encode()
    return draw(st.binary(max_size=200))


@st.composite
def raw_request(draw: st.DrawFn, world: World) -> Raw:
    method, template = draw(st.sampled_from(_OPERATIONS))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["PUT", "OPTIONS", "HEAD", "TRACE", "PATCH", "PROPFIND", "PURGE"]))
    path = template.format(
        t=draw(path_segment(world.thread)),
        m=draw(path_segment(world.message)),
        u=draw(path_segment(world.user.id)),
    )
    version = draw(
        st.sampled_from([CHAT_VERSION, CHAT_VERSION, "", "2099-01-01", "%ZZ", "2024-03-07%00", "x" * 5000])
        | st.text(max_size=20).map(lambda v: quote(v, safe=""))
    )
    query = [] if draw(st.integers(0, 5)) == 0 else [f"api-version={version}"]
    extras = draw(
        st.lists(
            st.sampled_from(
                ["maxPageSize=-1", "maxPageSize=99999999999999999999", "maxPageSize=abc", "skip=-5",
                 "skip=99999999999999999999", "startTime=garbage", "startTime=9999-99-99T00:00:00Z",
                 "syncState=zz.zz", "syncState=" + "f" * 200 + ".0", "lastEventId=-1",
                 "lastEventId=99999999999999999999999", "api-version=2024-03-07", "%ZZ=%ZZ", "a", "=&&="]
            ),
            max_size=3,
        )
    )  # fmt: skip
    target = path + "?" + "&".join(query + extras) if query or extras else path
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["valid", "valid", "none", "garbage", "scheme", "jwt", "hmac", "long"]))
    if auth == "valid":
        headers["Authorization"] = f"Bearer {world.user.token}"
    elif auth == "garbage":
        headers["Authorization"] = "Bearer " + draw(
            st.text(st.characters(min_codepoint=33, max_codepoint=126))
        )
    elif auth == "scheme":
        headers["Authorization"] = draw(
            st.sampled_from(["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer"])
        )
    elif auth == "jwt":
        header, claims, _ = world.user.token.split(".")
        headers["Authorization"] = "Bearer " + ".".join(
            [header, claims, draw(st.sampled_from(["", "AAAA", "x" * 43]))]
        )
    elif auth == "hmac":
        headers["Authorization"] = (
            "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=AA=="
        )
        headers["x-ms-date"] = draw(st.sampled_from(["", "yesterday", "Thu, 01 Jan 1970 00:00:00 GMT"]))
        headers["x-ms-content-sha256"] = "AA=="
    elif auth == "long":
        headers["Authorization"] = "Bearer " + "a." * 4000
    payload = draw(body())
    if payload is not None:
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "application/merge-patch+json", "text/plain", "", "x/y"])
        )
    return Raw(method, target, headers, payload)


def send_raw(port: int, request: Raw) -> tuple[int, str | None, bytes]:
    """Send ``request`` verbatim over plain HTTP; the event stream's body is not read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(request.method, request.target, body=request.body, headers=request.headers)
        response = conn.getresponse()
        content_type = response.getheader("content-type")
        streaming = (content_type or "").startswith("text/event-stream")
        data = b"" if streaming or request.method == "HEAD" else response.read()
        return response.status, content_type, data
    finally:
        conn.close()


def run_raw_fuzz(world: World, examples: int) -> int:
    port = world.emulator.http_port
    assert port is not None
    sent = 0

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        nonlocal sent
        request = data.draw(raw_request(world))
        status, content_type, payload = send_raw(port, request)
        sent += 1
        world.statuses[status] += 1
        check_response(status, content_type, payload, f"{request.method} {request.target[:200]}")
        destructive = request.method == "DELETE" or request.target.split("?")[0].endswith(":remove")
        if destructive and status < 300:
            world.refresh()

    fuzz()
    world.healthy()
    return sent


def test_malformed_requests_get_acs_errors(world: World) -> None:
    sent = run_raw_fuzz(world, CI_EXAMPLES * 2)
    print(f"\nraw malformed cases: {sent}")
    assert sent >= CI_EXAMPLES * 2 * 0.9


@pytest.mark.parametrize(
    "raw",
    [
        Raw("POST", "/chat/threads?api-version=2024-03-07", {}, b'{"topic": "\\ud800", "participants": []}'),
        Raw("POST", "/chat/threads/{t}/messages?api-version=2024-03-07", {}, b'{"content": "a\\udc00"}'),
        Raw(
            "POST",
            "/chat/threads/{t}/readReceipts?api-version=2024-03-07",
            {},
            b'{"chatMessageId": "\\ud800"}',
        ),
        Raw("GET", "/chat/threads/%ZZ%FF%ED%A0%80?api-version=2024-03-07", {}),
        Raw("GET", "/chat/threads/{t}/participants?api-version=2024-03-07&skip=99999999999999999999", {}),
        Raw("POST", "/chat/threads/{t}/messages?api-version=2024-03-07", {}, b"[" * 100_000),
    ],
    ids=[
        "surrogate-topic",
        "surrogate-content",
        "surrogate-receipt",
        "bad-percent",
        "huge-skip",
        "deep-json",
    ],
)
def test_known_hostile_inputs(world: World, raw: Raw) -> None:
    """Inputs that once made the emulator answer 500, kept as fixed regression cases."""
    port = world.emulator.http_port
    assert port is not None
    request = Raw(
        raw.method,
        raw.target.replace("{t}", q(world.thread)),
        {"Authorization": f"Bearer {world.user.token}", "Content-Type": "application/json"},
        raw.body,
    )
    status, content_type, payload = send_raw(port, request)
    check_response(status, content_type, payload, raw.target)
    assert 400 <= status < 500 or (status == 200 and "skip" in raw.target)
    world.healthy()


# -- long variants -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("generator", ["positive", "negative", "raw"])
def test_long_fuzz(world: World, schema: Any, generator: str) -> None:
    if generator == "raw":
        sent = run_raw_fuzz(world, LONG_EXAMPLES * 2)
        assert sent >= LONG_EXAMPLES * 2 * 0.9
    else:
        mode = GenerationMode.POSITIVE if generator == "positive" else GenerationMode.NEGATIVE
        sent = run_schema_fuzz(world, schema, mode, LONG_EXAMPLES)
        assert sent >= LONG_EXAMPLES * 0.9
    print(f"\nlong fuzz, {generator}: {sent} cases")
