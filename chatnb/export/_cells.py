"""Spreadsheet formulas in CSV cells: neutralised when written, restored when read back.

**Formula injection** (OWASP "CSV injection"). A spreadsheet opening a CSV runs a cell that starts with
``=``, ``+``, ``-`` or ``@`` as a formula, and tools that split cells on tabs or lines see a new cell
after a tab or CR. :func:`guard_formulas` prefixes ``'`` to such a character at the start of a cell
(after any tabs or CRs there) and right after a tab or CR inside one; a ``'`` already in such a place
gets one more, so that :func:`unguard_formulas` (used by :func:`chatnb.read_export`) gives back exactly
the original text. ``export_history(..., csv_formulas="keep")`` writes cells as they are.
"""

from __future__ import annotations

import re

__all__ = ["guard_formulas", "unguard_formulas"]

_GUARD = re.compile(r"(^|[\t\r])('*)(?=[=+\-@\t\r])")
_UNGUARD = re.compile(r"(^|[\t\r])'('*)(?=[=+\-@\t\r])")
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def guard_formulas(value: str) -> str:
    """``value`` made safe to open in a spreadsheet (see the module doc); reversible."""
    if value.startswith(_TRIGGERS) or "\t" in value or "\r" in value:
        return _GUARD.sub(r"\1\2'", value)
    return value


def unguard_formulas(value: str) -> str:
    """The original text of a cell written by :func:`guard_formulas`."""
    if value.startswith("'") or "\t" in value or "\r" in value:
        return _UNGUARD.sub(r"\1\2", value)
    return value
