"""chatnb: Azure Communication Services Chat from Jupyter notebooks.

>>> import chatnb
>>> jack = chatnb.connect().user("Jack")
>>> jack.create_thread("Lunch").list_messages()

The clients have the official SDK's names and signatures (``ChatClient``, ``ChatThreadClient``,
``CommunicationIdentityClient``, ``CommunicationTokenCredential``...); every ``list_*`` returns a pandas
DataFrame. Async twins live in :mod:`chatnb.aio`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _lazy

if TYPE_CHECKING:
    from ._retry import RetryPolicy
    from .client import ChatClient, ChatThreadClient
    from .credential import CommunicationTokenCredential
    from .errors import (
        APIError,
        AuthenticationError,
        BadRequestError,
        ChatError,
        ConflictError,
        DecodingError,
        ForbiddenError,
        NotFoundError,
        RateLimitError,
        RefusedAnswerError,
        ServerError,
        ServiceUnavailableError,
        StreamUnavailable,
        TransportError,
    )
    from .export import compact_export, export_history, read_export
    from .identity import CommunicationIdentityClient
    from .models import (
        AccessToken,
        ChatAttachment,
        ChatMessage,
        ChatMessageContent,
        ChatMessageReadReceipt,
        ChatMessageType,
        ChatParticipant,
        ChatRetentionPolicy,
        ChatThreadItem,
        ChatThreadProperties,
        CommunicationIdentifier,
        CommunicationIdentifierKind,
        CommunicationTokenScope,
        CommunicationUserIdentifier,
        CreateChatThreadResult,
        SendChatMessageResult,
        UnknownIdentifier,
        identifier_from_raw_id,
    )
    from .paging import MessagePage
    from .session import Session, User, connect

__version__ = "0.1.0"
__all__ = [
    "APIError",
    "AccessToken",
    "AuthenticationError",
    "BadRequestError",
    "ChatAttachment",
    "ChatClient",
    "ChatError",
    "ChatMessage",
    "ChatMessageContent",
    "ChatMessageReadReceipt",
    "ChatMessageType",
    "ChatParticipant",
    "ChatRetentionPolicy",
    "ChatThreadClient",
    "ChatThreadItem",
    "ChatThreadProperties",
    "CommunicationIdentifier",
    "CommunicationIdentifierKind",
    "CommunicationIdentityClient",
    "CommunicationTokenCredential",
    "CommunicationTokenScope",
    "CommunicationUserIdentifier",
    "ConflictError",
    "CreateChatThreadResult",
    "DecodingError",
    "ForbiddenError",
    "MessagePage",
    "NotFoundError",
    "RateLimitError",
    "RefusedAnswerError",
    "RetryPolicy",
    "SendChatMessageResult",
    "ServerError",
    "ServiceUnavailableError",
    "Session",
    "StreamUnavailable",
    "TransportError",
    "UnknownIdentifier",
    "User",
    "__version__",
    "compact_export",
    "connect",
    "export_history",
    "identifier_from_raw_id",
    "read_export",
]

# Each public name and the module that defines it. Names are imported on first use (PEP 562), so that
# ``import chatnb`` stays cheap: ``chatnb.emulator`` and ``chatnb serve`` never load pandas or the client.
_LAZY: dict[str, str] = {
    "APIError": ".errors",
    "AccessToken": ".models",
    "AuthenticationError": ".errors",
    "BadRequestError": ".errors",
    "ChatAttachment": ".models",
    "ChatClient": ".client",
    "ChatError": ".errors",
    "ChatMessage": ".models",
    "ChatMessageContent": ".models",
    "ChatMessageReadReceipt": ".models",
    "ChatMessageType": ".models",
    "ChatParticipant": ".models",
    "ChatRetentionPolicy": ".models",
    "ChatThreadClient": ".client",
    "ChatThreadItem": ".models",
    "ChatThreadProperties": ".models",
    "CommunicationIdentifier": ".models",
    "CommunicationIdentifierKind": ".models",
    "CommunicationIdentityClient": ".identity",
    "CommunicationTokenCredential": ".credential",
    "CommunicationTokenScope": ".models",
    "CommunicationUserIdentifier": ".models",
    "ConflictError": ".errors",
    "CreateChatThreadResult": ".models",
    "DecodingError": ".errors",
    "ForbiddenError": ".errors",
    "MessagePage": ".paging",
    "NotFoundError": ".errors",
    "RateLimitError": ".errors",
    "RefusedAnswerError": ".errors",
    "RetryPolicy": "._retry",
    "SendChatMessageResult": ".models",
    "ServerError": ".errors",
    "ServiceUnavailableError": ".errors",
    "Session": ".session",
    "StreamUnavailable": ".errors",
    "TransportError": ".errors",
    "UnknownIdentifier": ".models",
    "User": ".session",
    "compact_export": ".export",
    "connect": ".session",
    "export_history": ".export",
    "identifier_from_raw_id": ".models",
    "read_export": ".export",
}


__getattr__, __dir__ = _lazy.lazy_attributes(__name__, globals(), _LAZY, submodules=True)
