"""Helpers of the export tests: a thread with every kind of message, the expected rows, a transport that
rewrites the wire, an export script killed mid-way."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

import chatnb
from chatnb.emulator import Emulator
from tests.support.clients import new_chat_user

__all__ = [
    "SYSTEM",
    "Rewriting",
    "RichThread",
    "assert_same_rows",
    "expected",
    "file_bytes",
    "local_files",
    "modes",
    "rich_thread",
    "run_until_killed",
    "token_of",
]

SYSTEM = ("topicUpdated", "participantAdded", "participantRemoved")


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
    chat, _ = new_chat_user(emu)
    other, other_id = new_chat_user(emu)
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
    thread.add_participants(
        [chatnb.ChatParticipant(chatnb.CommunicationUserIdentifier(other_id), display_name="Bob")]
    )
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
    result: pd.DataFrame = frame.reset_index(drop=True)
    return result


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame, columns: list[str] | None = None) -> None:
    cols = columns or list(want.columns)
    got = got.sort_values(["thread_id", "sequence_id"]).reset_index(drop=True)
    want = want.sort_values(["thread_id", "sequence_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[cols], want[cols], check_dtype=True)


def local_files(result: chatnb.ExportResult) -> list[Path]:
    """The files of an export to a local folder (paths, where a remote export has URLs)."""
    paths = [f for f in result.files if isinstance(f, Path)]
    assert len(paths) == len(result.files), result.files
    return paths


def file_bytes(paths: list[Any]) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in paths}


class Rewriting(httpx.BaseTransport):
    """A transport to the real emulator that rewrites what goes over the wire: request URLs on the way
    out, response bodies on the way back. It stands for a service whose data the emulator does not
    produce (ids of 300 characters, lone surrogates in JSON), so the export meets them through real HTTP.
    """

    def __init__(self, emu: Emulator, *, out: dict[str, str], back: dict[bytes, bytes]) -> None:
        self._inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(emu.ca_cert)))
        self._out = out
        self._back = back

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        for old, new in self._out.items():
            url = url.replace(old, new).replace(quote(old, safe=""), quote(new, safe=""))
        forwarded = httpx.Request(request.method, url, headers=request.headers, content=request.read())
        response = self._inner.handle_request(forwarded)
        body = response.read()
        for old_b, new_b in self._back.items():
            body = body.replace(old_b, new_b)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS]
        return httpx.Response(response.status_code, headers=headers, content=body)

    def close(self) -> None:
        self._inner.close()


_HOP_HEADERS = {"content-length", "content-encoding", "transfer-encoding"}


def token_of(chat: chatnb.ChatClient) -> str:
    return str(chat.credential.get_token().token)


def modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of everything below ``root`` (and ``root`` itself as ".")."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def run_until_killed(argv: list[str], pages: int, *, linger: float = 0.0) -> None:
    """Run an export script that prints its page count after each page; SIGKILL it once it printed
    ``pages`` (then ``linger`` seconds more, to land anywhere in the next page) or "done"."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == "done" or int(line) >= pages:
                break
        if linger:
            subprocess.run(["sleep", f"{linger:.4f}"], check=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
