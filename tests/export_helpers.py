"""Helpers of the export tests: users, a thread with every kind of message, the expected rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

import chatnb
from chatnb.emulator import Emulator

SYSTEM = ("topicUpdated", "participantAdded", "participantRemoved")


def new_user(emu: Emulator) -> tuple[chatnb.ChatClient, str]:
    with chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string) as ident:
        user, token = ident.create_user_and_token(["chat"])
    return chatnb.ChatClient(emu.endpoint, token.token), user.raw_id


@dataclass
class RichThread:
    chat: chatnb.ChatClient
    thread: chatnb.ChatThreadClient
    thread_id: str
    topic: str
    other: chatnb.ChatClient
    other_id: str


def rich_thread(emu: Emulator, *, messages: int = 40) -> RichThread:
    """A thread with text and html messages, metadata, an edit, a delete and every system message."""
    chat, _ = new_user(emu)
    other, other_id = new_user(emu)
    created = chat.create_chat_thread('Quarterly <review> & "plans"')
    thread = chat.get_chat_thread_client(created.chat_thread.id)
    ids = []
    for i in range(messages):
        meta = {"n": str(i), "tag": "x,y"} if i % 5 == 0 else None
        ids.append(
            thread.send_message(
                f'line {i}: a, "quoted"\nsecond line <b>', sender_display_name="Ann", metadata=meta
            ).id
        )
    thread.send_message(
        '<p>Hi <b>there</b><script>alert("x")</script><a href="javascript:evil()">x</a></p>',
        chat_message_type="html",
        sender_display_name="Ann",
    )
    thread.add_participants([chatnb.ChatParticipant(other_id, display_name="Bob")])
    other.get_chat_thread_client(thread.thread_id).send_message("hello from Bob", sender_display_name="Bob")
    thread.update_message(ids[3], "line 3, edited")
    thread.delete_message(ids[4])
    thread.update_topic("Quarterly review (final)")
    thread.remove_participant(other_id)
    topic = thread.get_properties().topic
    return RichThread(chat, thread, thread.thread_id, topic, other, other_id)


def expected(
    thread: chatnb.ChatThreadClient,
    topic: str,
    *,
    include_system: bool = False,
    include_deleted: bool = False,
) -> pd.DataFrame:
    """What an export of ``thread`` should read back as: ``list_messages`` plus the thread columns."""
    frame = thread.list_messages()
    if not include_system:
        frame = frame[~frame["type"].isin(SYSTEM)]
    if not include_deleted:
        frame = frame[frame["deleted_on"].isna()]
    frame = frame.assign(
        thread_id=pd.array([thread.thread_id] * len(frame), dtype="string"),
        thread_topic=pd.array([topic] * len(frame), dtype="string"),
    )
    return frame.reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, columns: list[str] | None = None) -> None:
    cols = columns or list(want.columns)
    got = got.sort_values(["thread_id", "sequence_id"]).reset_index(drop=True)
    want = want.sort_values(["thread_id", "sequence_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=True)


def file_bytes(paths: list[Any]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in paths}
