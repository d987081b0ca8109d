"""Event Grid subscriptions managed at run time: the HMAC-authenticated ``/chatnb/eventGridSubscriptions``
endpoint through ``chatnb.eventgrid.EventGridSubscriptions``, and ``chatnb serve --event-grid``."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatnb import ChatClient, CommunicationIdentityClient
from chatnb.cli import main
from chatnb.emulator import Emulator
from chatnb.errors import AuthenticationError, BadRequestError, NotFoundError
from chatnb.eventgrid import EventGridSubscriptions, Receiver
from chatnb.events import ChatThreadCreatedEvent
from tests.support.events import of
from tests.support.processes import Served


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(event_grid_retry_scale=0.001) as emulator:
        yield emulator


def test_subscriptions_are_added_listed_and_removed_with_the_access_key(emu: Emulator) -> None:
    with Receiver() as rx, EventGridSubscriptions.from_connection_string(emu.connection_string) as subs:
        added = subs.add(rx.url, name="notebook", event_types=["ChatThreadCreated"], schema="cloudevents")
        assert added["provisioningState"] == "Succeeded"
        assert added["eventTypes"] == ["Microsoft.Communication.ChatThreadCreated"]
        identity = CommunicationIdentityClient.from_connection_string(emu.connection_string)
        _, token = identity.create_user_and_token(["chat"])
        with ChatClient(emu.endpoint, token.token) as chat:
            chat.create_chat_thread("managed")
        assert of(ChatThreadCreatedEvent, rx.wait_for("ChatThreadCreated"))[0].topic == "managed"
        assert emu.event_grid.wait_idle(10)  # the emulator has counted the webhook's answer
        listed = subs.list()
        assert list(listed["name"]) == ["notebook"] and listed["delivered"].iloc[0] >= 1
        assert subs.get("notebook")["schema"] == "cloudevents"
        subs.remove("notebook")
        subs.remove("notebook")  # removing what is gone is no error
        assert subs.list().empty
        with pytest.raises(NotFoundError):
            subs.get("notebook")
        identity.close()


def test_the_management_endpoint_names_what_is_wrong(emu: Emulator) -> None:
    with EventGridSubscriptions.from_connection_string(emu.connection_string) as subs:
        with pytest.raises(BadRequestError, match="http:// or https://"):
            subs.add("mailto:someone@example.test", name="bad")
        with pytest.raises(BadRequestError, match="not an ACS chat event type"):
            subs.add("http://127.0.0.1:9/", name="bad", event_types=["SmsReceived"])
        with pytest.raises(BadRequestError, match="without spaces or control characters"):
            subs.add("http://127.0.0.1:9/a\r\nX-Injected: 1", name="bad")  # no header smuggled in
        with pytest.raises(BadRequestError, match="at most 2048"):
            subs.add("http://127.0.0.1:9/" + "a" * 2048, name="bad")
        with pytest.raises(BadRequestError, match="validation handshake failed") as failed:
            subs.add("http://127.0.0.1:9/", name="nobody-listens")  # the discard port: refused
        assert failed.value.code == "WebhookValidationFailed"
        assert subs.get("nobody-listens")["provisioningState"] == "Failed"
        subs.remove("nobody-listens")


def test_the_management_endpoint_needs_the_access_key(emu: Emulator) -> None:
    context = ssl.create_default_context(cafile=str(emu.ca_cert))
    base = emu.endpoint.rstrip("/")
    unsigned = httpx.get(f"{base}/chatnb/eventGridSubscriptions", verify=context)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "Unauthorized"
    wrong = EventGridSubscriptions(emu.endpoint, "d3Jvbmcga2V5IGZvciB0aGUgdGVzdA==")
    with pytest.raises(AuthenticationError, match="signature does not match"):
        wrong.list()
    wrong.close()


def test_chatnb_serve_delivers_to_its_event_grid_option(tmp_path: Path) -> None:
    with Receiver() as rx:
        spec = f"{rx.url},types=ChatThreadCreated,name=from-cli"
        with Served("--in-memory", "--event-grid", spec, "--event-grid-retry-scale", "0.001") as served:
            line = served.field("Event Grid")
            assert line.startswith(rx.url) and "from-cli" in line and "Succeeded" in line
            identity = CommunicationIdentityClient.from_connection_string(
                served.connection_string, connection_verify=served.ca_cert
            )
            _, token = identity.create_user_and_token(["chat"])
            with ChatClient(served.endpoint, token.token, connection_verify=served.ca_cert) as chat:
                chat.create_chat_thread("from the command line")
            [event] = of(ChatThreadCreatedEvent, rx.wait_for("ChatThreadCreated"))
            assert event.topic == "from the command line"
            assert rx.deliveries[-1].headers["aeg-subscription-name"] == "FROM-CLI"
            identity.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--event-grid-retry-scale", "0"], "must be above 0", id="scale"),
        pytest.param(["--clock", "sundial"], "invalid choice", id="clock"),
        pytest.param(["--oauth", "full"], "invalid choice", id="oauth"),
    ],
)
def test_serve_refuses_bad_service_options_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--in-memory", "--port", "0", *args])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("ftp://x/", "http:// or https://", id="scheme"),
        pytest.param("http://127.0.0.1:9/,colour=red", "unknown --event-grid setting 'colour'", id="key"),
        pytest.param("http://127.0.0.1:9/,attempts=99", "max_delivery_attempts must be", id="attempts"),
    ],
)
def test_serve_refuses_a_bad_event_grid_spec_in_one_line(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--in-memory", "--port", "0", "--event-grid", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chatnb serve: ") and message in err and len(err.splitlines()) == 1
