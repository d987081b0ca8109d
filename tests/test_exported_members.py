"""The public surface: ``chatnb.__all__`` and ``chatnb.aio.__all__`` are sorted, complete and importable."""

from __future__ import annotations

import inspect
import types

import chatnb
import chatnb.aio


def public_names(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name != "annotations"
        and (isinstance(value, types.UnionType) or getattr(value, "__module__", "").startswith("chatnb"))
    }


def test_all_is_sorted_and_complete() -> None:
    assert chatnb.__all__ == sorted(chatnb.__all__)
    assert set(chatnb.__all__) == public_names(chatnb) | {"__version__"}
    for name in chatnb.__all__:
        assert getattr(chatnb, name) is not None


def test_aio_has_the_same_client_names() -> None:
    assert chatnb.aio.__all__ == sorted(chatnb.aio.__all__)
    assert set(chatnb.aio.__all__) == public_names(chatnb.aio)
    for name in chatnb.aio.__all__:
        sync, async_ = getattr(chatnb, name), getattr(chatnb.aio, name)
        assert sync is not async_ and sync.__name__ == async_.__name__ == name
        sync_methods = {m for m in dir(sync) if not m.startswith("_")}
        assert sync_methods <= {m for m in dir(async_) if not m.startswith("_")}


def test_official_sdk_names_are_all_here() -> None:
    official = {
        "ChatClient",
        "ChatThreadClient",
        "ChatMessage",
        "ChatMessageContent",
        "ChatMessageReadReceipt",
        "SendChatMessageResult",
        "ChatThreadProperties",
        "ChatThreadItem",
        "ChatParticipant",
        "ChatMessageType",
        "ChatAttachment",
        "CreateChatThreadResult",
        "ChatError",
        "CommunicationTokenCredential",
        "CommunicationIdentifier",
        "CommunicationIdentifierKind",
        "CommunicationUserIdentifier",
        "UnknownIdentifier",
        "identifier_from_raw_id",
        "CommunicationIdentityClient",
        "CommunicationTokenScope",
    }
    assert official <= set(chatnb.__all__)
