"""What the request handlers share: the store, the token issuer, the event broadcaster, the bounds and the
endpoints the emulator is reachable at.

:class:`EmulatorState` is built by :class:`~chatnb.emulator.Emulator` and hung on the application
(``app.state.emulator``); :func:`state_of` finds it from a request.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from starlette.requests import Request

from .bounds import ServerLimits
from .clock import Clock
from .errors import TooManyRequests
from .griddelivery import GridDelivery
from .store import Store
from .tokens import TokenIssuer

__all__ = ["Broadcaster", "EmulatorState", "state_of"]


class Broadcaster:
    """Wakes every open event stream when the store commits new events; counts the streams per user.

    Args:
        max_per_user: how many streams one user may have subscribed at once.
    """

    def __init__(self, max_per_user: int = ServerLimits.max_streams_per_user) -> None:
        self.max_per_user = max_per_user
        self._waiters: dict[asyncio.Event, str] = {}
        self._per_user: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<Broadcaster {len(self._waiters)} streams of {len(self._per_user)} users>"

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake streams on ``loop`` (the server's), whichever thread committed."""
        self._loop = loop

    def notify(self, last_event_id: int = 0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    def streams_of(self, user_id: str) -> int:
        """How many streams ``user_id`` has open."""
        return self._per_user[user_id]

    def subscribe(self, user_id: str) -> asyncio.Event:
        """A new stream's wake-up event (call on the server's loop).

        Raises:
            TooManyRequests: if the user already has ``max_per_user`` streams open.
        """
        if self._per_user[user_id] >= self.max_per_user:
            raise TooManyRequests(
                f"This user already has {self.max_per_user} event streams open; close one first.",
                code="TooManyEventStreams",
                headers={"Retry-After": "1"},
            )
        waiter = asyncio.Event()
        self._waiters[waiter] = user_id
        self._per_user[user_id] += 1
        return waiter

    def unsubscribe(self, waiter: asyncio.Event) -> None:
        user_id = self._waiters.pop(waiter, None)
        if user_id is not None:
            self._per_user[user_id] -= 1
            if self._per_user[user_id] <= 0:
                del self._per_user[user_id]


@dataclass
class EmulatorState:
    """What the handlers share.

    ``endpoints`` maps a scheme to the base URL the emulator serves it at (``https://127.0.0.1:PORT``);
    links in answers (``nextLink``) are built from it, never from the request's ``Host``. ``oauth``
    (``"basic"`` or ``None``) says whether the Identity API accepts Entra ID tokens
    (:mod:`chatnb.emulator.entra`); ``loose`` accepts any ``api-version``; ``delivery`` is the Event Grid
    delivery (:mod:`chatnb.emulator.griddelivery`).
    """

    store: Store
    issuer: TokenIssuer
    access_key: bytes = field(repr=False)
    check_hmac_date: bool = True
    debug: bool = False
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    limits: ServerLimits = field(default_factory=ServerLimits)
    endpoints: dict[str, str] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    oauth: str | None = None
    loose: bool = False
    delivery: GridDelivery | None = None

    def base_url(self, request: Request) -> str:
        """The configured base URL for the scheme ``request`` came in on (no trailing slash).

        An application served without a configured endpoint (through ``httpx.ASGITransport``, say) uses
        the address of the socket the request arrived at.
        """
        scheme = request.url.scheme
        configured = self.endpoints.get(scheme)
        if configured:
            return configured.rstrip("/")
        host, port = request.scope.get("server") or ("127.0.0.1", None)
        host = f"[{host}]" if ":" in str(host) else str(host)
        default = {"https": 443, "http": 80}.get(scheme)
        return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def state_of(request: Request) -> EmulatorState:
    """The :class:`EmulatorState` of the application serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state
