"""chatnb: Azure Communication Services Chat from Jupyter notebooks.

>>> import chatnb
>>> jack = chatnb.connect().user("Jack")
>>> jack.create_thread("Lunch").list_messages()

The clients have the official SDK's names and signatures (``ChatClient``, ``ChatThreadClient``,
``CommunicationIdentityClient``, ``CommunicationTokenCredential``...); every ``list_*`` returns a pandas
DataFrame. Async twins live in :mod:`chatnb.aio`.
"""

from __future__ import annotations

from ._core import RetryPolicy
from .client import ChatClient, ChatThreadClient
from .credential import CommunicationTokenCredential
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ChatError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
)
from .export import export_history, read_export
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
    "ForbiddenError",
    "MessagePage",
    "NotFoundError",
    "RateLimitError",
    "RetryPolicy",
    "SendChatMessageResult",
    "ServerError",
    "ServiceUnavailableError",
    "Session",
    "TransportError",
    "UnknownIdentifier",
    "User",
    "__version__",
    "connect",
    "export_history",
    "identifier_from_raw_id",
    "read_export",
]
