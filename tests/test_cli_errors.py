"""Every command-line mistake gets one clear line on stderr (what went wrong, what to do) and exit code 2.

The commands run as real processes (``python -m chatnb``), so a traceback would show; each test names the
mistake it makes.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import chatnb
from chatnb.emulator import Emulator
from tests.support.kernel import chatnb_command
from tests.support.net import free_port
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_until


def one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a refused command (and nothing on stdout)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.endswith("\n"), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_busy_port() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        line = one_line(chatnb_command("serve", "--in-memory", "--port", str(port)))
    assert line == f"chatnb serve: port {port} on 127.0.0.1 is in use by another program; choose another port"


@pytest.mark.parametrize("port", ["99999", "-1", "https"])
def test_a_port_out_of_range(port: str) -> None:
    line = one_line(chatnb_command("serve", "--in-memory", "--port", port))
    assert line.startswith("chatnb serve: argument --port: ") and line.endswith("(see chatnb serve --help)")
    assert "0-65535" in line or "not a port number" in line


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.7"])
def test_a_host_that_is_not_this_machine(host: str) -> None:
    line = one_line(chatnb_command("serve", "--in-memory", "--host", host))
    assert line.startswith(f"chatnb serve: cannot listen on {host}:") and "such as 127.0.0.1" in line


def test_a_file_as_location(tmp_path: Path) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    assert one_line(chatnb_command("serve", "--location", str(afile))) == (
        f"chatnb serve: {afile} is a file, not a folder"
    )
    assert afile.read_text() == "mine"


def test_idle_timeout_without_a_location() -> None:
    line = one_line(chatnb_command("serve", "--in-memory", "--idle-timeout", "5"))
    assert line == "chatnb serve: --idle-timeout needs a location (leases are kept there), not --in-memory"


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only even for root (the immutable attribute), or by its mode for anyone else."""
    command = ["chattr", "+i", str(folder)] if os.geteuid() == 0 else ["chmod", "0500", str(folder)]
    subprocess.run(command, check=True)
    try:
        yield
    finally:
        undo = ["chattr", "-i", str(folder)] if os.geteuid() == 0 else ["chmod", "0700", str(folder)]
        subprocess.run(undo, check=True)


def test_a_read_only_location_new_or_used(tmp_path: Path) -> None:
    fresh, used = tmp_path / "fresh", tmp_path / "used"
    fresh.mkdir()
    with ServerProcess(["--location", str(used)], tmp_path / "logs"):
        pass
    before = sorted(p.name for p in used.iterdir())
    for folder in (fresh, used):
        with read_only(folder):
            line = one_line(chatnb_command("serve", "--location", str(folder)))
        assert line.startswith("chatnb serve: ") and str(folder) in line
        assert "Operation not permitted" in line or "Permission denied" in line or "unable to open" in line
    assert list(fresh.iterdir()) == [] and sorted(p.name for p in used.iterdir()) == before


def test_a_full_location_leaves_no_temporary_file(tmp_path: Path) -> None:
    where = tmp_path / "full"

    def full_disk() -> None:  # no file may grow: every write fails as on a full disk (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    result = subprocess.run(
        [sys.executable, "-m", "chatnb", "serve", "--location", str(where)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=full_disk,
    )
    assert one_line(result).startswith(
        f"chatnb serve: cannot write {where / 'emulator.json'}: File too large"
    )
    assert not [p for p in where.iterdir() if p.name.endswith(".tmp")]


def test_access_key_from_stdin_that_is_empty() -> None:
    assert one_line(chatnb_command("serve", "--in-memory", "--access-key", "-")) == (
        "chatnb serve: --access-key -: stdin gave no key"
    )


def test_connection_string_of_a_location_never_served(tmp_path: Path) -> None:
    where = tmp_path / "new"
    assert one_line(chatnb_command("connection-string", "--location", str(where))) == (
        f"chatnb connection-string: no emulator has served {where} yet: "
        f"start one with chatnb serve --location {where}"
    )
    port = free_port()
    assert one_line(chatnb_command("connection-string", "--port", str(port))) == (
        f"chatnb connection-string: no chatnb emulator is running on port {port} (see chatnb status)"
    )


def test_users_of_a_corrupt_users_file(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("[1, 2")
    line = one_line(chatnb_command("users", "--location", str(tmp_path)))
    assert line == (
        f"chatnb users: {tmp_path / 'users.json'} is not a valid chatnb users file: repair it or move it "
        "away (chatnb never overwrites it)"
    )


def test_no_command_and_an_unknown_one() -> None:
    assert one_line(chatnb_command()).startswith("chatnb: the following arguments are required: command")
    assert "invalid choice: 'serv'" in one_line(chatnb_command("serv"))
    assert one_line(chatnb_command("stop", "--all", "--location", "x")).startswith("chatnb stop: argument")


def test_version_is_one_line_on_stdout() -> None:
    result = chatnb_command("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"chatnb {chatnb.__version__}\n", "")


def test_bad_event_grid_and_clock_options() -> None:
    line = one_line(chatnb_command("serve", "--in-memory", "--event-grid", "ftp://x"))
    assert line.startswith("chatnb serve: the endpoint must be an http:// or https:// URL")
    assert line.endswith("not 'ftp://x'")
    assert "invalid choice: 'sideways'" in one_line(chatnb_command("serve", "--clock", "sideways"))


# -- the export command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, str, str]]:
    """An emulator on a location with a named user "me" in one thread of 30 messages."""
    where = tmp_path_factory.mktemp("named") / "emulator"
    with Emulator(where) as emu, chatnb.connect(emu.connection_string) as session:
        me = session.user("me")
        thread = me.create_thread("Thirty")
        for n in range(30):
            thread.send_message(f"m{n}")
        yield emu, thread.thread_id, me.credential.get_token().token


def export(emu: Emulator, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return chatnb_command("export", "--no-progress", "--endpoint", emu.endpoint, "--token", token, *args)


def test_export_out_at_a_file(named: tuple[Emulator, str, str], tmp_path: Path) -> None:
    emu, thread_id, token = named
    (tmp_path / "out").write_text("not a folder")
    line = one_line(export(emu, token, "--thread", thread_id, "--out", str(tmp_path / "out")))
    assert (
        line == f"chatnb export: --out {tmp_path / 'out'} is a file; name a folder (it is created if missing)"
    )


def test_export_of_a_thread_that_does_not_exist(named: tuple[Emulator, str, str], tmp_path: Path) -> None:
    emu, _, token = named
    line = one_line(export(emu, token, "--thread", "nope", "--out", str(tmp_path / "out")))
    assert line.startswith("chatnb export: 404 ThreadNotFound") and "--incremental" not in line
    assert line.endswith("check the --thread ids and the user (--all exports every thread the user is in)")


def test_export_all_for_an_unknown_user(named: tuple[Emulator, str, str], tmp_path: Path) -> None:
    emu, _, _ = named
    result = chatnb_command(
        "export", "--all", "--user", "nobody", "--connection-string", emu.connection_string,
        "--out", str(tmp_path / "out"), "--no-progress",
    )  # fmt: skip
    assert one_line(result) == (
        f"chatnb export: no user named 'nobody' at {emu.location} (named users: me); "
        "pass --user NAME, or --token"
    )
    assert not (tmp_path / "out").exists()


def test_ctrl_c_during_an_export_says_how_to_resume(tmp_path: Path) -> None:
    where = tmp_path / "emulator"
    with Emulator(where) as emu, chatnb.connect(emu.connection_string) as session:
        thread = session.user("me").create_thread("Long")
        for n in range(20):
            thread.send_message(f"m{n}")
    slow = [
        "--location",
        str(where),
        "--debug",
        "--faults",
        "1",
        "--fault-statuses",
        "",
        "--fault-delay-ms",
        "100",
    ]
    with ServerProcess(slow, tmp_path / "logs") as server:
        out = tmp_path / "out"
        command = [sys.executable, "-m", "chatnb", "export", "--all", "--format", "jsonl", "--page-size", "1"]
        command += ["--out", str(out), "--no-progress", "--connection-string", server.connection_string]
        export_run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(  # until the server has answered its first page of messages
            lambda: "/messages?" in server.output() or export_run.poll() is not None,
            "the export's first request for messages",
            60,
            interval=0.02,
        )
        export_run.send_signal(signal.SIGINT)  # 19 pages of 100 ms to go
        stdout, stderr = export_run.communicate(timeout=60)
    result = subprocess.CompletedProcess(command, export_run.returncode, stdout, stderr)
    assert one_line(result, 130) == (
        f"chatnb export: interrupted; {out} may be incomplete: run again with --incremental to resume where "
        "a run stops"
    )


def test_read_export_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the folder does not exist") as missing:
        chatnb.read_export(tmp_path / "nowhere")
    assert "format=" not in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no export files") as empty:
        chatnb.read_export(tmp_path / "empty")
    assert "format=" not in str(empty.value)


def test_a_port_another_emulator_serves(tmp_path: Path) -> None:
    with ServerProcess(["--in-memory"], tmp_path / "logs") as other:
        port = other.endpoint.rstrip("/").rsplit(":", 1)[1]
        line = one_line(chatnb_command("serve", "--location", str(tmp_path / "emu"), "--port", port))
    assert line == (
        f"chatnb serve: port {port} on 127.0.0.1 is in use by the chatnb emulator of memory "
        f"(pid {other.process.pid}); choose another port"
    )
