"""RFC 3339 timestamps as the ACS wire carries them, shared by the client and the emulator.

The service sends UTC with a ``Z`` and up to seven fractional digits (``2020-06-25T17:44:37.6830000Z``);
the SDKs send zero to seven digits and sometimes a numeric offset. Inside the emulator a time is an
integer count of microseconds since the Unix epoch, which sorts, compares and indexes cheaply.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

__all__ = [
    "format_rfc3339",
    "now_us",
    "parse_rfc3339",
    "parse_rfc3339_us",
    "to_datetime",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def parse_rfc3339_us(text: str) -> int:
    """Parse an RFC 3339 timestamp into microseconds since the epoch.

    A missing zone is read as UTC, the way the service reads it. Digits past the seventh are dropped.

    Raises:
        ValueError: if ``text`` is not an RFC 3339 date-time.
    """
    m = _RFC3339.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    fraction = (m.group(7) or "")[:6].ljust(6, "0")
    try:
        dt = datetime(year, month, day, hour, minute, min(second, 59), int(fraction), timezone.utc)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {text!r} ({exc})") from None
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        dt = dt - offset if m.group(9) == "+" else dt + offset
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into a tz-aware UTC ``datetime``."""
    return to_datetime(parse_rfc3339_us(text))


_MINUTES: dict[int, str] = {}


def format_rfc3339(us: int) -> str:
    """Format microseconds since the epoch the way the service does: UTC, seven digits, ``Z``."""
    seconds, micro = divmod(us, 1_000_000)
    minute, second = divmod(seconds, 60)
    prefix = _MINUTES.get(minute)  # listings format many times of the same minute: 3x faster
    if prefix is None:
        if len(_MINUTES) >= 4096:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return f"{prefix}{second:02d}.{micro:06d}0Z"


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch as a tz-aware UTC ``datetime``."""
    return _EPOCH + timedelta(microseconds=us)


def to_us(value: datetime) -> int:
    """A ``datetime`` as microseconds since the epoch; a naive value is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
