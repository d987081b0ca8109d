"""The notebook front door: ``chatnb.connect()`` and named users.

>>> session = chatnb.connect()                 # the local emulator, started or reused
>>> jack, jill = session.user("Jack"), session.user("Jill")
>>> thread = jack.create_thread("Lunch", participants=[jill])
>>> thread.send_message("Pizza?")
>>> thread.list_messages()

With ``COMMUNICATION_SERVICES_CONNECTION_STRING`` set, ``connect()`` uses that ACS resource. Otherwise it
uses the emulator of a location (:mod:`chatnb.location`; by default ``$CHATNB_HOME/emulator``): the one
running there, or ``python -m chatnb serve`` started there, detached. Every kernel and script on a
location shares its emulator and its threads: each session holds a lease, ``session.close()`` releases
it, and an emulator ``connect()`` started stops by itself once no session has used it for
``idle_timeout`` seconds; ``session.stop()`` stops it at once, for every session. A location keeps its
port and access key, so its connection string survives restarts, and users are remembered by name (in
``users.json`` next to the data): ``session.user("Jack")`` is the same ACS user in every notebook, with
a fresh token that refreshes itself.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from . import _core
from . import location as _location
from .client import ChatClient, ChatThreadClient
from .credential import CommunicationTokenCredential
from .errors import AuthenticationError, ChatError, NotFoundError
from .identity import CommunicationIdentityClient
from .models import ChatParticipant, CommunicationUserIdentifier

__all__ = ["CONNECTION_STRING_ENV", "Session", "User", "connect"]

CONNECTION_STRING_ENV = "COMMUNICATION_SERVICES_CONNECTION_STRING"
CHAT_SCOPES = ["chat"]


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
        is_emulator: whether it is a chatnb emulator.
        identity_client: a :class:`~chatnb.CommunicationIdentityClient` for the resource.
        location: where the user names (and, for the emulator, its data) are kept.
        connection_verify: what the session's clients verify TLS with (``None``: as they find best).
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        *,
        location: Path,
        is_emulator: bool,
        connection_verify: Any = None,
        lease: _location.Lease | None = None,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.endpoint = _core.normalize_endpoint(endpoint)
        self.is_emulator = is_emulator
        self.location = location
        self.connection_verify = connection_verify
        self._access_key = access_key
        self._lease = lease
        self._process = process
        self.identity_client = CommunicationIdentityClient(
            self.endpoint, access_key, connection_verify=connection_verify
        )
        self._users: dict[str, User] = {}

    @property
    def connection_string(self) -> str:
        """The resource's connection string (it holds the access key: keep it out of shared output)."""
        return f"endpoint={self.endpoint}/;accesskey={self._access_key}"

    @property
    def started_emulator(self) -> bool:
        """Whether this session started the emulator process."""
        return self._process is not None

    def __repr__(self) -> str:
        kind = "emulator" if self.is_emulator else "ACS resource"
        return f"<Session {kind} {self.endpoint} users={sorted(self._users)}>"

    @property
    def users(self) -> dict[str, User]:
        """The users of this session so far, by name."""
        return dict(self._users)

    def user(self, name: str) -> User:
        """The user called ``name``: the same ACS user in every session of this resource, created on
        first use, with a fresh token.

        Raises:
            ValueError: for an empty name.
            LocationError: if ``users.json`` is corrupt (it is never replaced; the message names it).
        """
        name = _core.check_text(name, "name").strip()
        if name in self._users:
            return self._users[name]
        with _location.named_users(self.location) as users:
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
        """Close the clients and release the emulator: it keeps running for the other sessions."""
        for user in self._users.values():
            user.close()
        self.identity_client.close()
        if self._lease is not None:
            self._lease.release()

    def stop(self) -> bool:
        """Close this session and stop its location's emulator at once, for every session using it.

        For a notebook that owns its location (``connect(temporary=True)``); a shared emulator stops by
        itself when unused, or with ``chatnb stop``. ``True`` if an emulator was stopped.
        """
        self.close()
        stopped = self.is_emulator and _location.stop_announced(self.location)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:  # it never announced itself
            process.terminate()
            process.wait(15)
        return stopped

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resource_session(connection_string: str, connection_verify: Any, timeout: float) -> Session:
    endpoint, key = _core.parse_connection_string(connection_string)
    endpoint = _core.normalize_endpoint(endpoint)
    info = _location.find(endpoint)
    where = info.get("location") if info else None
    if where:  # a chatnb emulator with a location: its users, and a lease like any other session's
        return Session(
            endpoint,
            key,
            location=Path(where),
            is_emulator=True,
            connection_verify=connection_verify,
            lease=_location.Lease(Path(where), timeout=timeout),
        )
    folder = urlsplit(endpoint).netloc.replace(":", "_") or "resource"
    return Session(
        endpoint,
        key,
        location=_location.chatnb_home() / "resources" / folder,
        is_emulator=info is not None or _location.ca_for_endpoint(endpoint) is not None,
        connection_verify=connection_verify,
    )


def connect(
    connection_string: str | None = None,
    *,
    location: str | Path | None = None,
    temporary: bool = False,
    connection_verify: Any = None,
    idle_timeout: float | None = _location.DEFAULT_IDLE_TIMEOUT,
    timeout: float = 30.0,
) -> Session:
    """A :class:`Session`: on ``connection_string`` or ``$COMMUNICATION_SERVICES_CONNECTION_STRING`` if
    given, else on the local emulator at ``location`` (default ``$CHATNB_HOME/emulator``), started or
    reused.

    Args:
        connection_string: an ACS resource's (or any chatnb emulator's) connection string.
        location: the emulator's folder; ``temporary=True`` makes a new one in the system's temporary
            folder instead, whose emulator stops and is removed once no session uses it.
        connection_verify: what the clients verify TLS with, as for :class:`~chatnb.ChatClient`; by
            default a local emulator's own certificate, else the system's trust store.
        idle_timeout: seconds an emulator this call starts keeps running with no session (``None``:
            until ``chatnb stop``); an emulator already running keeps its own setting.
        timeout: seconds to wait for the emulator to start.

    Raises:
        LocationError: if the emulator cannot start there (the message says why); TimeoutError.
        ValueError: for a malformed connection string, or ``location`` with ``temporary``.
    """
    connection_string = connection_string or os.environ.get(CONNECTION_STRING_ENV) or None
    if connection_string:
        return _resource_session(connection_string, connection_verify, timeout)
    if temporary and location is not None:
        raise ValueError("connect() takes a location or temporary=True, not both")
    if temporary:
        where = _location.new_temporary()
    else:
        where = _location.default_location() if location is None else _location.resolve(location)
    lease = None
    try:
        lease = _location.Lease(where, timeout=timeout)
        info, process = _location.live_emulator(where), None
        if info is None:
            info, process = _location.spawn(
                where, timeout=timeout, idle_timeout=0 if temporary else idle_timeout
            )
        endpoint, key = _core.parse_connection_string(str(info["connection_string"]))
        return Session(
            endpoint,
            key,
            location=where,
            is_emulator=True,
            connection_verify=connection_verify or str(info["ca_cert"]),
            lease=lease,
            process=process,
        )
    except BaseException:
        if lease is not None:
            lease.release()
        if temporary:
            _location.stop_announced(where)
            _location.remove_if_temporary(where)
        raise
