"""Secrets: the access key and access tokens never show up where they should not.

- the logs of ``chatnb serve --debug`` (every request logged): no token, no signature, no access key (the
  start banner shows the connection string whole only on a terminal);
- error messages: neither a wrong key's signature nor the real key, nor a rejected token, is echoed;
- reprs of the emulator and its parts, and of the client's objects and errors;
- the files of a location: ``server.json`` (which holds the connection string by design) and
  ``emulator.json`` (the key) are 0600, the database and its WAL are private too, and the database holds
  neither the key nor any token; a location ``connect()`` creates is 0700 with every file 0600 (log,
  users, leases included), whatever the umask;
- ``chatnb serve`` takes the key from ``$CHATNB_ACCESS_KEY`` or stdin (not only argv), and shows it in
  its banner only on a terminal.
"""

from __future__ import annotations

import base64
import os
import pty
import secrets
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import chatnb
from chatnb import ChatClient, CommunicationIdentityClient, CommunicationTokenCredential, location
from chatnb.emulator import Emulator, FaultPlan
from chatnb.errors import APIError
from tests.support.export import modes
from tests.support.processes import ServerProcess, announcement
from tests.support.waiting import wait_until
from tests.support.wire import Wire, assert_error, q


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


def test_a_location_connect_creates_is_private_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no umask to help, every folder ``connect()`` makes is 0700 and every file 0600 on disk, and so
    is an export of its chat (in every format: chat content is as private as the database).

    That is so from creation: each is made by ``mkdir``/``os.open``/``mkstemp`` with those modes (a umask
    can only narrow them), never written first and narrowed after.
    """
    home = tmp_path / "home"
    monkeypatch.setenv("CHATNB_HOME", str(home))
    old = os.umask(0)  # the emulator process connect() starts inherits it
    try:
        session = chatnb.connect()
        try:
            thread = session.user("Ann").create_thread("private", participants=["Bea"])
            thread.send_message("chat content")
            exported = chatnb.export_history(
                session.user("Ann").chat_client,
                tmp_path / "exports" / "ann",
                format=["parquet", "csv", "jsonl", "html", "markdown"],
                incremental=True,
                progress=False,
            )
            found = modes(home)
            entry = modes(location.registry_dir())
            export = modes(tmp_path / "exports")
        finally:
            assert session.stop() is True
    finally:
        os.umask(old)
    folders = {name for name in found if (home / name).is_dir()}
    assert {".", "emulator", "emulator/leases"} <= folders
    assert {name: mode for name, mode in found.items() if name in folders and mode != 0o700} == {}
    files = {name: mode for name, mode in found.items() if name not in folders}
    expected = {
        "emulator.json",
        "emulator.log",
        "users.json",
        "server.json",
        "emulator-key.pem",
        "chatnb.sqlite3",
    }
    assert {f"emulator/{name}" for name in expected} <= set(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}
    assert [p for p in files if p.startswith("emulator/leases/") and p.endswith(".lease")]  # the session's
    assert {name: mode for name, mode in entry.items() if mode not in (0o600, 0o700)} == {}
    assert exported.rows == 1 and len(export) > 6  # folders, the state, a file per format
    assert {
        n: m for n, m in export.items() if m != (0o700 if (tmp_path / "exports" / n).is_dir() else 0o600)
    } == {}
    log = (home / "emulator" / "emulator.log").read_text()
    assert "accesskey=<not logged" in log and session.connection_string.split("accesskey=")[1] not in log


def test_the_banner_shows_the_key_on_a_terminal_only(tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    with open(tmp_path / "err", "w") as err:
        serve = subprocess.Popen(
            [sys.executable, "-m", "chatnb", "serve", "--in-memory"], stdout=terminal, stderr=err
        )
    os.close(terminal)
    try:
        seen = b""
        while b"Ctrl-C" not in seen:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the process closed the terminal (it exited)
                chunk = b""
            assert chunk, (tmp_path / "err").read_text()
            seen += chunk
        key = announcement(serve.pid)["connection_string"].split("accesskey=")[1]
        assert f"accesskey={key}".encode() in seen
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
        os.close(main)


@pytest.mark.parametrize("how", ["environment", "stdin"])
def test_serve_takes_the_access_key_from_the_environment_or_stdin(how: str, tmp_path: Path) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "CHATNB_ACCESS_KEY": key} if how == "environment" else dict(os.environ)
    args = [] if how == "environment" else ["--access-key", "-"]
    command = [sys.executable, "-m", "chatnb", "serve", "--in-memory", *args]
    with (tmp_path / "out").open("w") as out:
        serve = subprocess.Popen(
            command,
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env, text=True,
        )  # fmt: skip
    try:
        assert serve.stdin is not None
        serve.stdin.write(key + "\n")
        serve.stdin.close()

        def ready() -> bool:
            assert serve.poll() is None, (tmp_path / "out").read_text()
            return "Ctrl-C" in (tmp_path / "out").read_text()

        wait_until(ready, "chatnb serve's ready banner", interval=0.02)
        info = announcement(serve.pid)
        assert info["connection_string"].endswith(";accesskey=" + key)
        with Wire.connect(info["connection_string"], info["ca_cert"]) as wire:
            assert wire.create_user().status_code == 201  # signed with that key
        assert key not in (tmp_path / "out").read_text() and key not in " ".join(command)
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
