"""The notebook front door: ``chatnb.connect()`` and named users.

>>> session = chatnb.connect()                 # the local emulator, started or reused
>>> jack, jill = session.user("Jack"), session.user("Jill")
>>> thread = jack.create_thread("Lunch", participants=[jill])
>>> thread.send_message("Pizza?")
>>> thread.list_messages()

With ``COMMUNICATION_SERVICES_CONNECTION_STRING`` set, ``connect()`` uses that ACS resource. Otherwise it
uses the emulator serving :func:`chatnb.emulator.server.default_location` (``$CHATNB_HOME/emulator``):
it reuses the one announced in ``server.json`` when that process is alive and answers, and otherwise
starts ``python -m chatnb serve`` there, detached, logging to ``emulator.log``. So every kernel and
notebook on the machine shares one emulator and its threads. Users are remembered by name (in
``users.json`` next to the data): ``session.user("Jack")`` is the same ACS user in every notebook, with
a fresh token that refreshes itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd

from . import _core
from .client import ChatClient, ChatThreadClient
from .credential import CommunicationTokenCredential
from .errors import APIError, AuthenticationError, ChatError, NotFoundError
from .identity import CommunicationIdentityClient
from .models import ChatParticipant, CommunicationUserIdentifier

__all__ = ["CONNECTION_STRING_ENV", "Session", "User", "connect"]

CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"
USERS_FILE = "users.json"
LOG_FILE = "emulator.log"
CHAT_SCOPES = ["chat"]


def _chatnb_home() -> Path:
    return Path(os.environ.get("CHATNB_HOME") or Path.home() / ".chatnb").expanduser()


def _pid_alive(pid: object) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(info: dict[str, Any]) -> bool:
    endpoint, ca = info.get("endpoint"), info.get("ca_cert")
    if not isinstance(endpoint, str) or not isinstance(ca, str) or not Path(ca).is_file():
        return False
    try:
        context = ssl.create_default_context(cafile=ca)
        with httpx.Client(verify=context, timeout=3) as http:
            http.get(endpoint.rstrip("/") + "/chat/threads", params={"api-version": _core.CHAT_API_VERSION})
    except (httpx.HTTPError, ssl.SSLError, OSError):
        return False
    return True


def _live_emulator(location: Path) -> dict[str, Any] | None:
    from .emulator.server import read_server_info

    info = read_server_info(location)
    if info and _pid_alive(info.get("pid")) and _answers(info):
        return info
    return None


def _spawn_emulator(location: Path, timeout: float) -> tuple[dict[str, Any], subprocess.Popen[bytes] | None]:
    from .emulator.server import read_server_info

    location.mkdir(parents=True, exist_ok=True)
    log_path = location / LOG_FILE
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatnb", "serve", "--location", str(location), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_server_info(location)
        if info and info.get("pid") == process.pid and _answers(info):
            return info, process
        if process.poll() is not None:  # lost a race with another kernel, or failed
            live = _live_emulator(location)
            if live is not None:
                return live, None
            tail = log_path.read_text(errors="replace")[-800:]
            if "another emulator is serving" not in tail.rsplit("chatnb serve:", 1)[-1]:
                raise RuntimeError(f"the emulator exited with code {process.returncode}; {log_path}:\n{tail}")
        time.sleep(0.05)  # the winner of the race is still starting: wait for its server.json
    if process.poll() is None:
        process.terminate()
        process.wait(10)
    raise TimeoutError(
        f"the emulator did not announce itself in {location} within {timeout:.0f} s; see {log_path}"
    )


class User:
    """A named ACS user of a :class:`Session`: identity, self-refreshing token and chat client.

    ``create_thread`` and ``thread`` give :class:`~chatnb.ChatThreadClient` s that sign messages with the
    user's name (``sender_display_name``) unless told otherwise.
    """

    def __init__(
        self, session: Session, name: str, identifier: CommunicationUserIdentifier, token: Any
    ) -> None:
        self.session = session
        self.name = name
        self.identifier = identifier
        self.credential = CommunicationTokenCredential(token.token, token_refresher=self._fresh_token)
        self.chat_client = ChatClient(
            session.endpoint, self.credential, connection_verify=session.connection_verify
        )

    def _fresh_token(self) -> Any:
        return self.session.identity_client.get_token(self.identifier, CHAT_SCOPES)

    @property
    def id(self) -> str:
        """The user's ACS id (``8:acs:...``)."""
        return self.identifier.raw_id

    @property
    def display_name(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<User {self.name!r} {self.id}>"

    def _participant(self, value: object) -> ChatParticipant:
        if isinstance(value, User):
            return ChatParticipant(value.identifier, display_name=value.name)
        if isinstance(value, str) and ":" not in value:  # a name
            return self._participant(self.session.user(value))
        if isinstance(value, ChatParticipant):
            return value
        return ChatParticipant(value)  # type: ignore[arg-type]

    def create_thread(
        self, topic: str, participants: Iterable[Any] = (), *, metadata: dict[str, str] | None = None
    ) -> ChatThreadClient:
        """Create a thread with this user and ``participants`` (users, names, ids or ``ChatParticipant``).

        Raises:
            ChatError: if the service refused some participants (the thread exists; see ``.target``).
        """
        members = [ChatParticipant(self.identifier, display_name=self.name)]
        members += [self._participant(p) for p in participants]
        result = self.chat_client.create_chat_thread(topic, members, metadata=metadata)
        if result.errors:
            refused = ", ".join(str(e.target) for _, e in result.errors)
            raise ChatError(
                f"thread {result.chat_thread.id} was created, but these participants were refused: {refused}",
                target=result.chat_thread.id,
            )
        return self.thread(result.chat_thread.id)

    def thread(self, thread_id: str) -> ChatThreadClient:
        """A client for an existing thread, acting as this user."""
        client = self.chat_client.get_chat_thread_client(thread_id, default_display_name=self.name)
        return client

    def threads(self) -> pd.DataFrame:
        """This user's threads as a DataFrame."""
        return self.chat_client.list_chat_threads()

    def close(self) -> None:
        self.chat_client.close()


class Session:
    """An ACS resource (or the local emulator) with named users; made by :func:`connect`.

    Attributes:
        endpoint: the service endpoint.
        is_emulator: whether it is the embedded emulator.
        identity_client: a :class:`~chatnb.CommunicationIdentityClient` for the resource.
        location: where the user names (and, for the emulator, its data) are kept.
    """

    def __init__(
        self,
        connection_string: str,
        *,
        location: Path,
        is_emulator: bool,
        connection_verify: Any = None,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        endpoint, _ = _core.parse_connection_string(connection_string)
        self.endpoint = _core.normalize_endpoint(endpoint)
        self.is_emulator = is_emulator
        self.location = location
        self.connection_verify = connection_verify
        self._connection_string = connection_string
        self._process = process
        self.identity_client = CommunicationIdentityClient.from_connection_string(
            connection_string, connection_verify=connection_verify
        )
        self._users: dict[str, User] = {}

    @property
    def connection_string(self) -> str:
        """The resource's connection string (it holds the access key: keep it out of shared output)."""
        return self._connection_string

    @property
    def started_emulator(self) -> bool:
        """Whether this session started the emulator process (and :meth:`stop` will stop it)."""
        return self._process is not None

    def __repr__(self) -> str:
        kind = "emulator" if self.is_emulator else "ACS resource"
        return f"<Session {kind} {self.endpoint} users={sorted(self._users)}>"

    @property
    def users(self) -> dict[str, User]:
        """The users of this session so far, by name."""
        return dict(self._users)

    @contextlib.contextmanager
    def _user_map(self) -> Iterator[dict[str, str]]:
        self.location.mkdir(parents=True, exist_ok=True)
        path = self.location / USERS_FILE
        with (self.location / (USERS_FILE + ".lock")).open("a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                saved = json.loads(path.read_text()) if path.exists() else {}
            except ValueError:
                saved = {}
            users: dict[str, str] = saved.get("users", {}) if saved.get("endpoint") == self.endpoint else {}
            before = dict(users)
            yield users
            if users != before:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"endpoint": self.endpoint, "users": users}, indent=2))
                os.replace(tmp, path)

    def user(self, name: str) -> User:
        """The user called ``name``: the same ACS user in every session of this resource, created on
        first use, with a fresh token.

        Raises:
            ValueError: for an empty name.
        """
        name = _core._text(name, "name").strip()
        if name in self._users:
            return self._users[name]
        with self._user_map() as users:
            token = None
            if name in users:
                identifier = CommunicationUserIdentifier(users[name])
                try:
                    token = self.identity_client.get_token(identifier, CHAT_SCOPES)
                except (NotFoundError, AuthenticationError):  # deleted, or a new resource key
                    token = None
            if token is None:
                identifier, token = self.identity_client.create_user_and_token(CHAT_SCOPES)
                users[name] = identifier.raw_id
        user = User(self, name, identifier, token)
        self._users[name] = user
        return user

    def close(self) -> None:
        """Close the clients (the emulator keeps running for other notebooks; see :meth:`stop`)."""
        for user in self._users.values():
            user.close()
        self.identity_client.close()

    def stop(self) -> bool:
        """Close the clients and stop the emulator if this session started it; ``True`` if it did."""
        self.close()
        process, self._process = self._process, None
        if process is None:
            return False
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        return True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    connection_string: str | None = None,
    *,
    location: str | Path | None = None,
    timeout: float = 30.0,
) -> Session:
    """A :class:`Session`: on ``connection_string`` or ``$COMMUNICATION_SERVICES_CONNECTION_STRING`` if
    given, else on the local emulator at ``location`` (default ``$CHATNB_HOME/emulator``), started or
    reused.

    Raises:
        RuntimeError, TimeoutError: if the emulator cannot be started.
    """
    from .emulator.server import default_location

    connection_string = connection_string or os.environ.get(CONNECTION_STRING_ENV) or None
    if connection_string:
        endpoint, _ = _core.parse_connection_string(connection_string)
        from .emulator import ca_for_endpoint

        normalized = _core.normalize_endpoint(endpoint)
        host = urlsplit(normalized).netloc.replace(":", "_") or "resource"
        return Session(
            connection_string,
            location=_chatnb_home() / "resources" / host,
            is_emulator=ca_for_endpoint(normalized + "/") is not None,
        )
    where = Path(location).expanduser().resolve() if location is not None else default_location()
    info = _live_emulator(where)
    process = None
    if info is None:
        info, process = _spawn_emulator(where, timeout)
    try:
        return Session(
            str(info["connection_string"]),
            location=where,
            is_emulator=True,
            connection_verify=str(info["ca_cert"]),
            process=process,
        )
    except (APIError, ValueError, TypeError, KeyError):
        if process is not None:
            process.terminate()
            process.wait(10)
        raise
