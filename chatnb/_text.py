"""Text the wire can carry but UTF-8 cannot: lone UTF-16 surrogates, and their repair.

JSON may hold a ``\\ud800`` escape without its pair (JavaScript and .NET senders can produce one); Python
decodes it into a ``str`` that no UTF-8 writer (Arrow, a file, an HTTP body) accepts. :func:`repair_value`
replaces each lone surrogate with U+FFFD, joins a valid pair into its character, and says whether
anything changed; it walks dicts and lists, so a whole wire message can be repaired at once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["repair_value"]


def _fix(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def repair_value(value: Any) -> tuple[Any, int]:
    """``value`` with lone surrogates replaced (in strings, and the strings inside dicts and lists), and
    how many strings were changed."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _fix(value), 1
        return value, 0
    if isinstance(value, dict):
        changed = 0
        out = {}
        for k, v in value.items():
            k2, a = repair_value(k)
            v2, b = repair_value(v)
            out[k2] = v2
            changed += a + b
        return (out, changed) if changed else (value, 0)
    if isinstance(value, list):
        items = [repair_value(v) for v in value]
        changed = sum(c for _, c in items)
        if changed:
            return [v for v, _ in items], changed
    return value, 0
