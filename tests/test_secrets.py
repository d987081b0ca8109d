"""Secrets: the access key and access tokens never show up where they should not.

- the logs of ``chatnb serve --debug`` (every request logged): no token, no signature, no access key (the
  start banner shows the connection string whole only on a terminal);
- error messages: neither a wrong key's signature nor the real key, nor a rejected token, is echoed;
- reprs of the emulator and its parts, and of the client's objects and errors;
- the files of a location: ``server.json`` (which holds the connection string by design) and
  ``emulator.json`` (the key) are 0600, the database and its WAL are private too, and the database holds
  neither the key nor any token.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

import httpx
import pytest

from chatnb import ChatClient, CommunicationIdentityClient, CommunicationTokenCredential
from chatnb.emulator import Emulator, FaultPlan
from chatnb.errors import APIError
from tests.serve_helpers import ServerProcess
from tests.wire_helpers import Wire, assert_error, q


def _forged(token: str) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def _key_forms(access_key: str) -> list[str]:
    """The key as base64 and as Python would print its bytes."""
    raw = base64.b64decode(access_key)
    return [access_key, repr(raw)[2:-1], raw.hex()]


def _exercise(wire: Wire) -> list[str]:
    """Identity and Chat traffic with successes and failures; the tokens it used."""
    alice, bob = wire.new_user(), wire.new_user()
    thread = wire.create_thread(alice, "secret topic", bob)
    wire.send(thread, alice, "a message")
    wire.all_messages(thread, bob)
    reissued = wire.issue_token(bob.id).json()["token"]
    assert wire.revoke(bob.id).status_code == 204
    forged, garbage = _forged(alice.token), "garbage-" + secrets.token_urlsafe(30)
    for token in (forged, garbage, bob.token, reissued):
        assert_error(wire.chat("GET", f"/chat/threads/{q(thread)}", token), 401)
    assert_error(wire.chat("POST", f"/chat/threads/{q(thread)}/messages", alice, raw=b'{"content": "'), 400)
    assert_error(wire.chat("GET", "/chat/threads/nope", alice), 404)
    wrong_key = secrets.token_bytes(32)
    assert_error(wire.signed("POST", "/identities?api-version=2023-10-01", {}, key=wrong_key), 401)
    with wire.http.stream(
        "GET",
        "/chatnb/events",
        params={"api-version": "2024-03-07"},
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=httpx.Timeout(10, read=0.3),
    ) as events:
        assert events.status_code == 200
        try:
            for _ in events.iter_raw():
                pass
        except httpx.ReadTimeout:
            pass
    return [alice.token, bob.token, reissued, forged, garbage]


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServerProcess, Path, list[str]]:
    """A ``chatnb serve --debug`` process on a location, exercised and stopped; its output kept."""
    root = tmp_path_factory.mktemp("secrets")
    location = root / "emulator"
    server = ServerProcess(["--location", str(location), "--debug"], root / "logs")
    try:
        with Wire.connect(server.connection_string, server.ca_cert) as wire:
            tokens = _exercise(wire)
        # the files are checked while the server runs: server.json only exists then
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in location.iterdir()}
        (root / "modes.txt").write_text(repr(modes))
        (root / "server.json").write_bytes((location / "server.json").read_bytes())
    finally:
        server.stop()
    return server, location, tokens


def test_debug_logs_hold_no_token_and_no_key(
    debug_run: tuple[ServerProcess, Path, list[str]],
) -> None:
    server, location, tokens = debug_run
    output = server.output()
    lines = output.splitlines()
    # the debug log did record the traffic
    assert any("POST /identities" in line for line in lines), output[:2000]
    assert any("401" in line and "Unauthorized" in line for line in lines), output[:2000]
    for token in tokens:
        assert token not in output
        assert token.split(".")[-1] not in output  # not even the signature part
    for marker in ("Bearer ", "Signature=", "HMAC-SHA256"):
        assert marker not in output, marker
    access_key = server.connection_string.split("accesskey=", 1)[1]
    holding = [line for line in lines if any(form in line for form in _key_forms(access_key))]
    assert holding == []  # not even in the banner: its output is not a terminal, so the key stays out
    [banner] = [line for line in lines if "connection string:" in line]
    assert banner.endswith(f"accesskey=<not logged: chatnb connection-string --location {location}>")


def test_location_files_are_private(debug_run: tuple[ServerProcess, Path, list[str]]) -> None:
    server, location, tokens = debug_run
    modes: dict[str, int] = eval((location.parent / "modes.txt").read_text())  # our own repr
    assert modes["server.json"] == 0o600
    assert modes["emulator.json"] == 0o600
    assert modes["emulator-key.pem"] == 0o600
    for name in ("chatnb.sqlite3", "chatnb.sqlite3-wal"):
        assert modes[name] & 0o077 == 0, (name, oct(modes[name]))
    assert stat.S_IMODE(location.stat().st_mode) & 0o077 == 0
    assert server.connection_string in (location.parent / "server.json").read_text()
    access_key = server.connection_string.split("accesskey=", 1)[1]
    stored = b"".join(p.read_bytes() for p in location.iterdir() if p.name.startswith("chatnb.sqlite3"))
    for form in _key_forms(access_key):
        assert form.encode() not in stored
    for token in tokens:
        assert token.encode() not in stored


def test_error_messages_echo_no_secret(emulator: Emulator) -> None:
    with Wire(emulator) as wire:
        user = wire.new_user()
        forged = _forged(user.token)
        for token in (forged, user.token + "x", "Bearer " + user.token):
            body = wire.chat("GET", "/chat/threads", token).text
            assert token not in body and user.token not in body
        wrong = wire.signed("POST", "/identities?api-version=2023-10-01", {}, key=secrets.token_bytes(32))
        assert_error(wrong, 401)
        for form in _key_forms(emulator.access_key):
            assert form not in wrong.text
        assert "Signature=" not in wrong.text


def test_emulator_reprs_hold_no_secret() -> None:
    with Emulator(rate_limits=True, faults=FaultPlan(rate=0.0, statuses=(503,))) as emu:
        texts = [
            repr(emu),
            str(emu),
            repr(emu.state),
            repr(emu.state.issuer),
            repr(emu.store),
            repr(emu.rate_limiter),
            repr(emu.fault_injector),
        ]
        for form in _key_forms(emu.access_key):
            for text in texts:
                assert form not in text, text


def test_client_reprs_and_errors_hold_no_secret(emulator: Emulator) -> None:
    ca = str(emulator.ca_cert)
    with Wire(emulator) as wire:
        user = wire.new_user()
        thread = wire.create_thread(user)
    identity = CommunicationIdentityClient.from_connection_string(
        emulator.connection_string, connection_verify=ca
    )
    credential = CommunicationTokenCredential(user.token)
    access = identity.get_token(user.id, ["chat"])
    with ChatClient(emulator.endpoint, credential, connection_verify=ca) as chat:
        thread_client = chat.get_chat_thread_client(thread)
        texts = [
            repr(identity),
            str(identity),
            repr(credential),
            repr(chat),
            repr(thread_client),
            repr(access),
        ]
        revoked = ChatClient(emulator.endpoint, user.token, connection_verify=ca)
        identity.revoke_tokens(user.id)
        with pytest.raises(APIError) as caught:
            revoked.get_chat_thread_client(thread).get_properties()
        revoked.close()
        texts += [str(caught.value), repr(caught.value)]
    bad_key = base64.b64encode(secrets.token_bytes(32)).decode()
    with CommunicationIdentityClient(emulator.endpoint, bad_key, connection_verify=ca) as wrong:
        with pytest.raises(APIError) as refused:
            wrong.create_user()
        texts += [repr(wrong), str(refused.value), repr(refused.value)]
    identity.close()
    for text in texts:
        for secret in (user.token, access.token, bad_key, *_key_forms(emulator.access_key)):
            assert secret not in text, text


def test_private_file_mode_survives_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with Emulator(tmp_path / "loose") as emu:
            assert emu.location is not None
            db = emu.location / "chatnb.sqlite3"
            assert stat.S_IMODE(db.stat().st_mode) == 0o600
    finally:
        os.umask(old)
