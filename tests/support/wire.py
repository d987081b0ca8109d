"""Raw wire access to a running emulator for tests: HMAC-signed Identity calls and Bearer Chat calls.

The helpers speak plain httpx over HTTPS with the emulator's certificate verified, so a test sees exactly
the status, headers and JSON body an SDK would see.
"""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx

from chatnb._signing import hmac_headers
from chatnb.emulator import Emulator

__all__ = ["CHAT_VERSION", "IDENTITY_VERSION", "User", "Wire", "assert_error", "q"]

CHAT_VERSION = "2024-03-07"
IDENTITY_VERSION = "2023-10-01"


def q(value: str) -> str:
    """Percent-encode a path segment the way the SDKs do (``19:x@thread.v2`` -> ``19%3Ax%40thread.v2``)."""
    return quote(value, safe="")


def assert_error(
    response: httpx.Response, status: int, *words: str, code: str | None = None
) -> dict[str, Any]:
    """Assert ``response`` is an ACS error body with ``status`` whose message names every word."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    for word in words:
        assert word.lower() in error["message"].lower(), (word, error)
    return dict(error)


@dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def identifier(self) -> dict[str, Any]:
        return {"rawId": self.id, "communicationUser": {"id": self.id}}

    def participant(self, name: str | None = None, share_history_time: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"communicationIdentifier": self.identifier}
        if name is not None:
            out["displayName"] = name
        if share_history_time is not None:
            out["shareHistoryTime"] = share_history_time
        return out


class Wire:
    """An httpx client bound to one emulator, with signed Identity calls and Bearer Chat calls."""

    def __init__(self, emulator: Emulator, *, base_url: str | None = None) -> None:
        self.emulator = emulator
        self.key = base64.b64decode(emulator.access_key)
        verify = ssl.create_default_context(cafile=str(emulator.ca_cert))
        self.http = httpx.Client(base_url=(base_url or emulator.endpoint).rstrip("/"), verify=verify)

    @classmethod
    def connect(cls, connection_string: str, ca_cert: str | None, *, base_url: str | None = None) -> Wire:
        """A client for an emulator running elsewhere (another process), from its connection string."""
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if p)
        target = SimpleNamespace(endpoint=parts["endpoint"], access_key=parts["accesskey"], ca_cert=ca_cert)
        self = cls.__new__(cls)
        self.emulator = target  # type: ignore[assignment]
        self.key = base64.b64decode(target.access_key)
        verify = True if ca_cert is None else ssl.create_default_context(cafile=ca_cert)
        self.http = httpx.Client(base_url=(base_url or target.endpoint).rstrip("/"), verify=verify)
        return self

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity ------------------------------------------------------------------------------

    def signed(
        self,
        method: str,
        path_and_query: str,
        body: Any = None,
        *,
        key: bytes | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """An HMAC-signed Identity request; ``path_and_query`` is sent and signed verbatim."""
        content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        request = self.http.build_request(method, path_and_query, content=content)
        target = request.url.raw_path.decode("ascii")
        signed = hmac_headers(key or self.key, method, target, request.headers["host"], content)
        request.headers.update({"Content-Type": "application/json", **signed, **(headers or {})})
        return self.http.send(request)

    def create_user(self, scopes: list[str] | None = None, minutes: int | None = None) -> httpx.Response:
        body: dict[str, Any] | None = None
        if scopes is not None:
            body = {"createTokenWithScopes": scopes}
            if minutes is not None:
                body["expiresInMinutes"] = minutes
        return self.signed("POST", f"/identities?api-version={IDENTITY_VERSION}", body)

    def new_user(self, scopes: list[str] | None = None) -> User:
        """A fresh user with a chat token."""
        response = self.create_user(scopes or ["chat"])
        assert response.status_code == 201, response.text
        body = response.json()
        return User(body["identity"]["id"], body["accessToken"]["token"])

    def issue_token(self, user_id: str, scopes: list[str] | None = None) -> httpx.Response:
        path = f"/identities/{q(user_id)}/:issueAccessToken?api-version={IDENTITY_VERSION}"
        return self.signed("POST", path, {"scopes": scopes or ["chat"]})

    def revoke(self, user_id: str) -> httpx.Response:
        path = f"/identities/{q(user_id)}/:revokeAccessTokens?api-version={IDENTITY_VERSION}"
        return self.signed("POST", path)

    def delete_user(self, user_id: str) -> httpx.Response:
        return self.signed("DELETE", f"/identities/{q(user_id)}?api-version={IDENTITY_VERSION}")

    # -- chat ----------------------------------------------------------------------------------

    def chat(
        self,
        method: str,
        path: str,
        token: str | User | None,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        version: str | None = CHAT_VERSION,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """A Chat request with ``Authorization: Bearer``; ``version=None`` sends no api-version."""
        query = dict(params or {})
        if version is not None:
            query["api-version"] = version
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token.token if isinstance(token, User) else token}"
        content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if content is not None:
            all_headers.setdefault("Content-Type", content_type)
        return self.http.request(method, path, params=query, content=content, headers=all_headers)

    def follow(self, link: str, token: str | User) -> httpx.Response:
        """GET a ``nextLink`` verbatim, as the JS SDK does."""
        bearer = token.token if isinstance(token, User) else token
        return self.http.get(link, headers={"Authorization": f"Bearer {bearer}"})

    def create_thread(self, owner: User, topic: str = "t", *members: User, **extra: Any) -> str:
        body = {"topic": topic, "participants": [m.participant() for m in members], **extra}
        response = self.chat("POST", "/chat/threads", owner, body)
        assert response.status_code == 201, response.text
        thread_id: str = response.json()["chatThread"]["id"]
        return thread_id

    def send(self, thread_id: str, user: User, text: str = "hi", **extra: Any) -> str:
        response = self.chat(
            "POST", f"/chat/threads/{q(thread_id)}/messages", user, {"content": text, **extra}
        )
        assert response.status_code == 201, response.text
        message_id: str = response.json()["id"]
        return message_id

    def all_messages(self, thread_id: str, user: User, page_size: int = 200) -> list[dict[str, Any]]:
        """Every message of a thread (newest first), following ``nextLink`` pages."""
        response = self.chat(
            "GET", f"/chat/threads/{q(thread_id)}/messages", user, params={"maxPageSize": page_size}
        )
        items: list[dict[str, Any]] = []
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["value"]
            if not body.get("nextLink"):
                return items
            response = self.follow(body["nextLink"], user)
