"""The transcript's wire protocol, without a kernel: what the widgets send the browser, and what they do
with what the browser sends (``tests/widget_helpers.FrontEnd`` records their comms and speaks for the
browser). Against the real emulator; every wait is on a message or a job, never a sleep.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

import chatnb
from chatnb.widgets import ChatPanel, ChatView, MessageComposer, ParticipantList
from chatnb.widgets._transcript import Transcript, TranscriptItem
from chatnb.widgets._worker import flush
from tests.support.clients import text_of
from tests.support.widgets import Chat, FrontEnd, load_job

WAIT = 30.0


def item(i: int, sender: str = "8:acs:jack", text: str = "hi") -> TranscriptItem:
    when = datetime.fromtimestamp(1_700_000_000 + i * 60, timezone.utc)
    return TranscriptItem(str(1_700_000_000_000 + i * 60_000), "text", sender, "Jack", text, when)


def test_transcript_ops_are_adds_patches_and_removes_by_id() -> None:
    transcript = Transcript("8:acs:jack")
    first = transcript.upsert(item(1, text="see https://example.org"))
    assert first is not None and first["op"] == "add"
    m = first["m"]
    assert m["id"] == "1700000060000" and m["k"] == 1700000060000 and m["s"] == "8:acs:jack"
    assert m["x"] == "see https://example.org"  # own: the raw text travels, for editing
    assert '<a href="https://example.org"' in m["h"]
    assert transcript.upsert(item(1, text="see https://example.org")) is None  # no change, nothing sent
    other = transcript.upsert(item(2, sender="8:acs:geeta", text="<b>x</b>"))
    assert other is not None and "x" not in other["m"] and other["m"]["h"] == "&lt;b&gt;x&lt;/b&gt;"
    edited = transcript.update(item(1).id, content="fixed", edited_on=datetime.now(timezone.utc))
    assert edited is not None and edited["op"] == "patch"
    assert set(edited["m"]) == {"h", "x", "e"}  # only what changed
    deleted = transcript.update(item(1).id, content="", deleted_on=datetime.now(timezone.utc))
    assert deleted is not None and deleted["m"]["d"] == 1
    assert deleted["m"]["h"] is None and deleted["m"]["x"] is None and deleted["m"]["e"] is None
    assert transcript.remove(item(2).id) == {"op": "remove", "id": item(2).id}
    assert transcript.remove(item(2).id) is None
    for i in range(3, 13):
        transcript.upsert(item(i))
    latest = transcript.latest(4)
    assert [w["id"] for w in latest] == [item(i).id for i in range(9, 13)]
    older, more = transcript.before(item(9).key, 5)
    assert [w["id"] for w in older] == [item(i).id for i in range(4, 9)] and more
    older, more = transcript.before(item(4).key, 5)
    assert [w["id"] for w in older] == [item(1).id, item(3).id] and not more


def test_a_view_opens_with_the_latest_window_and_pages_back_to_the_first_message(
    chat: Chat, front: FrontEnd
) -> None:
    _session, _jack, geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    ids = [thread.send_message(f"m{i}").id for i in range(130)]
    view = ChatView(geeta, thread.thread_id, max_messages=50)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    mark = front.mark()
    front.say(view, {"op": "hello", "view": "v1"})
    reset = front.wait_op(view, "reset", mark, to="v1")
    assert reset["more"] and reset["status"] == "ready"
    seen = [m["id"] for m in reset["messages"]]
    assert seen == ids[-len(seen) :] and len(seen) <= 60
    oldest = reset["messages"][0]
    pages = 0
    while True:
        mark = front.mark()
        front.say(view, {"op": "older", "view": "v1", "k": oldest["k"], "id": oldest["id"], "n": 40})
        reply = front.wait_op(view, "older", mark, to="v1")
        pages += 1
        seen = [m["id"] for m in reply["messages"]] + seen
        if not reply["more"]:
            break
        oldest = reply["messages"][0]
    assert [s for s in seen if s in ids] == ids  # every message, in order, down to the first
    assert len(seen) == len(set(seen)) and pages >= 3
    assert not view.has_older
    assert [i.id for i in view.items if not i.system] == ids
    view.close()


@pytest.mark.parametrize("held", [pytest.param(5, id="5-held"), pytest.param(400, id="400-held")])
def test_an_incoming_message_is_one_small_op_whatever_the_view_holds(
    chat: Chat, front: FrontEnd, held: int
) -> None:
    _session, _jack, geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    for i in range(held):
        thread.send_message(f"history {i}")
    view = ChatView(geeta, thread.thread_id, max_messages=100)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    view.load_all()
    flush()
    assert len([i for i in view.items if not i.system]) == held
    mark = front.mark()
    sent = thread.send_message("Lunch at noon? https://example.org/menu").id
    op = front.wait_op(view, "add", mark)
    assert op["m"]["id"] == sent and "https://example.org/menu" in op["m"]["h"]
    assert flush() and [c["op"] for c in front.custom(view, mark)] == ["add"]  # one op, not a re-render
    assert front.bytes(mark) < 2048
    mark = front.mark()
    thread.update_message(sent, "Lunch at one?")
    patch = front.wait_op(view, "patch", mark, id=sent)
    assert set(patch["m"]) == {"h", "e"}
    mark = front.mark()
    thread.delete_message(sent)
    gone = front.wait_op(view, "patch", mark, id=sent)
    assert gone["m"]["d"] == 1 and gone["m"]["h"] is None
    view.close()


def test_sending_shows_on_the_bubble_then_failed_with_retry(chat: Chat, front: FrontEnd) -> None:
    session, jack, _geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    view = ChatView(jack, thread.thread_id)
    composer = MessageComposer(jack, thread.thread_id)
    view.follow(composer.outbox)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    mark = front.mark()
    front.say(composer, {"op": "send", "text": "Hello\nGeeta", "local": "local-a-1"})
    front.say(composer, {"op": "send", "text": "Hello\nGeeta", "local": "local-a-1"})  # a resent request
    added = front.wait_op(view, "add", mark)
    assert (
        added["m"]["id"] == "local-a-1"
        and added["m"]["st"] == "sending"
        and added["m"]["h"] == "Hello<br>Geeta"
    )

    def real() -> list[dict[str, Any]]:  # the bubble becomes the message in one op (or its echo does)
        ops = front.custom(view, mark)
        return [c["m"] for c in ops if c["op"] in ("replace", "add") and c["m"]["id"].isdigit()]

    (message,) = front.wait(real)
    replaced = [c for c in front.custom(view, mark) if c.get("id") == "local-a-1"]
    assert [c["op"] for c in replaced] == ["replace"]
    assert "st" not in message and front.wait(
        lambda: (entry := composer.outbox.get("local-a-1")) and entry.state == "sent"
    )
    assert composer.sent == 1  # sent once
    front.wait(lambda: composer.last_message_id)
    assert composer.last_message_id == message["id"]
    view.close()
    composer.close()

    # Jack is not in this thread: the send fails, the bubble says so, Retry tries again.
    other = session.user("Sam").create_thread("Not Jack's")
    view = ChatView(jack, other.thread_id)
    composer = MessageComposer(jack, other.thread_id)
    view.follow(composer.outbox)
    mark = front.mark()
    job = composer.send("let me in", local_id="local-b-1")
    with pytest.raises(chatnb.ChatError):
        job.result(WAIT)
    failed = front.wait_op(view, "patch", mark, id="local-b-1")
    assert failed["m"]["st"] == "failed" and "403" in failed["m"]["err"]
    assert composer.state["state"] == "failed" and "Not sent" in composer.state["text"]
    assert isinstance(composer.last_error, chatnb.ChatError)
    mark = front.mark()
    front.say(view, {"op": "retry", "id": "local-b-1"})
    retried = front.wait(lambda: [c["m"].get("st") for c in front.custom(view, mark) if c["op"] == "patch"])
    assert retried[0] == "sending"
    front.wait(lambda: "failed" in [c["m"].get("st") for c in front.custom(view, mark) if c["op"] == "patch"])
    view.close()
    composer.close()


def test_own_messages_are_edited_and_deleted_from_the_transcript(chat: Chat, front: FrontEnd) -> None:
    _session, jack, geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    mine = thread.send_message("Thnaks!").id
    theirs = geeta.thread(thread.thread_id).send_message("Not yours").id
    view = ChatView(jack, thread.thread_id)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    mark = front.mark()
    front.say(view, {"op": "edit", "id": mine, "text": "Thanks!"})
    front.wait(
        lambda: [c for c in front.custom(view, mark) if c["op"] == "patch" and c["m"].get("st") is None]
    )
    patches = [c for c in front.custom(view, mark) if c["op"] == "patch"]
    assert patches[0]["m"]["st"] == "saving"  # at once, before the service answered
    assert text_of(thread.get_message(mine)) == "Thanks!"
    front.say(view, {"op": "edit", "id": theirs, "text": "hijacked"})  # not Jack's: ignored
    assert view.edit(theirs, "hijacked") is None
    mark = front.mark()
    front.say(view, {"op": "delete", "id": mine})
    front.wait(lambda: [c for c in front.custom(view, mark) if c["op"] == "patch" and c["m"].get("d") == 1])
    assert thread.get_message(mine).deleted_on is not None
    assert text_of(geeta.thread(thread.thread_id).get_message(theirs)) == "Not yours"
    kept = thread.send_message("keep me").id
    front.wait(lambda: any(i.id == kept for i in view.items))
    with pytest.raises(ValueError, match="empty"):
        view.edit(kept, "  ")
    front.say(view, {"op": "edit", "id": kept, "text": " "})  # from the browser: shown, not raised
    assert "empty" in view.error
    view.close()


class GatedTransport(httpx.BaseTransport):
    """The real HTTP transport, holding read receipts until the test opens the gate (so that requests
    provably arrive while one is in flight)."""

    def __init__(self, verify: Any) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.gate = threading.Event()
        self.receipts: list[str] = []
        self.lock = threading.Condition()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/readReceipts") and request.method == "POST":
            self.gate.wait(WAIT)
            response = self.inner.handle_request(request)
            response.read()
            with self.lock:
                self.receipts.append(request.content.decode())
                self.lock.notify_all()
            return response
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_read_receipts_go_out_for_what_was_seen_coalesced(chat: Chat, front: FrontEnd) -> None:
    _session, jack, geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    ids = [thread.send_message(f"m{i}").id for i in range(8)]
    base = geeta.thread(thread.thread_id)
    gated = GatedTransport(base.connection_verify)
    client = chatnb.ChatThreadClient(base.endpoint, base.credential, thread.thread_id, transport=gated)
    view = ChatView(client, chat_client=geeta.chat_client, user_id=geeta.id, send_read_receipts=True)
    load_job(view).result(WAIT)
    flush()  # its opening messages are out
    for message_id in ids:  # the browser reports each message as it scrolls into sight
        front.say(view, {"op": "seen", "id": message_id})
    front.say(view, {"op": "seen", "id": ids[2]})  # an older one: already covered
    assert view.receipts_sent == 1  # the first is in flight, the rest wait as one
    gated.gate.set()
    with gated.lock:
        assert gated.lock.wait_for(lambda: len(gated.receipts) == 2, WAIT)
    assert view.receipts_sent == 2 and ids[-1] in gated.receipts[-1] and ids[0] in gated.receipts[0]
    assert [
        r.chat_message_id for r in thread.iter_read_receipts() if r.sender and r.sender.raw_id == geeta.id
    ] == [ids[-1]]
    own = ChatView(jack, thread.thread_id, send_read_receipts=True)
    load_job(own).result(WAIT)
    flush()  # its opening messages are out
    assert not own.mark_seen(ids[-1])  # never for your own messages
    view.close()
    own.close()
    client.close()


def test_no_widget_is_left_open(chat: Chat, front: FrontEnd) -> None:
    session, jack, _geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    baseline = front.open_widgets()
    people = ParticipantList(jack, thread.thread_id)
    load_job(people).result(WAIT)
    flush()  # its opening messages are out
    after_open = front.open_widgets()
    for name in ("Priya", "Sam"):
        people.add(name).result(WAIT)  # type: ignore[union-attr]
    for _ in range(5):
        people.refresh()
    people.remove(session.user("Sam").id).result(WAIT)
    assert sorted(people.participants.values()) == ["Geeta", "Jack", "Priya"]
    assert front.open_widgets() == after_open  # re-rendering opens nothing
    people.close()
    assert front.open_widgets() == baseline
    panel = ChatPanel(jack, thread.thread_id)
    load_job(panel.view).result(WAIT)
    panel.close()
    assert front.open_widgets() == baseline  # every part and layout box closed


def test_every_widget_carries_a_static_snapshot(chat: Chat, front: FrontEnd) -> None:
    _session, _jack, geeta, thread = chat.session, chat.jack, chat.geeta, chat.thread(chat.jack)
    thread.send_message('<img src="https://127.0.0.1:9/x.png" alt="cat"> <b>hi</b>', chat_message_type="html")
    thread.send_message("plain <script>alert(1)</script>")
    panel = ChatPanel(geeta, thread.thread_id)
    data, _ = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert "<b>hi</b>" in html and "<img" not in html and "[image: cat]" in html
    assert "&lt;script&gt;" in html and "<script" not in html
    assert '<time datetime="' in html and "UTC</time>" in html
    assert "Jack" in html and "Geeta (you)" in html
    for part in (panel.view, panel.composer, panel.participants, panel.event_log):
        assert part is not None
        bundle, _ = part._repr_mimebundle_()
        assert bundle["text/html"].startswith('<div class="chatnb-snapshot')
    panel.close()
