"""The official Python SDKs (azure-communication-identity 1.5.0, azure-communication-chat 1.3.0) against the
emulator, with certificate verification on: the whole quickstart flow, and the errors the real service gives.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from azure.communication.chat import (
    ChatClient,
    ChatMessageType,
    ChatParticipant,
    ChatThreadClient,
    CommunicationTokenCredential,
    CommunicationUserIdentifier,
)
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from chatnb.emulator import Emulator
from chatnb.emulator.auth import TokenIssuer
from tests.support.logs import LogRecords
from tests.support.processes import Served

pytestmark = pytest.mark.sdk


class Sdk:
    """Official SDK clients for one emulator (in-process or a ``chatnb serve`` process), verifying its
    certificate."""

    def __init__(self, endpoint: str, connection_string: str, ca_cert: str) -> None:
        self.endpoint = endpoint
        self.verify = ca_cert
        self.identity = CommunicationIdentityClient.from_connection_string(
            connection_string, connection_verify=self.verify
        )

    @property
    def resource_id(self) -> str:
        """The resource GUID of the user ids, ``8:acs:<resource>_<user>``."""
        return str(self.identity.create_user().properties["id"]).removeprefix("8:acs:").split("_")[0]

    def user(self) -> tuple[CommunicationUserIdentifier, ChatClient]:
        user, token = self.identity.create_user_and_token([CommunicationTokenScope.CHAT])
        return user, self.chat(token.token)

    def chat(self, token: str) -> ChatClient:
        return ChatClient(self.endpoint, CommunicationTokenCredential(token), connection_verify=self.verify)

    def thread(self, client: ChatClient, thread_id: str) -> ChatThreadClient:
        # get_chat_thread_client does not inherit the ChatClient's kwargs: verification again
        return client.get_chat_thread_client(thread_id, connection_verify=self.verify)


@pytest.fixture(scope="module", params=["embedded", "chatnb-serve"])
def sdk(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[Sdk]:
    """The SDKs against the in-process ``Emulator`` and against a ``chatnb serve`` process."""
    if request.param == "embedded":
        yield Sdk(emulator.endpoint, emulator.connection_string, str(emulator.ca_cert))
        return
    with Served("--in-memory") as served:
        yield Sdk(served.endpoint, served.connection_string, served.ca_cert)


def test_identity_lifecycle(sdk: Sdk) -> None:
    user = sdk.identity.create_user()
    assert user.properties["id"].startswith("8:acs:")
    token = sdk.identity.get_token(user, [CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP])
    assert token.token.count(".") == 2
    credential = CommunicationTokenCredential(token.token)  # the strict payload parser accepts it
    assert credential.get_token().expires_on > time.time() + 3600

    other, short = sdk.identity.create_user_and_token(
        [CommunicationTokenScope.CHAT], token_expires_in=timedelta(hours=1)
    )
    expires = CommunicationTokenCredential(short.token).get_token().expires_on
    assert abs(expires - (time.time() + 3600)) < 300
    client = sdk.chat(short.token)
    assert list(client.list_chat_threads()) == []

    sdk.identity.revoke_tokens(other)
    with pytest.raises(ClientAuthenticationError) as revoked:
        list(client.list_chat_threads())
    assert revoked.value.status_code == 401
    fresh = sdk.identity.get_token(other, [CommunicationTokenScope.CHAT])
    assert list(sdk.chat(fresh.token).list_chat_threads()) == []

    sdk.identity.delete_user(other)
    with pytest.raises(ClientAuthenticationError):
        list(sdk.chat(fresh.token).list_chat_threads())
    with pytest.raises(ResourceNotFoundError):
        sdk.identity.get_token(other, [CommunicationTokenScope.CHAT])
    sdk.identity.delete_user(user)


def test_quickstart_flow(sdk: Sdk) -> None:
    jack, jack_chat = sdk.user()
    geeta, geeta_chat = sdk.user()
    token = str(uuid.uuid4())
    participants = [ChatParticipant(identifier=geeta, display_name="Geeta")]
    result = jack_chat.create_chat_thread(
        "Preparation for London conference", thread_participants=participants, idempotency_token=token
    )
    assert not result.errors
    thread_id = result.chat_thread.id
    again = jack_chat.create_chat_thread("ignored", thread_participants=participants, idempotency_token=token)
    assert (
        again.chat_thread.id == thread_id and again.chat_thread.topic == "Preparation for London conference"
    )

    jack_thread = sdk.thread(jack_chat, thread_id)
    geeta_thread = sdk.thread(geeta_chat, thread_id)
    props = geeta_thread.get_properties()
    assert props.topic == "Preparation for London conference"
    assert props.created_by.properties["id"] == jack.properties["id"]
    assert props.created_on.tzinfo is not None

    sent = jack_thread.send_message(
        "Hello Geeta! Can you share the deck?",
        chat_message_type=ChatMessageType.TEXT,
        sender_display_name="Jack",
        metadata={"tag": "deck"},
    )
    message = geeta_thread.get_message(sent.id)
    assert message.content.message == "Hello Geeta! Can you share the deck?"
    assert message.sender_display_name == "Jack" and message.metadata == {"tag": "deck"}
    assert message.sender.properties["id"] == jack.properties["id"]
    assert message.type == ChatMessageType.TEXT
    html = geeta_thread.send_message("<b>sure</b>", chat_message_type=ChatMessageType.HTML).id

    for i in range(7):
        jack_thread.send_message(f"filler {i}")
    pages = [list(page) for page in geeta_thread.list_messages(results_per_page=3).by_page()]
    assert len(pages) == 4 and all(len(p) <= 3 for p in pages)  # 2 system + 2 + 7 filler = 11
    listed = [m for page in pages for m in page]
    assert len({m.id for m in listed}) == 11
    assert [int(m.sequence_id) for m in listed] == list(range(11, 0, -1))
    system = {m.type for m in listed} - {ChatMessageType.TEXT, ChatMessageType.HTML}
    assert system == {ChatMessageType.TOPIC_UPDATED, ChatMessageType.PARTICIPANT_ADDED}
    added = next(m for m in listed if m.type == ChatMessageType.PARTICIPANT_ADDED)
    assert {p.identifier.properties["id"] for p in added.content.participants} == {
        jack.properties["id"],
        geeta.properties["id"],
    }

    jack_thread.update_message(sent.id, content="Hello Geeta! Deck please.", metadata={"tag": "v2"})
    edited = geeta_thread.get_message(sent.id)
    assert edited.content.message == "Hello Geeta! Deck please." and edited.edited_on is not None
    assert edited.metadata == {"tag": "v2"}
    geeta_thread.delete_message(html)
    geeta_thread.delete_message(html)  # twice is fine
    assert geeta_thread.get_message(html).deleted_on is not None

    since = datetime.now(timezone.utc)
    late, _ = sdk.user()
    history, history_chat = sdk.user()
    jack_thread.add_participants(
        [
            ChatParticipant(identifier=late, display_name="Late", share_history_time=since),
            ChatParticipant(identifier=history, display_name="History"),
        ]
    )
    after = jack_thread.send_message("after the join").id
    late_thread = sdk.thread(sdk.chat(sdk.identity.get_token(late, ["chat"]).token), thread_id)
    late_ids = {m.id for m in late_thread.list_messages()}
    assert after in late_ids and sent.id not in late_ids
    with pytest.raises(ResourceNotFoundError):
        late_thread.get_message(sent.id)
    assert sent.id in {m.id for m in sdk.thread(history_chat, thread_id).list_messages()}
    recent = {m.id for m in jack_thread.list_messages(start_time=since, results_per_page=2)}
    assert after in recent and sent.id not in recent  # added/sent at or after `since` only
    assert thread_id in {t.id for t in jack_chat.list_chat_threads(start_time=since)}

    members = list(jack_thread.list_participants(results_per_page=1))
    names = {p.display_name for p in members}
    assert names == {None, "Geeta", "Late", "History"}
    late_member = next(p for p in members if p.display_name == "Late")
    assert abs(late_member.share_history_time - since) < timedelta(seconds=1)
    jack_thread.remove_participant(late)
    with pytest.raises(HttpResponseError) as removed:
        late_thread.get_properties()
    assert removed.value.status_code == 403
    assert {m.type for m in jack_thread.list_messages(results_per_page=2)} >= {
        ChatMessageType.PARTICIPANT_REMOVED
    }

    geeta_thread.send_typing_notification(sender_display_name="Geeta")
    geeta_thread.send_typing_notification()
    geeta_thread.send_read_receipt(sent.id)
    receipts = list(jack_thread.list_read_receipts(results_per_page=1))
    assert [(r.sender.properties["id"], r.chat_message_id) for r in receipts] == [
        (geeta.properties["id"], sent.id)
    ]
    assert receipts[0].read_on.tzinfo is not None

    geeta_thread.update_topic("London conference: final")
    assert jack_thread.get_properties().topic == "London conference: final"
    newest = next(iter(jack_thread.list_messages()))
    assert newest.type == ChatMessageType.TOPIC_UPDATED and newest.content.topic == "London conference: final"

    second = jack_chat.create_chat_thread("Second thread").chat_thread.id
    threads = list(jack_chat.list_chat_threads(results_per_page=1))
    assert {t.id for t in threads} >= {thread_id, second}
    assert next(t for t in threads if t.id == thread_id).topic == "London conference: final"

    jack_chat.delete_chat_thread(thread_id)
    jack_chat.delete_chat_thread(thread_id)
    with pytest.raises(ResourceNotFoundError):
        geeta_thread.get_properties()


def test_errors_map_to_the_sdk_exception_types(sdk: Sdk) -> None:
    owner, owner_chat = sdk.user()
    _, stranger_chat = sdk.user()
    thread_id = owner_chat.create_chat_thread("private").chat_thread.id
    message_id = sdk.thread(owner_chat, thread_id).send_message("mine").id

    stranger = sdk.thread(stranger_chat, thread_id)
    for call in (
        stranger.get_properties,
        lambda: list(stranger.list_messages()),
        lambda: stranger.send_message("let me in"),
    ):
        with pytest.raises(HttpResponseError) as forbidden:
            call()
        assert forbidden.value.status_code == 403
        assert forbidden.value.error is not None and forbidden.value.error.code == "Forbidden"
        assert not isinstance(forbidden.value, (ClientAuthenticationError, ResourceNotFoundError))

    member, member_chat = sdk.user()
    sdk.thread(owner_chat, thread_id).add_participants([ChatParticipant(identifier=member)])
    with pytest.raises(HttpResponseError) as not_sender:
        sdk.thread(member_chat, thread_id).delete_message(message_id)
    assert not_sender.value.status_code == 403 and "sender" in not_sender.value.message

    with pytest.raises(ResourceNotFoundError) as missing:
        sdk.thread(owner_chat, "19:nothing1@thread.v2").get_properties()
    assert missing.value.status_code == 404
    with pytest.raises(ResourceNotFoundError):
        sdk.thread(owner_chat, thread_id).get_message("42")

    issuer = TokenIssuer(b"not the emulator's key, 32 bytes!", sdk.resource_id)
    forged, _ = issuer.issue(owner.properties["id"], ["chat"], 0, 3600)
    with pytest.raises(ClientAuthenticationError) as unauthorized:
        sdk.thread(sdk.chat(forged), thread_id).get_properties()
    assert unauthorized.value.status_code == 401
    with pytest.raises(ClientAuthenticationError):
        list(sdk.chat(forged).list_chat_threads())

    ghost = CommunicationUserIdentifier(f"8:acs:{sdk.resource_id}_ghost")
    failed = sdk.thread(owner_chat, thread_id).add_participants([ChatParticipant(identifier=ghost)])
    ((participant, error),) = failed
    assert participant.identifier.properties["id"] == ghost.properties["id"] and error.code


def test_stop_with_sdk_keep_alive_connections_open_is_quiet() -> None:
    """The SDKs keep pooled TLS connections open; stopping must close them without a shutdown error."""
    emu = Emulator().start()
    with LogRecords() as logged:
        sdk = Sdk(emu.endpoint, emu.connection_string, str(emu.ca_cert))
        _, chat = sdk.user()
        thread_id = chat.create_chat_thread("keep-alive").chat_thread.id
        sdk.thread(chat, thread_id).send_message("open connection")
        emu.stop()
    assert logged.messages == []
    with pytest.raises(ConnectionRefusedError):  # really stopped
        socket.create_connection(("127.0.0.1", emu.port), timeout=5).close()
