"""`python -m chatnb serve` as a real process: output, options, clean stops, restarts and crashes."""

from __future__ import annotations

import argparse
import queue
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chatnb._serve_cli import add_serve_parser
from chatnb.cli import main
from chatnb.emulator import Emulator, stop_announced
from chatnb.emulator.certs import ensure_certificate
from chatnb.emulator.clock import CLOCK_MODES
from tests.support.logs import LogRecords
from tests.support.processes import Served
from tests.support.wire import Wire, q


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start ``chatnb serve ARGS`` processes; each is killed at the end if still running."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        started.append(Served(*args))
        return started[-1]

    yield start
    for served in started:
        served.close()


def test_serve_on_a_location_stops_cleanly_and_restarts_with_its_data(
    serve: Callable[..., Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = tmp_path / "emu"
    first = serve("--location", str(location))
    assert first.field("storage") == str(location)
    assert re.fullmatch(
        r"endpoint=https://127\.0\.0\.1:\d+/;accesskey=[A-Za-z0-9+/=]+", first.connection_string
    )
    assert Path(first.ca_cert) == location / "emulator-cert.pem"
    with first.wire() as wire:  # certificate verification on
        user = wire.new_user()
        tid = wire.create_thread(user, "kept")
        mid = wire.send(tid, user, "still here")

    assert main(["serve", "--location", str(location)]) == 1  # refused at once: the first one holds the lock
    refusal = capsys.readouterr().err
    assert "another emulator is serving" in refusal and str(location) in refusal

    rc, out, err = first.stop(signal.SIGINT)
    assert rc == 0, err
    assert "stopped" in out
    assert "Traceback" not in err and "ERROR" not in err, err

    again = serve("--location", str(location))
    assert again.connection_string.split(";")[1] == first.connection_string.split(";")[1]  # same access key
    assert again.ca_cert == first.ca_cert
    with again.wire() as wire:
        message = wire.chat(
            "GET", f"/chat/threads/{q(tid)}/messages/{mid}", user
        )  # the old token still works
        assert message.status_code == 200 and message.json()["content"]["message"] == "still here"
        assert wire.chat("GET", f"/chat/threads/{q(tid)}", user).json()["topic"] == "kept"
    rc, _, err = again.stop(signal.SIGTERM)
    assert rc == 0 and "Traceback" not in err, err


def test_acknowledged_message_survives_sigkill(serve: Callable[..., Served], tmp_path: Path) -> None:
    location = tmp_path / "emu"
    first = serve("--location", str(location))
    with first.wire() as wire:
        user = wire.new_user()
        tid = wire.create_thread(user)
        sent = [wire.send(tid, user, f"m{i}") for i in range(20)]
    first.process.kill()
    first.process.wait(10)
    again = serve("--location", str(location))
    with again.wire() as wire:
        listed = wire.all_messages(tid, user)
    assert [m["id"] for m in listed if m["type"] == "text"] == sent[::-1]
    assert next(m["content"]["message"] for m in listed if m["type"] == "text") == "m19"
    again.stop()


def test_in_memory_with_http_listener_access_key_and_certificate(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    key = "c2VjcmV0LWtleS1mb3ItdGhlLWNoYXRuYi1jbGktdGVzdA=="
    cert, cert_key = ensure_certificate(tmp_path / "pki")
    served = serve(
        "--in-memory", "--http", "--access-key", key, "--cert", str(cert), "--key", str(cert_key), "--debug"
    )
    assert served.field("storage") == "in memory"
    assert served.connection_string.endswith(";accesskey=" + key)
    assert Path(served.ca_cert) == cert
    http = served.field("plain HTTP")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", http)
    with served.wire(base_url=http) as plain:  # Identity over plain HTTP, signed with the given key
        user = plain.new_user()
        assert plain.chat("GET", "/chat/threads", user).status_code == 200
    with served.wire() as tls:  # TLS with the given certificate; the same store behind both listeners
        tid = tls.create_thread(user, "both")
    with served.wire(base_url=http) as plain:
        assert plain.chat("GET", f"/chat/threads/{q(tid)}", user).json()["topic"] == "both"
    other, _ = ensure_certificate(tmp_path / "other")
    with (
        Wire.connect(served.connection_string, str(other)) as wire,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE"),
    ):
        wire.create_user()  # verification is real: another certificate is not trusted
    rc, out, err = served.stop()
    assert rc == 0 and "Traceback" not in err, err
    assert re.search(
        r'"POST /identities\?api-version=2023-10-01 HTTP/1.1" 201', out + err
    )  # --debug logs requests


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        pytest.param(("--in-memory", "--cert", "x.pem"), 2, "--cert and --key", id="cert-without-key"),
        pytest.param(("--in-memory", "--access-key", "not base64!"), 2, "base64", id="bad-key"),
        pytest.param(("--in-memory", "--access-key", "c2hvcnQ="), 2, "16 bytes", id="short-key"),
    ],
)
def test_bad_options_are_refused_with_a_message(
    args: tuple[str, ...], status: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refusals happen before anything is served, so the CLI's ``main`` runs in-process here."""
    assert main(["serve", "--port", "0", *args]) == status
    assert message in capsys.readouterr().err


def test_stop_ends_open_event_streams_without_a_shutdown_error() -> None:
    """``Emulator.stop()`` while a client reads the event stream: the stream ends and nothing is logged."""
    emu = Emulator().start()
    lines: queue.Queue[str | None] = queue.Queue()
    wire = Wire(emu)
    user = wire.new_user()

    def read() -> None:
        headers = {"Authorization": f"Bearer {user.token}"}
        params = {"api-version": "2024-03-07"}
        try:
            with wire.http.stream("GET", "/chatnb/events", params=params, headers=headers) as response:
                for line in response.iter_lines():
                    lines.put(line)
        except httpx.HTTPError:
            pass
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    try:
        with LogRecords() as logged:
            reader.start()
            assert (lines.get(timeout=10) or "").startswith("retry:")  # the stream is open
            emu.stop()
            reader.join(10)
        assert not reader.is_alive()
        assert logged.messages == []
    finally:
        wire.close()
        emu.stop()


def test_stop_announced_stops_the_serve_process_of_a_location(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    location = tmp_path / "emu"
    assert stop_announced(location) is False  # nothing announced there
    served = serve("--location", str(location))
    assert stop_announced(location) is True
    assert served.process.wait(15) == 0  # SIGTERM: a clean shutdown
    assert not (location / "server.json").exists()
    assert stop_announced(location) is False


def test_the_clock_choices_are_the_emulators_clock_modes() -> None:
    """The parser may not import the emulator (the import contract), so it spells the modes itself."""
    commands = argparse.ArgumentParser().add_subparsers()
    add_serve_parser(commands)
    serve = commands.choices["serve"]
    assert f"--clock {{{','.join(CLOCK_MODES)}}}" in serve.format_usage()
    assert serve.parse_args(["--in-memory"]).clock == CLOCK_MODES[0]
