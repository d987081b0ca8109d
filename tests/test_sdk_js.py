"""The official JavaScript SDKs (@azure/communication-chat 1.6.0, -common 2.4.2, -identity 1.3.1) run the
ACS quickstart flow (``tests/js/quickstart.mjs``) in Node against the emulator, in-process and as
``chatnb serve``, with certificate verification on. ``.ci/setup-extras`` installs the packages
(``cd tests/js && npm ci``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chatnb.emulator import Emulator
from tests.support.processes import Served

pytestmark = pytest.mark.sdk

JS_DIR = Path(__file__).parent / "js"
PINNED = {
    "@azure/communication-chat": "1.6.0",
    "@azure/communication-common": "2.4.2",
    "@azure/communication-identity": "1.3.1",
}


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; the JavaScript SDK compatibility test needs Node.js >= 18")
    for package, version in PINNED.items():
        manifest = JS_DIR / "node_modules" / package / "package.json"
        if not manifest.is_file():
            pytest.fail(
                f"{package} is not installed; run `cd tests/js && npm ci` (or `bash .ci/setup-extras`)"
            )
        assert json.loads(manifest.read_text())["version"] == version, (
            f"{package} is not {version}; run npm ci"
        )
    return node


def _run(connection_string: str, ca_cert: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    env["COMMUNICATION_SERVICES_CONNECTION_STRING"] = connection_string
    if ca_cert is not None:
        env["NODE_EXTRA_CA_CERTS"] = ca_cert
    return subprocess.run(
        [_node(), "quickstart.mjs"], cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_pins_are_committed() -> None:
    package = json.loads((JS_DIR / "package.json").read_text())
    assert package["dependencies"] == PINNED
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    for name, version in PINNED.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


@pytest.mark.parametrize("target", ["embedded", "chatnb-serve"])
def test_javascript_quickstart_flow(emulator: Emulator, target: str) -> None:
    """The flow against the in-process ``Emulator`` and against a ``chatnb serve`` process."""
    if target == "embedded":
        endpoint = emulator.endpoint
        result = _run(emulator.connection_string, str(emulator.ca_cert))
    else:
        with Served("--in-memory") as served:
            endpoint = served.endpoint
            result = _run(served.connection_string, served.ca_cert)
    assert result.returncode == 0, result.stderr[-4000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["endpoint"] == endpoint
    assert summary["steps"] == [
        "identity",
        "createChatThread",
        "sendMessage",
        "listMessages",
        "updateMessage/deleteMessage",
        "addParticipants/removeParticipant",
        "typing/readReceipts",
        "updateTopic/listChatThreads",
        "errors",
        "deleteChatThread",
    ]
    assert summary["messagePages"] == [3, 3, 3, 2]
    assert summary["messages"] == 11
    assert summary["participantPages"] == 3
    assert summary["typing"] == [True, False]
    assert summary["threads"] >= 2
    assert summary["statuses"] == {
        "hiddenMessage": 404,
        "removedParticipant": 403,
        "nonMember": 403,
        "nonMemberSend": 403,
        "notSender": 403,
        "unknownThread": 404,
        "unknownMessage": 404,
        "forged": 401,
        "forgedList": 401,
        "revoked": 401,
        "deletedUser": 401,
        "deletedThread": 404,
    }
    if target == "embedded":  # what the script did is really in the emulator's store
        thread = emulator.store.get_thread(summary["threadId"])
        assert thread is not None and thread.topic == "London conference: final"
        assert thread.deleted_on is not None


def test_javascript_sdk_verifies_the_certificate(emulator: Emulator) -> None:
    """Without the emulator's PEM to trust, Node refuses the connection: verification really is on."""
    result = _run(emulator.connection_string, None)
    assert result.returncode != 0
    assert "SELF_SIGNED_CERT" in result.stderr, result.stderr[-2000:]
