"""The public surface: ``chatnb.__all__`` and ``chatnb.aio.__all__`` are sorted, complete and importable."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types

import chatnb
import chatnb.aio


def public_names(module: object) -> set[str]:
    # chatnb imports its names on first use (module __getattr__), so read each name dir() lists
    namespace = {name: getattr(module, name) for name in dir(module)}
    return {
        name
        for name, value in namespace.items()
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


_LOADED = """
import json, sys
{code}
heavy = ("pandas", "numpy", "pyarrow", "httpx", "chatnb.client", "chatnb.export._sync")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def loaded_after(code: str) -> list[str]:
    """Which heavy modules a fresh interpreter has imported after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", _LOADED.format(code=code)], capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout.splitlines()[-1]))


def test_import_chatnb_the_emulator_and_the_serve_command_load_no_pandas() -> None:
    assert loaded_after("import chatnb, chatnb.emulator") == []
    serve_help = (
        "import chatnb.cli\ntry:\n    chatnb.cli.main(['serve', '--help'])\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(serve_help) == []
    # the names and submodules are still there, imported on first use
    assert "pandas" in loaded_after("from chatnb import ChatClient")
    assert "chatnb.export._sync" in loaded_after("import chatnb; chatnb.export_history")
    frames = loaded_after("import chatnb; assert chatnb.frames.MESSAGE_COLUMNS")
    assert "pandas" in frames and "chatnb.client" not in frames
