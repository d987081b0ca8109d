"""The emulator under connection-level abuse: big and endless bodies, huge heads, slowloris, fd exhaustion,
many event streams.

Each test runs the emulator as its own process (:class:`~tests.abuse_helpers.EmulatorProcess`) and talks
raw HTTP/1.1 over TCP and TLS, so what is checked is what the kernel sees: the server's answers, its open
files (``/proc/PID/fd``) and its memory (RSS, and the peak ``VmHWM``). The ``slow`` variants
(``make test-long``) run the same cases at full size and print their figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.support.net import read_response, request_bytes
from tests.support.processes import EmulatorProcess
from tests.support.waiting import wait_until
from tests.support.wire import CHAT_VERSION, IDENTITY_VERSION, User, Wire, q

IDENTITIES = f"/identities?api-version={IDENTITY_VERSION}"
THREADS = f"/chat/threads?api-version={CHAT_VERSION}"
MIB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout applies)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def upload(server: EmulatorProcess, size: int, *, chunked: bool) -> None:
    """POST ``size`` bytes to /identities without authentication, in 64 KiB writes; errors ignored."""
    headers = {"Content-Type": "application/json"}
    headers.update({"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)})
    piece = b"x" * 65536
    with contextlib.suppress(OSError), server.tls_connection(timeout=60) as sock:
        sock.sendall(request_bytes("POST", IDENTITIES, headers))
        for _ in range(size // len(piece)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        read_response(sock)


# -- 13: bodies and heads ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorProcess]:
    with EmulatorProcess() as proc:
        yield proc


@pytest.mark.parametrize("target", [IDENTITIES, THREADS], ids=["identity", "chat"])
def test_a_declared_big_body_is_refused_before_it_is_read(server: EmulatorProcess, target: str) -> None:
    """``Content-Length: 100 MiB`` and not one body byte sent: 413 at once, before authentication."""
    with server.tls_connection(timeout=20) as sock:
        sock.sendall(request_bytes("POST", target, {"Content-Length": str(100 * MIB)}))
        response = read_response(sock)
    assert response is not None and response.status == 413, response
    assert response.json()["error"]["code"] == "RequestEntityTooLarge"
    assert "1048576 bytes" in response.json()["error"]["message"]


def test_a_chunked_body_is_cut_off_at_the_cap(server: EmulatorProcess) -> None:
    """A chunked body that never ends: 413 once it passes 1 MiB, while the client is still sending."""
    with server.tls_connection(timeout=20) as sock:
        sock.sendall(request_bytes("POST", IDENTITIES, {"Transfer-Encoding": "chunked"}))
        piece = b"x" * 65536
        for _ in range(4 * MIB // len(piece)):  # 4 MiB, within what the server drains after answering
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        response = read_response(sock)
    assert response is not None and response.status == 413, response
    assert response.headers["content-type"].startswith("application/json")


def test_a_huge_request_head_is_refused(server: EmulatorProcess) -> None:
    """A 1 MiB header line: 431 with the ACS body, and the connection is closed."""
    with server.tls_connection(timeout=20) as sock:
        sock.sendall(b"GET " + THREADS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: ")
        with contextlib.suppress(OSError):
            for _ in range(16):
                sock.sendall(b"a" * 65536)
        response = read_response(sock)
        assert response is not None and response.status == 431, response
        assert response.json()["error"]["code"] == "RequestHeaderFieldsTooLarge"
        assert closed_by_server(sock) == b""


def big_uploads(server: EmulatorProcess, count: int, size: int) -> dict[str, int]:
    """``count`` concurrent unauthenticated ``size``-byte uploads; the server's memory around them."""
    before, peak_before = server.rss(), peak_rss(server.pid)
    threads = [
        threading.Thread(target=upload, args=(server, size), kwargs={"chunked": i % 2 == 0})
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert server.ask("GET", THREADS).status == 401  # still serving
    figures = {
        "rss_before_mb": before // MIB,
        "rss_after_mb": server.rss() // MIB,
        "peak_growth_mb": (peak_rss(server.pid) - peak_before) // MIB,
    }
    print(f"\n{count} x {size // MIB} MiB unauthenticated uploads: {figures}")
    return figures


def test_big_uploads_do_not_grow_the_server(server: EmulatorProcess) -> None:
    figures = big_uploads(server, 3, 32 * MIB)
    assert figures["peak_growth_mb"] < 24, figures


@pytest.mark.slow
def test_big_uploads_do_not_grow_the_server_long(server: EmulatorProcess) -> None:
    figures = big_uploads(server, 3, 100 * MIB)
    assert figures["peak_growth_mb"] < 32, figures


# -- 14: slowloris, idle connections, the connection cap ---------------------------------------


def slowloris(server: EmulatorProcess, partial: int, idle: int, bare: int) -> dict[str, int]:
    """Open ``partial`` connections with unfinished heads, ``idle`` silent after TLS and ``bare`` that
    never handshake; wait until the server has closed every one and its open files are back."""
    baseline = server.open_files()
    rss_before = server.rss()
    held: list[tuple[str, socket.socket]] = []
    try:
        for _ in range(partial):
            sock = server.tls_connection(timeout=30)
            sock.sendall(b"GET " + THREADS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            held.append(("partial", sock))
        held += [("idle", server.tls_connection(timeout=30)) for _ in range(idle)]
        held += [("bare", server.tcp(timeout=30)) for _ in range(bare)]
        opened = server.open_files()
        assert server.ask("GET", THREADS).status == 401  # the server answers meanwhile
        answers: dict[str, list[bytes]] = {kind: [] for kind in ("partial", "idle", "bare")}
        for kind, conn in held:
            answers[kind].append(closed_by_server(conn))
    finally:
        for _, conn in held:
            conn.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers["partial"]), answers["partial"][:2]
    assert all(a == b"" for a in answers["idle"] + answers["bare"])
    wait_until(lambda: server.open_files() <= baseline + 2, "the server closing its files")
    figures = {
        "connections_held": len(held),
        "open_files_baseline": baseline,
        "open_files_held": opened,
        "open_files_after": server.open_files(),
        "rss_before_mb": rss_before // MIB,
        "rss_after_mb": server.rss() // MIB,
    }
    print(f"\nslowloris {partial} partial + {idle} idle + {bare} bare: {figures}")
    return figures


def test_slow_and_silent_connections_are_closed() -> None:
    limits = {"header_timeout": 2.0, "handshake_timeout": 2.0}
    with EmulatorProcess(limits=limits) as server:
        figures = slowloris(server, partial=20, idle=10, bare=5)
    assert figures["open_files_held"] > figures["open_files_baseline"] + 10  # the server did hold them


@pytest.mark.slow
def test_slow_and_silent_connections_are_closed_long() -> None:
    limits = {"header_timeout": 2.0, "handshake_timeout": 2.0}
    with EmulatorProcess(limits=limits) as server:
        slowloris(server, partial=300, idle=100, bare=50)


def exhaust(server: EmulatorProcess, count: int, nofile: int) -> dict[str, int]:
    """``count`` unfinished heads against an open-file limit of ``nofile``: the server keeps answering."""
    held: list[ssl.SSLSocket] = []
    most = 0
    try:
        for i in range(count):
            sock = server.tls_connection(timeout=30)
            sock.sendall(b"GET " + THREADS.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(sock)
            if i % 25 == 0:
                most = max(most, server.open_files())
        assert server.ask("GET", THREADS).status == 401, "the server stopped answering"
        most = max(most, server.open_files())
        room = count - nofile
        wait_until(lambda: sum(closed(sock) for sock in held) >= room, f"{room} connections displaced")
        displaced = sum(closed(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
    figures = {"connections_opened": count, "open_files_most": most, "displaced": displaced, "nofile": nofile}
    print(f"\n{count} unfinished heads with {nofile} files: {figures}")
    assert most < nofile
    return figures


def closed(sock: ssl.SSLSocket) -> bool:
    """Whether the server has closed ``sock`` (without waiting for it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_unfinished_heads_cannot_exhaust_the_open_files() -> None:
    """300 connections against a 256-file limit: the oldest waiting ones make room, requests still work."""
    with EmulatorProcess(limits={"header_timeout": 60.0}, nofile=256) as server:
        figures = exhaust(server, 300, 256)
    assert figures["displaced"] >= 300 - 256


@pytest.mark.slow
def test_unfinished_heads_cannot_exhaust_the_open_files_long() -> None:
    with EmulatorProcess(limits={"header_timeout": 120.0}, nofile=256) as server:
        figures = exhaust(server, 1000, 256)
    assert figures["displaced"] >= 1000 - 256


# -- 14: event streams per user, many subscribers ----------------------------------------------


def test_a_user_gets_a_bounded_number_of_event_streams() -> None:
    with EmulatorProcess(limits={"max_streams_per_user": 3}) as server:
        wire = Wire.connect(server.info["connection_string"], server.info["ca_cert"])
        user = wire.new_user()
        stream = f"/chatnb/events?api-version={CHAT_VERSION}"
        auth = {"Authorization": f"Bearer {user.token}"}
        with contextlib.ExitStack() as streams:
            for _ in range(3):
                response = streams.enter_context(wire.http.stream("GET", stream, headers=auth))
                assert response.status_code == 200
            refused = wire.chat("GET", "/chatnb/events", user)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "TooManyEventStreams"
            assert refused.headers["retry-after"] == "1"
            assert wire.chat("GET", "/chat/threads", user).status_code == 200  # other calls go on

        def admitted() -> bool:  # once the server has seen the three streams end
            with wire.http.stream("GET", stream, headers=auth) as response:
                return response.status_code == 200

        wait_until(admitted, "a stream admitted again after the others closed")
        wire.close()


async def subscribers(server: EmulatorProcess, count: int) -> dict[str, int]:
    """``count`` users each hold a stream of one thread; one message reaches every stream."""
    wire = Wire.connect(server.info["connection_string"], server.info["ca_cert"])
    users = [wire.new_user() for _ in range(count)]
    owner = users[0]
    thread = wire.create_thread(owner, "crowd", *users[1:200])
    for start in range(200, count, 200):  # at most 200 participants per request
        added = [u.participant() for u in users[start : start + 200]]
        path = f"/chat/threads/{q(thread)}/participants/:add"
        assert wire.chat("POST", path, owner, {"participants": added}).status_code == 201
    rss_before, files_before = server.rss(), server.open_files()
    verify = ssl.create_default_context(cafile=server.info["ca_cert"])
    limits = httpx.Limits(max_connections=count + 10)
    async with httpx.AsyncClient(base_url=server.info["endpoint"], verify=verify, limits=limits) as http:
        connected = 0
        all_connected = asyncio.Event()

        async def listen(user: User) -> str:
            nonlocal connected
            headers = {"Authorization": f"Bearer {user.token}"}
            async with http.stream("GET", f"/chatnb/events?api-version={CHAT_VERSION}", headers=headers) as r:
                assert r.status_code == 200
                event = ""
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: ") and event == "realTimeNotificationConnected":
                        connected += 1
                        if connected == count:
                            all_connected.set()
                    elif line.startswith("data: ") and event == "chatMessageReceived":
                        return str(json.loads(line.removeprefix("data: "))["message"])
            return ""

        tasks = [asyncio.ensure_future(listen(u)) for u in users]
        await asyncio.wait_for(all_connected.wait(), 60)
        files_held, rss_held = server.open_files(), server.rss()
        await asyncio.to_thread(wire.send, thread, owner, "to everyone")
        received = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    wire.close()
    assert received == ["to everyone"] * count
    figures = {
        "streams": count,
        "open_files_before": files_before,
        "open_files_held": files_held,
        "rss_before_mb": rss_before // MIB,
        "rss_held_mb": rss_held // MIB,
        "rss_after_mb": server.rss() // MIB,
    }
    print(f"\n{count} subscribers: {figures}")
    return figures


async def test_many_subscribers_each_get_the_message() -> None:
    with EmulatorProcess() as server:
        figures = await subscribers(server, 20)
    assert figures["open_files_held"] >= figures["open_files_before"] + 20


@pytest.mark.slow
async def test_many_subscribers_each_get_the_message_long() -> None:
    with EmulatorProcess() as server:
        await subscribers(server, 240)
