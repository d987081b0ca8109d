"""Cell-level care of exported text: lone surrogates, and spreadsheet formulas in CSV cells.

**Lone surrogates.** JSON may carry a ``\\ud800`` escape without its pair (JavaScript and .NET senders can
produce one); Python decodes it into a string that UTF-8 cannot encode, and every format would fail on
it. :func:`repair_text` replaces each lone surrogate with U+FFFD (a valid pair is joined into its
character) in every text cell of a batch, metadata and participant lists included, and counts the
cells it changed (``ThreadExport.repaired``).

**Formula injection** (OWASP "CSV injection"). A spreadsheet opening a CSV runs a cell that starts with
``=``, ``+``, ``-`` or ``@`` as a formula, and tools that split cells on tabs or lines see a new cell
after a tab or CR. :func:`guard_formulas` prefixes ``'`` to such a character at the start of a cell
(after any tabs or CRs there) and right after a tab or CR inside one; a ``'`` already in such a place
gets one more, so that :func:`unguard_formulas` (used by :func:`chatnb.read_export`) gives back exactly
the original text. ``export_history(..., csv_formulas="keep")`` writes cells as they are.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = ["guard_formulas", "repair_text", "repair_value", "unguard_formulas"]

_GUARD = re.compile(r"(^|[\t\r])('*)(?=[=+\-@\t\r])")
_UNGUARD = re.compile(r"(^|[\t\r])'('*)(?=[=+\-@\t\r])")
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def _fix(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def repair_value(value: Any) -> tuple[Any, bool]:
    """``value`` with lone surrogates replaced (strings, and the strings inside dicts and lists), and
    whether anything changed."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _fix(value), True
        return value, False
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            k2, a = repair_value(k)
            v2, b = repair_value(v)
            out[k2] = v2
            changed = changed or a or b
        return (out, True) if changed else (value, False)
    if isinstance(value, (list, tuple)):
        items = [repair_value(v) for v in value]
        if any(c for _, c in items):
            return [v for v, _ in items], True
    return value, False


def repair_text(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, int]:
    """``frame`` with lone surrogates replaced in ``columns``, and how many cells were changed.

    The common case (nothing to repair) costs one UTF-8 encoding of each column's text.
    """
    repaired = 0
    fixed: dict[str, pd.Series] = {}
    for name in columns:
        col = frame[name]
        values = col.tolist()
        if col.dtype == object or not _encodes([v for v in values if isinstance(v, str)]):
            new, changed = [], 0
            for v in values:
                v2, c = repair_value(v)
                new.append(v2)
                changed += c
            if changed:
                repaired += changed
                fixed[name] = pd.Series(new, index=frame.index, dtype=col.dtype)
    if fixed:
        frame = frame.assign(**fixed)
    return frame, repaired


def _encodes(texts: list[str]) -> bool:
    try:
        "\n".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
