"""Event Grid delivery from the emulator to a local webhook: every chat event type with the documented
fan-out and payload shape, parsed by the official ``azure-eventgrid`` package and by ``chatnb.eventgrid``;
the validation handshakes, the ``aeg-*`` headers, batches, retries, dead-letter files and the bounded
outbox. Retry waits are compressed (``event_grid_retry_scale``); tests wait on conditions, never on time.
"""

from __future__ import annotations

import json
import ssl
import stat
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from chatnb import ChatClient, ChatParticipant, CommunicationIdentityClient, CommunicationUserIdentifier
from chatnb.emulator import Emulator
from chatnb.emulator.gridsubs import EventGridSubscription, SubscriptionError
from chatnb.eventgrid import EVENT_GRID_TYPES, ReceivedEvent, Receiver, parse_event_grid
from chatnb.events import (
    ChatEvent,
    ChatMessageReceivedEvent,
    ChatThreadCreatedEvent,
    ChatThreadDeletedEvent,
    ParticipantsAddedEvent,
)
from tests.support.events import of

SCALE = 0.001  # Event Grid's 10 s first retry takes 10 ms; the 5-minute dead-letter delay 0.3 s
ACS_TYPES = {v for k, v in vars(SystemEventNames).items() if k.startswith("AcsChat")}
EXAMPLES = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "eventgrid-communication" / "examples"
)


def trusting(emu: Emulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emu.ca_cert))


def statistics(emu: Emulator, name: str) -> dict[str, Any]:
    subscription = emu.event_grid.get(name)
    assert subscription is not None, f"no subscription {name!r}"
    stats: dict[str, Any] = subscription["statistics"]
    return stats


def example_of(event_type: str) -> dict[str, Any]:
    for path in EXAMPLES.rglob("*.json"):
        item: dict[str, Any] = json.loads(path.read_text())
        if item["eventType"] == event_type:
            return item
    raise AssertionError(f"no reference example of {event_type}")


@pytest.fixture(scope="module")
def dead_letters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deadletter") / "letters"


@pytest.fixture(scope="module")
def emu(dead_letters: Path) -> Iterator[Emulator]:
    with Emulator(event_grid_retry_scale=SCALE, dead_letter_dir=dead_letters) as emulator:
        yield emulator


@pytest.fixture
def rx(emu: Emulator) -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver
    for sub in emu.event_grid.subscriptions():
        emu.event_grid.remove(sub["name"])


class People:
    """Users of one emulator with their chat clients."""

    def __init__(self, emu: Emulator, *names: str) -> None:
        identity = CommunicationIdentityClient.from_connection_string(emu.connection_string)
        self.ids: dict[str, CommunicationUserIdentifier] = {}
        self.chat: dict[str, ChatClient] = {}
        for name in names:
            user, token = identity.create_user_and_token(["chat"])
            self.ids[name], self.chat[name] = user, ChatClient(emu.endpoint, token.token)
        identity.close()

    def raw(self, name: str) -> str:
        return self.ids[name].raw_id

    def name_of(self, raw_id: str) -> str:
        return next(n for n, i in self.ids.items() if i.raw_id == raw_id)

    def close(self) -> None:
        for client in self.chat.values():
            client.close()


def check_against_the_reference(raw: dict[str, Any]) -> None:
    """The delivered Event Grid event has the fields of the documented example, with the same JSON types."""
    example = example_of(raw["eventType"])
    assert set(raw) == set(example)
    allowed = {"metadata", "senderDisplayName"}  # present in the examples; absent when the message has none
    assert set(example["data"]) - allowed <= set(raw["data"]) <= set(example["data"]) | allowed
    for key, value in raw["data"].items():
        assert type(value) is type(example["data"][key]), (raw["eventType"], key, value)
    words = lambda subject: subject.split("/")[0::2]  # noqa: E731 - thread/<id>/sender/<id>/...
    assert words(raw["subject"]) == words(example["subject"]), (raw["subject"], example["subject"])
    assert (raw["dataVersion"], raw["metadataVersion"]) == ("1.0", "1")


def parse_with_azure(raw: dict[str, Any]) -> EventGridEvent:
    event = EventGridEvent.from_dict(raw)
    assert event.event_type in ACS_TYPES
    assert event.data["threadId"] and event.subject == raw["subject"]
    return event


def test_every_chat_event_type_is_delivered_with_the_documented_fan_out(emu: Emulator, rx: Receiver) -> None:
    emu.event_grid.add(rx.url)
    people = People(emu, "ann", "bob", "cat", "dan")
    ann = people.chat["ann"]
    created = ann.create_chat_thread(
        "plans", [ChatParticipant(people.ids[n], display_name=n) for n in ("ann", "bob", "cat")]
    )
    thread = ann.get_chat_thread_client(created.chat_thread.id)
    sent = thread.send_message("hi", sender_display_name="Ann")
    thread.update_message(sent.id, "hi all")
    thread.delete_message(sent.id)
    thread.update_topic("new plans")
    thread.add_participants([ChatParticipant(people.ids["dan"], display_name="dan")])
    thread.remove_participant(people.ids["bob"])
    ann.delete_chat_thread(thread.thread_id)
    assert emu.event_grid.wait_idle(20)

    recipients: dict[str, Counter[str]] = {}
    for r in rx.received:
        data = r.raw["data"]
        who = data.get("recipientCommunicationIdentifier", {}).get("rawId")
        recipients.setdefault(r.event_type.removeprefix("Microsoft.Communication."), Counter())[
            people.name_of(who) if who else "thread"
        ] += 1
        check_against_the_reference(r.raw)
        parse_with_azure(r.raw)
        assert data["threadId"] == thread.thread_id
    thread_level = {"thread": 1}
    expected = {
        "ChatThreadCreated": thread_level,
        "ChatThreadCreatedWithUser": {"bob": 1, "cat": 1},  # every member but the creator
        "ChatMessageReceivedInThread": thread_level,
        "ChatMessageReceived": {"bob": 1, "cat": 1},  # every member but the sender
        "ChatMessageEditedInThread": thread_level,
        "ChatMessageEdited": {"bob": 1, "cat": 1},
        "ChatMessageDeletedInThread": thread_level,
        "ChatMessageDeleted": {"bob": 1, "cat": 1},
        "ChatThreadPropertiesUpdated": thread_level,
        "ChatThreadPropertiesUpdatedPerUser": {"bob": 1, "cat": 1},
        "ChatThreadParticipantAdded": thread_level,
        "ChatParticipantAddedToThreadWithUser": {"bob": 1, "cat": 1, "dan": 1},  # the added one too
        "ChatThreadParticipantRemoved": thread_level,
        "ChatParticipantRemovedFromThreadWithUser": {"bob": 1, "cat": 1, "dan": 1},  # the removed one too
        "ChatThreadDeleted": thread_level,
        "ChatThreadWithUserDeleted": {"cat": 1, "dan": 1},
    }
    assert {k: dict(v) for k, v in recipients.items()} == expected
    assert {"Microsoft.Communication." + k for k in expected} == set(EVENT_GRID_TYPES)
    people.close()


def test_deliveries_parse_into_typed_events_and_a_dataframe(emu: Emulator, rx: Receiver) -> None:
    emu.event_grid.add(f"{rx.url},types=ChatMessageReceived+ChatThreadParticipantAdded")
    people = People(emu, "ann", "bob")
    created = people.chat["ann"].create_chat_thread("t", [ChatParticipant(people.ids["bob"])])
    thread = people.chat["ann"].get_chat_thread_client(created.chat_thread.id)
    thread.send_message("hello", sender_display_name="Ann", metadata={"k": "v"})
    thread.add_participants([ChatParticipant(people.ids["bob"], display_name="Bob again")])
    message = rx.wait_for("ChatMessageReceived")[0]
    assert isinstance(message, ChatMessageReceivedEvent)
    assert (message.message, message.sender_display_name, message.metadata) == ("hello", "Ann", {"k": "v"})
    assert message.recipient == people.ids["bob"] and message.sender == people.ids["ann"]
    added = rx.wait_for("ChatThreadParticipantAdded")[0]
    assert isinstance(added, ParticipantsAddedEvent) and added.recipient is None
    assert [p.display_name for p in added.participants_added] == ["Bob again"]
    frame = rx.to_dataframe()
    assert list(frame["event_type"]) == ["ChatMessageReceived", "ChatThreadParticipantAdded"]
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["recipient"].iloc[0] == people.raw("bob") and frame["delivery_count"].tolist() == [0, 0]
    people.close()


def test_the_validation_event_handshake_and_the_aeg_headers(emu: Emulator, rx: Receiver) -> None:
    state = emu.event_grid.add(f"{rx.url},name=audit,types=ChatThreadCreated")
    assert state["provisioningState"] == "Succeeded"
    validation = rx.deliveries[0]
    assert validation.headers["aeg-event-type"] == "SubscriptionValidation"
    assert validation.items[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert rx.validations[0]["validationCode"] and rx.validations[0]["validationUrl"].startswith(emu.endpoint)
    people = People(emu, "ann")
    people.chat["ann"].create_chat_thread("t")
    rx.wait_for("ChatThreadCreated")
    headers = rx.deliveries[-1].headers
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-subscription-name"] == "AUDIT"
    assert (headers["aeg-delivery-count"], headers["aeg-data-version"], headers["aeg-metadata-version"]) == (
        "0",
        "1.0",
        "1",
    )
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["aeg-output-event-id"] == rx.deliveries[-1].items[0]["id"]
    assert isinstance(json.loads(json.dumps(rx.deliveries[-1].items)), list)
    people.close()


def test_a_webhook_that_refuses_the_handshake_gets_nothing(emu: Emulator) -> None:
    with Receiver(validate="refuse") as refusing:
        with pytest.raises(SubscriptionError, match="validation handshake failed"):
            emu.event_grid.add(refusing.url)
        listed = emu.event_grid.subscriptions()
        assert [s["provisioningState"] for s in listed] == ["Failed"]
        People(emu, "ann").chat["ann"].create_chat_thread("t")
        assert emu.event_grid.wait_idle(10)
        assert [d.method for d in refusing.deliveries] == ["POST"]  # the validation, nothing more
        emu.event_grid.remove(listed[0]["name"])


def test_manual_validation_through_the_validation_url(emu: Emulator) -> None:
    with Receiver(validate="manual") as rx:
        state = emu.event_grid.add(f"{rx.url},types=ChatThreadCreated")
        assert state["provisioningState"] == "AwaitingManualAction"
        People(emu, "ann").chat["ann"].create_chat_thread("waits for the validation")
        url = rx.validations[0]["validationUrl"]
        bad = httpx.get(url.replace("code=", "code=X"), verify=trusting(emu))
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidValidationCode"
        assert httpx.get(url, verify=trusting(emu)).status_code == 200
        [created] = of(ChatThreadCreatedEvent, rx.wait_for("ChatThreadCreated"))
        assert created.topic == "waits for the validation"
        emu.event_grid.remove(state["name"])


def test_cloudevents_schema_options_handshake_and_structured_delivery(emu: Emulator, rx: Receiver) -> None:
    emu.event_grid.add(f"{rx.url},schema=cloudevents,types=ChatMessageReceivedInThread")
    handshake = rx.deliveries[0]
    assert (
        handshake.method == "OPTIONS" and handshake.headers["webhook-request-origin"] == "eventgrid.azure.net"
    )
    people = People(emu, "ann")
    thread = people.chat["ann"].get_chat_thread_client(
        people.chat["ann"].create_chat_thread("t").chat_thread.id
    )
    thread.send_message("in the cloud")
    event = rx.wait_for("ChatMessageReceivedInThread")[0]
    assert isinstance(event, ChatMessageReceivedEvent) and event.message == "in the cloud"
    delivery = rx.deliveries[-1]
    assert delivery.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    assert delivery.headers["aeg-metadata-version"] == "1.0" and "aeg-data-version" not in delivery.headers
    raw = rx.received[-1].raw
    cloud: CloudEvent[dict[str, Any]] = CloudEvent.from_dict(raw)
    assert cloud.type == "Microsoft.Communication.ChatMessageReceivedInThread" and cloud.specversion == "1.0"
    assert (
        cloud.source.endswith(f"emulator-{emu.resource_id[:8]}")
        and cloud.data is not None
        and cloud.data["messageBody"] == "in the cloud"
    )
    people.close()


def test_batches_hold_what_is_waiting_within_the_preferred_size(emu: Emulator, rx: Receiver) -> None:
    with Receiver(validate="manual") as waiting:  # events queue until the validation: then all are waiting
        emu.event_grid.add(f"{waiting.url},types=ChatMessageReceivedInThread,batch=4")
        people = People(emu, "ann")
        thread = people.chat["ann"].get_chat_thread_client(
            people.chat["ann"].create_chat_thread("t").chat_thread.id
        )
        for i in range(10):
            thread.send_message(f"m{i}")
        httpx.get(waiting.validations[0]["validationUrl"], verify=trusting(emu)).raise_for_status()
        events = of(ChatMessageReceivedEvent, waiting.wait_for("ChatMessageReceivedInThread", count=10))
        assert sorted(e.message or "" for e in events) == sorted(f"m{i}" for i in range(10))
        posts = waiting.deliveries[1:]
        assert [len(d.items) for d in posts] == [4, 4, 2]  # never more than 4, never waiting to fill one
        assert {d.headers["content-type"] for d in posts} == {"application/json; charset=utf-8"}
    emu.event_grid.add(f"{rx.url},types=ChatMessageReceivedInThread,batch=50,batch-kb=1,schema=cloudevents")
    for _ in range(3):
        thread.send_message("x" * 1200)
    rx.wait_for("ChatMessageReceivedInThread", count=3)
    posts = rx.deliveries[1:]
    assert [len(d.items) for d in posts] == [1, 1, 1]  # each event is over 1 KB: one a batch
    assert {d.headers["content-type"] for d in posts} == {"application/cloudevents-batch+json; charset=utf-8"}
    people.close()


def test_failures_are_retried_on_the_schedule_until_delivered(emu: Emulator, rx: Receiver) -> None:
    name = emu.event_grid.add(f"{rx.url},types=ChatThreadCreated")["name"]
    rx.fail(3, status=500)
    People(emu, "ann").chat["ann"].create_chat_thread("eventually")
    rx.wait_for("ChatThreadCreated")
    attempts = [(d.status, d.headers["aeg-delivery-count"]) for d in rx.deliveries[1:]]
    assert attempts == [(500, "0"), (500, "1"), (500, "2"), (200, "3")]
    assert emu.event_grid.wait_idle(10)
    stats = statistics(emu, name)
    assert (stats["delivered"], stats["failedAttempts"], stats["deadLettered"]) == (1, 3, 0)


def letters_of(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / name).glob("*.json"))]


def test_a_400_is_dead_lettered_at_once_with_event_grid_fields(
    emu: Emulator, rx: Receiver, dead_letters: Path
) -> None:
    emu.event_grid.add(f"{rx.url},types=ChatThreadCreated,name=strict")
    rx.fail(1, status=400)
    People(emu, "ann").chat["ann"].create_chat_thread("refused")
    assert emu.event_grid.wait_idle(10)
    assert [d.status for d in rx.deliveries[1:]] == [400]  # never retried
    (letter,) = letters_of(dead_letters, "strict")
    assert letter["eventType"] == "Microsoft.Communication.ChatThreadCreated"
    assert letter["deadLetterReason"] == "UndeliverableDueToHttpBadRequest"
    assert (letter["deliveryAttempts"], letter["lastDeliveryOutcome"], letter["lastHttpStatusCode"]) == (
        1,
        "BadRequest",
        400,
    )
    assert letter["publishTime"] and letter["lastDeliveryAttemptTime"]
    assert of(ChatThreadCreatedEvent, parse_event_grid(letter))[0].topic == "refused"
    folder = dead_letters / "strict"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}


def test_max_delivery_attempts_then_dead_letter(emu: Emulator, rx: Receiver, dead_letters: Path) -> None:
    emu.event_grid.add(f"{rx.url},types=ChatThreadCreated,attempts=3,name=tries,schema=cloudevents")
    rx.fail(10, status=503)
    People(emu, "ann").chat["ann"].create_chat_thread("never")
    assert emu.event_grid.wait_idle(10)
    assert [d.status for d in rx.deliveries[1:]] == [503, 503, 503]
    (letter,) = letters_of(dead_letters, "tries")
    assert letter["type"] == "Microsoft.Communication.ChatThreadCreated"  # CloudEvents: lower-case fields
    assert (letter["deadletterreason"], letter["deliveryattempts"], letter["lastdeliveryoutcome"]) == (
        "MaxDeliveryAttemptsExceeded",
        3,
        "ServiceUnavailable",
    )


def test_the_time_to_live_ends_retries(emu: Emulator, rx: Receiver, dead_letters: Path) -> None:
    emu.event_grid.add(f"{rx.url},types=ChatThreadCreated,ttl=1,name=brief")  # 1 minute: 60 ms scaled
    rx.fail(1000, status=502)
    People(emu, "ann").chat["ann"].create_chat_thread("too late")
    assert emu.event_grid.wait_idle(10)
    (letter,) = letters_of(dead_letters, "brief")
    assert letter["deadLetterReason"] == "TimeToLiveExceeded" and letter["lastHttpStatusCode"] == 502
    assert 1 < letter["deliveryAttempts"] < 30


class Stalling(ThreadingHTTPServer):
    """A webhook that validates at once and then holds every delivery until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                    answer = json.dumps({"validationResponse": body[0]["data"]["validationCode"]}).encode()
                else:
                    release.wait(30)
                    answer = b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_a_stalled_webhook_never_holds_up_the_api_and_a_full_outbox_drops_with_a_count(emu: Emulator) -> None:
    hook = Stalling()
    emu.event_grid.outbox_size = 30
    try:
        name = emu.event_grid.add(f"http://127.0.0.1:{hook.server_address[1]}/,name=stalled")["name"]
        people = People(emu, "ann", "bob")
        thread = people.chat["ann"].get_chat_thread_client(
            people.chat["ann"].create_chat_thread("busy", [ChatParticipant(people.ids["bob"])]).chat_thread.id
        )
        for i in range(40):  # 2 events each (received in thread, received by bob): 80 events
            assert thread.send_message(f"m{i}").id  # the API answers while the webhook holds everything
        assert emu.event_grid.wait_read(10)
        stats = statistics(emu, name)
        assert stats["delivered"] == 0 and stats["pending"] == 30  # the outbox bound
        assert stats["dropped"] >= 80 - 30 - 2  # the rest dropped, counted (the first 2 were the thread's)
        people.close()
    finally:
        hook.release.set()
        emu.event_grid.outbox_size = 10_000
        emu.event_grid.remove("stalled")
        hook.shutdown()
        hook.server_close()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param("ftp://example.test/", "http:// or https://", id="scheme"),
        pytest.param("http://127.0.0.1:1/,bogus=1", "unknown --event-grid setting 'bogus'", id="key"),
        pytest.param("http://127.0.0.1:1/,types=ChatTyping", "not an ACS chat event type", id="type"),
        pytest.param(
            "http://127.0.0.1:1/,batch=9000", "max_events_per_batch must be an integer from 1", id="batch"
        ),
        pytest.param("http://127.0.0.1:1/,schema=xml", "schema must be", id="schema"),
        pytest.param("http://127.0.0.1:1/,name=a", "3-64", id="name"),
    ],
)
def test_bad_subscription_specs_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(SubscriptionError, match=problem.replace("(", r"\(")):
        EventGridSubscription.parse(spec)


def test_a_deleted_thread_by_retention_publishes_without_deleted_by(rx: Receiver) -> None:
    from datetime import timedelta

    from chatnb.models import ChatRetentionPolicy

    with Emulator(
        clock="manual", event_grid=[f"{rx.url},types=ChatThreadDeleted+ChatThreadWithUserDeleted"]
    ) as emu:
        people = People(emu, "ann", "bob")
        created = people.chat["ann"].create_chat_thread(
            "short-lived",
            [ChatParticipant(people.ids["bob"])],
            retention_policy=ChatRetentionPolicy.thread_creation_date(30),
        )
        emu.advance(timedelta(days=30))
        deleted = rx.wait_for("ChatThreadDeleted")[0]
        assert isinstance(deleted, ChatThreadDeletedEvent) and deleted.thread_id == created.chat_thread.id
        assert deleted.deleted_by is None
        users = rx.wait_for("ChatThreadWithUserDeleted", count=2)
        assert {getattr(e.recipient, "raw_id", None) for e in of(ChatEvent, users)} == {
            people.raw("ann"),
            people.raw("bob"),
        }  # no initiator
        people.close()


def test_an_on_event_handler_runs_for_each_event_and_a_failing_one_is_retried(emu: Emulator) -> None:
    calls: list[str] = []

    def handler(received: ReceivedEvent) -> None:
        calls.append(of(ChatThreadCreatedEvent, [received.event])[0].topic or "")
        if len(calls) == 1:
            raise RuntimeError("the handler's first try fails")

    with Receiver(on_event=handler) as rx:
        name = emu.event_grid.add(f"{rx.url},types=ChatThreadCreated")["name"]
        People(emu, "ann").chat["ann"].create_chat_thread("handled")
        rx.wait_for("ChatThreadCreated")
        assert calls == ["handled", "handled"]
        assert [d.status for d in rx.deliveries[1:]] == [500, 200]  # the failure answered 500, then retried
        emu.event_grid.remove(name)
