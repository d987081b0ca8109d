"""Locations shared by real processes: kernels and scripts that connect, restart, crash, stop and trust.

Each test runs its kernels (:class:`~tests.kernel_helpers.Kernel`) and ``chatnb`` commands as separate
processes on a ``CHATNB_HOME`` of its own, and stops whatever they left running.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import chatnb
from chatnb import location
from chatnb.emulator import Emulator
from chatnb.errors import TransportError
from tests.support.kernel import Kernel, KernelError, chatnb_command
from tests.support.net import free_port
from tests.support.processes import ServerProcess

CONNECT = (
    "import chatnb\nsession = chatnb.connect({args})\nresult = [session.endpoint, session.started_emulator]"
)
GONE_S = 60.0  # an upper bound, never a sleep: wait_gone returns as soon as the process has ended


@pytest.fixture
def kernels(tmp_path: Path, home: Path) -> Iterator[Callable[[], Kernel]]:
    """Start kernels on ``home``; at the end they are closed and what they started is stopped."""
    started: list[Kernel] = []

    def start() -> Kernel:
        started.append(Kernel(tmp_path / "logs", CHATNB_HOME=str(home)))
        return started[-1]

    yield start
    for kernel in started:
        kernel.close()
    location.stop_all(under=tmp_path)


def _pid(where: Path) -> int:
    info = location.read_server_info(where)
    assert info is not None, f"nothing announced in {where}"
    return int(info["pid"])


def test_named_users_and_their_threads_survive_a_restart(kernels: Callable[[], Kernel], home: Path) -> None:
    first = kernels()
    endpoint, started = first.run(CONNECT.format(args=""))
    assert started
    jack_id, thread_id = first.run(
        "jack = session.user('Jack')\n"
        "thread = jack.create_thread('Lunch', participants=['Jill'])\n"
        "thread.send_message('Pizza?')\n"
        "result = [jack.id, thread.thread_id]"
    )
    connection_string = first.run("result = session.connection_string")
    assert first.run("result = session.stop()") is True
    first.close()
    assert location.read_server_info(home / "emulator") is None

    again = kernels()
    assert again.run(CONNECT.format(args="")) == [endpoint, True]  # a new process, on the location's port
    assert again.run("result = session.connection_string") == connection_string
    jack, threads, last = again.run(
        "jack, jill = session.user('Jack'), session.user('Jill')\n"
        f"result = [jack.id, list(jack.threads()['id']), jill.thread({thread_id!r}).list_messages()]"
        "\nresult[2] = [result[2]['content'].iloc[-1], result[2]['sender_display_name'].iloc[-1]]"
    )
    assert jack == jack_id and threads == [thread_id] and last == ["Pizza?", "Jack"]
    assert set(location.read_users(home / "emulator")) == {"Jack", "Jill"}


def test_one_session_closing_or_crashing_changes_nothing_for_another(
    kernels: Callable[[], Kernel], home: Path
) -> None:
    a, b, c = kernels(), kernels(), kernels()
    assert a.run(CONNECT.format(args=""))[1] is True
    assert b.run(CONNECT.format(args=""))[1] is False
    assert c.run(CONNECT.format(args=""))[1] is False
    pid = _pid(home / "emulator")
    b.run("geeta = session.user('Geeta')\nthread = geeta.create_thread('Still here?')")
    assert location.count_leases(home / "emulator") == 3

    a.run("session.close()")  # the starter's last cell
    a.close()
    c.kill()  # a crashed kernel: its lease goes with it
    assert location.count_leases(home / "emulator") == 1
    assert b.run("result = thread.send_message('yes').id")
    assert b.run("result = list(thread.list_messages()['content'])")[-1] == "yes"
    assert _pid(home / "emulator") == pid and location.pid_alive(pid)


def test_an_unused_emulator_stops_by_itself(kernels: Callable[[], Kernel], home: Path) -> None:
    kernel = kernels()
    kernel.run(CONNECT.format(args="idle_timeout=0.5"))
    pid = _pid(home / "emulator")
    kernel.kill()  # not even closed: the lease ends with the process
    assert location.wait_gone(pid, GONE_S)
    assert location.read_server_info(home / "emulator") is None
    assert "stops when unused:  after 0.5 s" in (home / "emulator" / "emulator.log").read_text()


def test_a_temporary_emulator_goes_with_its_last_session(kernels: Callable[[], Kernel]) -> None:
    kept = kernels()
    where = Path(
        kept.run("import chatnb\nsession = chatnb.connect(temporary=True)\nresult = str(session.location)")
    )
    assert where.name.startswith("chatnb-temporary-") and stat.S_IMODE(where.stat().st_mode) == 0o700
    assert kept.run("result = session.stop()") is True
    assert not where.exists()

    left = kernels()
    where = Path(
        left.run("import chatnb\nsession = chatnb.connect(temporary=True)\nresult = str(session.location)")
    )
    pid = _pid(where)
    left.close()  # the kernel shuts down without stopping it
    assert location.wait_gone(pid, GONE_S)
    assert not where.exists()


def test_serve_in_memory_on_a_port_is_trusted_by_connect(
    kernels: Callable[[], Kernel], tmp_path: Path
) -> None:
    port = free_port()
    with ServerProcess(["--in-memory", "--port", str(port)], tmp_path / "serve") as server:
        assert server.endpoint == f"https://127.0.0.1:{port}/"
        kernel = kernels()  # another process, no connection_verify: the registry vouches
        assert kernel.run(
            f"import chatnb\nsession = chatnb.connect({server.connection_string!r})\n"
            "result = [session.is_emulator, session.user('Ann').threads().empty]"
        ) == [True, True]
        with chatnb.connect(server.connection_string) as session:  # and this one
            bea = session.user("Bea")
            assert session.is_emulator and bea.threads().empty
            # trusting only the system's certificates fails, and the error names the PEM to use
            with (
                chatnb.ChatClient(session.endpoint, bea.credential, connection_verify=True) as plain,
                pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED") as caught,
            ):
                plain.list_chat_threads()
        assert f"connection_verify={server.ca_cert!r}" in str(caught.value)
        assert (
            chatnb_command("connection-string", "--port", str(port)).stdout.strip()
            == server.connection_string
        )


def test_a_certificate_failure_names_the_pem_to_use(tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    with Emulator() as emu, Emulator(tmp_path / "second") as second:
        other.write_bytes(second.ca_cert.read_bytes())
        token = chatnb.CommunicationIdentityClient.from_connection_string(emu.connection_string)
        with token:
            _, access = token.create_user_and_token(["chat"])
        with (
            chatnb.ChatClient(emu.endpoint, access.token, connection_verify=str(other)) as chat,
            pytest.raises(TransportError) as caught,
        ):
            chat.list_chat_threads()
        message = str(caught.value)
        assert "CERTIFICATE_VERIFY_FAILED" in message and f"connection_verify={str(emu.ca_cert)!r}" in message


async def test_the_async_client_names_the_pem_too(tmp_path: Path) -> None:
    with Emulator() as emu, Emulator(tmp_path / "second") as second:
        async with chatnb.aio.CommunicationIdentityClient(
            emu.endpoint, emu.access_key, connection_verify=str(second.ca_cert)
        ) as identity:
            with pytest.raises(TransportError) as caught:
                await identity.create_user()
        assert f"connection_verify={str(emu.ca_cert)!r}" in str(caught.value)


def test_status_and_stop_see_and_stop_what_connect_started(kernels: Callable[[], Kernel], home: Path) -> None:
    kernel = kernels()
    endpoint = kernel.run(CONNECT.format(args=""))[0]
    kernel.run("session.user('Jack')\nsession.user('Jill')")
    pid = _pid(home / "emulator")
    status = chatnb_command("status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = [row for row in json.loads(status.stdout) if row["location"] == str(home / "emulator")]
    assert row["endpoint"].rstrip("/") == endpoint and row["pid"] == pid
    assert row["sessions"] == 1 and row["users"] == 2 and row["uptime_s"] >= 0
    table = chatnb_command("status").stdout
    assert str(home / "emulator") in table and endpoint in table and str(pid) in table
    users = chatnb_command("users").stdout.splitlines()
    assert [line.split()[0] for line in users] == ["Jack", "Jill"] and all("8:acs:" in x for x in users)

    stopped = chatnb_command("stop")
    assert stopped.returncode == 0 and stopped.stdout.startswith(
        f"stopped the emulator of {home / 'emulator'}"
    )
    assert not location.pid_alive(pid) and location.read_server_info(home / "emulator") is None
    with pytest.raises(KernelError, match="TransportError"):
        kernel.run("session.user('Jack').threads()")  # stopped for every session, as documented
    assert pid not in [row["pid"] for row in json.loads(chatnb_command("status", "--json").stdout)]
    assert chatnb_command("stop").stdout.strip() == f"no emulator is running at {home / 'emulator'}"


def test_stop_all_stops_every_emulator_of_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # a registry of this test's own
    with (
        ServerProcess(["--in-memory"], tmp_path / "a") as memory,
        ServerProcess(["--location", str(tmp_path / "loc")], tmp_path / "b") as located,
    ):
        assert {row["pid"] for row in location.running()} == {memory.process.pid, located.process.pid}
        out = chatnb_command("stop", "--all").stdout
        assert memory.process.wait(GONE_S) == 0 and located.process.wait(GONE_S) == 0
        assert (
            out.count("stopped the emulator at") == 2 and "in memory" in out and str(tmp_path / "loc") in out
        )
    assert (
        location.running() == []
        and chatnb_command("stop", "--all").stdout.strip() == "no chatnb emulator is running"
    )


def test_a_location_keeps_its_port_and_says_so_when_it_is_taken(tmp_path: Path, home: Path) -> None:
    where = tmp_path / "emu"
    with ServerProcess(["--location", str(where)], tmp_path / "logs") as first:  # --port 0: a free one
        port = int(first.endpoint.rstrip("/").rsplit(":", 1)[1])
    assert location.load_identity(where).port == port
    session = chatnb.connect(location=where)  # starts `chatnb serve --location` again, with no --port
    assert session.started_emulator and session.endpoint == f"https://127.0.0.1:{port}"
    assert session.connection_string == first.connection_string.replace("/;", "/;", 1)
    assert session.stop() is True

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        refused = chatnb_command("serve", "--location", str(where))
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr == (
            f"chatnb serve: port {port} on 127.0.0.1 is in use by another program; choose another port\n"
        )
        with pytest.raises(location.LocationError, match=f"exited with code 2: chatnb serve: port {port}"):
            chatnb.connect(location=where)
    assert not list(where.glob("*.tmp")) and location.read_server_info(where) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", ".chatnb/emulator", id="empty"),
        pytest.param("  ", ".chatnb/emulator", id="blank"),
        pytest.param("~/chat home", "chat home/emulator", id="tilde"),
    ],
)
def test_serve_and_connect_agree_on_the_default_folder(
    value: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("CHATNB_HOME", value)
    folder = tmp_path / "user" / expected
    assert location.default_location() == folder
    with ServerProcess([], tmp_path / "logs") as server:  # chatnb serve, no --location
        assert server.output().splitlines()[1].split(":", 1)[1].strip() == str(folder)
        with chatnb.connect() as session:
            assert session.location == folder and not session.started_emulator
            assert session.endpoint == server.endpoint.rstrip("/")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_zombie_is_not_alive_and_stop_does_not_wait_for_it(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has ended, and is not reaped yet
    os.kill(child.pid, 0)  # which kill(pid, 0) cannot tell
    assert not location.pid_alive(child.pid) and location.wait_gone(child.pid, 0)
    child.wait()
    with Emulator(tmp_path / "own") as emu:  # announced by a kernel, not by chatnb serve: left alone
        assert emu.location is not None and location.stop_announced(emu.location) is False
        assert location.live_emulator(emu.location) is not None


def test_an_emulator_refused_its_port_releases_its_location(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(location.PortInUse, match=f"port {port} on 127.0.0.1 is in use"):
            Emulator(tmp_path / "emu", port=port).start()
    with Emulator(tmp_path / "emu", port=0) as emu:  # not LocationInUse: the refused one let go
        assert emu.port != 0 and location.load_identity(tmp_path / "emu").port == emu.port
