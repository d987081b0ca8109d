"""The embedded ACS emulator: a local Chat + Identity service that the official SDKs accept.

>>> from chatnb.emulator import Emulator
>>> with Emulator() as emu:
...     print(emu.connection_string)

``Emulator(event_grid=[...])`` delivers its chat events to webhooks as Azure Event Grid does
(:mod:`.griddelivery`), ``Emulator(clock="manual")`` has a clock you move (:mod:`.clock`), and
``Emulator(oauth="basic")`` accepts Entra ID tokens on the Identity API (:mod:`.entra`).

Where an emulator keeps its data, and how running ones are found, trusted and stopped, is
:mod:`chatnb.location`'s; its names are also here, as before.
"""

from pathlib import Path

from ..location import (
    LocationError,
    LocationInUse,
    PortInUse,
    ca_for_endpoint,
    default_location,
    read_server_info,
    stop_announced,
)
from .bounds import ServerLimits
from .clock import Clock, ClockError
from .gridsubs import EventGridSubscription, SubscriptionError
from .limits import FaultPlan, RateLimiter
from .server import Emulator

__all__ = [
    "DEFAULT_LOCATION",
    "Clock",
    "ClockError",
    "Emulator",
    "EventGridSubscription",
    "FaultPlan",
    "LocationError",
    "LocationInUse",
    "PortInUse",
    "RateLimiter",
    "ServerLimits",
    "SubscriptionError",
    "ca_for_endpoint",
    "default_location",
    "read_server_info",
    "stop_announced",
]


def __getattr__(name: str) -> Path:
    """``DEFAULT_LOCATION`` is :func:`default_location`, read when asked (so ``CHATNB_HOME`` counts)."""
    if name == "DEFAULT_LOCATION":
        return default_location()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
