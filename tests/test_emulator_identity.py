"""The emulator's Identity API on the wire: users, tokens, revocation, HMAC signing and the JWT shape."""

from __future__ import annotations

import base64
import re
import time
from email.utils import formatdate

import httpx
import pytest

from chatnb._signing import content_hash, hmac_headers, sign_request
from chatnb.emulator.auth import verify_hmac
from chatnb.emulator.errors import Unauthorized
from tests.support.tokens import jwt_payload
from tests.support.wire import IDENTITY_VERSION, Wire, assert_error, q

VECTOR_KEY = base64.b64decode("ZW11bGF0b3ItdGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZg==")
VECTOR_DATE = "Thu, 26 Nov 2026 12:00:00 GMT"
VECTOR_HOST = "127.0.0.1:8443"
HMAC_PREFIX = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="


def _thread_list(wire: Wire, token: str) -> int:
    return wire.chat("GET", "/chat/threads", token).status_code


# -- users and tokens --------------------------------------------------------------------------


def test_create_user_returns_201_and_an_acs_user_id(wire: Wire) -> None:
    response = wire.create_user()
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"identity"}
    assert re.fullmatch(r"8:acs:[0-9a-f-]{36}_[0-9a-f-]{36}", body["identity"]["id"])


def test_create_user_and_token_honours_expires_in_minutes(wire: Wire) -> None:
    response = wire.create_user(["chat"], minutes=60)
    assert response.status_code == 201
    body = response.json()
    token = body["accessToken"]["token"]
    payload = jwt_payload(token)
    assert abs(payload["exp"] - (time.time() + 3600)) < 300
    assert payload["skypeid"] == body["identity"]["id"].removeprefix("8:")
    expires_on = body["accessToken"]["expiresOn"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", expires_on)
    assert _thread_list(wire, token) == 200


def test_default_token_lifetime_is_a_day(wire: Wire) -> None:
    payload = jwt_payload(wire.create_user(["chat"]).json()["accessToken"]["token"])
    assert abs(payload["exp"] - (time.time() + 86400)) < 300


def test_issue_token_returns_200_with_token_and_expiry(wire: Wire) -> None:
    user_id = wire.create_user().json()["identity"]["id"]
    response = wire.issue_token(user_id, ["chat", "voip"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "expiresOn"}
    payload = jwt_payload(body["token"])
    assert payload["acsScope"] == "chat,voip"
    assert _thread_list(wire, body["token"]) == 200


def test_revoke_makes_old_tokens_401_and_new_tokens_work(wire: Wire) -> None:
    user = wire.new_user()
    thread_id = wire.create_thread(user)
    assert wire.revoke(user.id).status_code == 204
    old = wire.chat("GET", f"/chat/threads/{q(thread_id)}", user)
    assert_error(old, 401, "revoked")
    fresh = wire.issue_token(user.id).json()["token"]
    assert wire.chat("GET", f"/chat/threads/{q(thread_id)}", fresh).status_code == 200


def test_delete_user_makes_its_token_401_and_is_idempotent(wire: Wire) -> None:
    user = wire.new_user()
    assert _thread_list(wire, user.token) == 200
    assert wire.delete_user(user.id).status_code == 204
    assert_error(wire.chat("GET", "/chat/threads", user), 401, "deleted")
    assert wire.delete_user(user.id).status_code == 204
    assert_error(wire.issue_token(user.id), 404, "does not exist")


def test_token_for_unknown_user_is_404(wire: Wire) -> None:
    response = wire.issue_token("8:acs:00000000-0000-0000-0000-000000000000_nobody")
    assert_error(response, 404, "identity")


# -- the JWT quirks the Python SDK depends on --------------------------------------------------


def test_jwt_payload_decodes_with_the_standard_alphabet(wire: Wire) -> None:
    for _ in range(12):  # the padding claim must work for any user id and time
        token = wire.create_user(["chat"]).json()["accessToken"]["token"]
        parts = token.split(".")
        assert len(parts) == 3
        assert "-" not in parts[1] and "_" not in parts[1], parts[1]
        raw = base64.b64decode(parts[1] + "==")
        assert raw.isascii()
        payload = jwt_payload(token)
        assert isinstance(payload["exp"], int) and not isinstance(payload["exp"], bool)
        assert isinstance(payload["iat"], int)
        assert payload["resourceId"] and payload["resourceLocation"]


# -- HMAC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body", "digest", "signature"),
    [
        pytest.param(
            "POST",
            "/identities?api-version=2023-10-01",
            b'{"createTokenWithScopes": ["chat"]}',
            "kWpGozyV35fifbpKdY8mbdG64VG0Pdq5upzo7YKAFM0=",
            "xO9Gi9PywpKAg3KaeAvYeudBEuLq1x7PBvDfXyEfNJc=",
            id="post-create",
        ),
        pytest.param(
            "DELETE",
            "/identities/8%3Aacs%3Aexample_1?api-version=2023-10-01",
            b"",
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "kOXBSfKNRwZDNm+SDIHghGBy6Pu8U0zgl7wn7faYoEI=",
            id="delete-empty",
        ),
    ],
)
def test_hmac_test_vectors(method: str, target: str, body: bytes, digest: str, signature: str) -> None:
    assert content_hash(body) == digest
    headers = {
        "authorization": HMAC_PREFIX + signature,
        "x-ms-date": VECTOR_DATE,
        "host": VECTOR_HOST,
        "x-ms-content-sha256": digest,
    }

    def check(
        key: bytes = VECTOR_KEY, host: str = VECTOR_HOST, data: bytes = body, check_date: bool = False
    ) -> None:
        verify_hmac(
            key,
            method=method,
            path_and_query=target,
            headers={**headers, "host": host},
            body=data,
            scheme="https",
            check_date=check_date,
        )

    check()
    with pytest.raises(Unauthorized, match="signature"):
        check(host="127.0.0.1:8444")
    with pytest.raises(Unauthorized, match="signature"):
        check(key=b"another key")
    with pytest.raises(Unauthorized, match="content-sha256"):
        check(data=body + b" ")
    with pytest.raises(Unauthorized, match="x-ms-date"):  # the vectors' date is not "now"
        check(check_date=True)


def test_wrong_key_is_401(wire: Wire) -> None:
    response = wire.signed("POST", f"/identities?api-version={IDENTITY_VERSION}", key=b"not-the-key" * 3)
    assert_error(response, 401, "signature", code="Unauthorized")


def test_tampered_body_is_401(wire: Wire) -> None:
    good = b'{"createTokenWithScopes": ["chat"]}'
    request = wire.http.build_request("POST", f"/identities?api-version={IDENTITY_VERSION}", content=good)
    signed = hmac_headers(wire.key, "POST", request.url.raw_path.decode(), request.headers["host"], good)
    response = wire.http.post(
        f"/identities?api-version={IDENTITY_VERSION}",
        content=b'{"createTokenWithScopes": ["chat", "voip"]}',
        headers=signed,
    )
    assert_error(response, 401, "content-sha256", code="Unauthorized")


def test_bad_or_stale_date_is_401(wire: Wire) -> None:
    stale = formatdate(time.time() - 3600, usegmt=True)
    assert_error(_with_date(wire, stale), 401, "x-ms-date", code="Unauthorized")
    assert_error(_with_date(wire, "yesterday"), 401, "x-ms-date", code="Unauthorized")


def _with_date(wire: Wire, date: str) -> httpx.Response:
    """An otherwise correctly signed create-user request whose ``x-ms-date`` is ``date``."""
    request = wire.http.build_request("POST", f"/identities?api-version={IDENTITY_VERSION}", content=b"")
    target = request.url.raw_path.decode()
    host = request.headers["host"]
    signature = sign_request(wire.key, "POST", target, date, host, b"")
    request.headers.update(
        {
            "x-ms-date": date,
            "x-ms-content-sha256": content_hash(b""),
            "Authorization": HMAC_PREFIX + signature,
        }
    )
    return wire.http.send(request)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer abc", id="bearer"),
        pytest.param("HMAC-SHA256 Signature=abc", id="malformed"),
        pytest.param("HMAC-SHA256 SignedHeaders=host&Signature=abc", id="wrong-signed-headers"),
    ],
)
def test_missing_or_malformed_authorization_is_401(wire: Wire, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = wire.http.post(f"/identities?api-version={IDENTITY_VERSION}", headers=headers)
    assert_error(response, 401, code="Unauthorized")


def test_signature_over_a_decoded_path_does_not_verify(wire: Wire) -> None:
    """The emulator verifies the raw, still percent-encoded request target."""
    user_id = wire.create_user().json()["identity"]["id"]
    encoded = f"/identities/{q(user_id)}?api-version={IDENTITY_VERSION}"
    request = wire.http.build_request("DELETE", encoded)
    host = request.headers["host"]
    request.headers.update(
        hmac_headers(wire.key, "DELETE", f"/identities/{user_id}?api-version=2023-10-01", host, b"")
    )
    assert_error(wire.http.send(request), 401, "signature")


def test_identity_validation_errors_name_the_problem(wire: Wire) -> None:
    error = assert_error(
        wire.create_user(["chat"], minutes=59), 400, "ExpiresInMinutes", "59", code="ValidationError"
    )
    assert error["target"] == "ExpiresInMinutes"  # as the real service answers (recorded)
    assert_error(wire.create_user(["chat"], minutes=1441), 400, "1441")
    assert_error(wire.create_user(["email"]), 400, "scope")
    user_id = wire.create_user().json()["identity"]["id"]
    path = f"/identities/{q(user_id)}/:issueAccessToken?api-version={IDENTITY_VERSION}"
    assert_error(wire.signed("POST", path, {}), 400, "scopes")
    assert_error(wire.signed("POST", path, raw=b"{not json"), 400, "JSON")
    assert_error(wire.signed("POST", "/identities?api-version=1999-01-01"), 400, "api-version")
    assert_error(wire.signed("POST", "/identities"), 400, "api-version")
