"""The async clients, with the same names as the sync ones (as ``azure.communication.chat.aio``).

>>> from chatnb.aio import ChatClient, CommunicationTokenCredential
>>> async with ChatClient(endpoint, CommunicationTokenCredential(token)) as chat:
...     threads = await chat.list_chat_threads()

Models, errors and :class:`~chatnb.RetryPolicy` are shared with the sync API and imported from
:mod:`chatnb`. These modules are the hand-written source of the sync shells (``scripts/unasync.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy

if TYPE_CHECKING:
    from ..export._aio import export_history
    from ._client import ChatClient, ChatThreadClient
    from ._credential import CommunicationTokenCredential
    from ._identity import CommunicationIdentityClient

__all__ = [
    "ChatClient",
    "ChatThreadClient",
    "CommunicationIdentityClient",
    "CommunicationTokenCredential",
    "export_history",
]

# imported on first use (PEP 562): the modules of this package import each other's plumbing
# (``chatnb._stream`` uses ``chatnb.aio._sender``), which must not load every client first
_LAZY: dict[str, str] = {
    "ChatClient": "._client",
    "ChatThreadClient": "._client",
    "CommunicationIdentityClient": "._identity",
    "CommunicationTokenCredential": "._credential",
    "export_history": "..export._aio",
}

__getattr__, __dir__ = _lazy.lazy_attributes(__name__, globals(), _LAZY)
