"""The embedded ACS emulator: a local Chat + Identity service that the official SDKs accept.

>>> from chatnb.emulator import Emulator
>>> with Emulator() as emu:
...     print(emu.connection_string)
"""

from .bounds import ServerLimits
from .limits import FaultPlan, RateLimiter
from .server import (
    DEFAULT_LOCATION,
    Emulator,
    LocationInUse,
    ca_for_endpoint,
    read_server_info,
    stop_announced,
)

__all__ = [
    "DEFAULT_LOCATION",
    "Emulator",
    "FaultPlan",
    "LocationInUse",
    "RateLimiter",
    "ServerLimits",
    "ca_for_endpoint",
    "read_server_info",
    "stop_announced",
]
