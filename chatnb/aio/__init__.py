"""The async clients, with the same names as the sync ones (as ``azure.communication.chat.aio``).

>>> from chatnb.aio import ChatClient, CommunicationTokenCredential
>>> async with ChatClient(endpoint, CommunicationTokenCredential(token)) as chat:
...     threads = await chat.list_chat_threads()

Models, errors and :class:`~chatnb.RetryPolicy` are shared with the sync API and imported from
:mod:`chatnb`.
"""

from __future__ import annotations

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
