"""Microsoft Entra ID on the Identity API (``Emulator(oauth="basic")``, ``chatnb serve --oauth basic``)
through chatnb's ``CommunicationIdentityClient``, sync and aio, with a static ``TokenCredential``; and
what the emulator refuses: a token of another audience, issuer or an expired one, plain HTTP, OAuth off."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

import chatnb.aio
from chatnb import ChatClient, CommunicationIdentityClient
from chatnb.emulator import Emulator
from chatnb.errors import AuthenticationError
from tests.support.entra import SCOPE, StaticCredential, entra_token
from tests.support.processes import Served
from tests.support.wire import Wire


@pytest.fixture(scope="module")
def entra() -> Iterator[Emulator]:
    with Emulator(oauth="basic", http_port=0) as emulator:
        yield emulator


def test_the_sync_client_works_with_a_token_credential(entra: Emulator) -> None:
    credential = StaticCredential()
    with CommunicationIdentityClient(entra.endpoint, credential) as identity:
        user = identity.create_user()
        token = identity.get_token(user, ["chat"])
        other, other_token = identity.create_user_and_token(["chat", "voip"])
        with ChatClient(entra.endpoint, token.token) as chat:
            assert chat.create_chat_thread("via Entra ID").chat_thread.topic == "via Entra ID"
        identity.revoke_tokens(other)
        identity.delete_user(other)
    assert credential.scopes and set(credential.scopes) == {(SCOPE,)}
    assert other_token.token != token.token


async def test_the_async_client_works_with_sync_and_async_token_credentials(entra: Emulator) -> None:
    class AsyncCredential(StaticCredential):
        async def get_token(self, *scopes: str, **kwargs: object):  # type: ignore[override]
            return super().get_token(*scopes)

    for credential in (StaticCredential(), AsyncCredential()):
        async with chatnb.aio.CommunicationIdentityClient(entra.endpoint, credential) as identity:
            user, token = await identity.create_user_and_token(["chat"])
            assert (await identity.get_token(user, ["chat"])).token != token.token
            await identity.delete_user(user)
        assert credential.scopes == [(SCOPE,)] * 3


def test_hmac_still_works_with_oauth_on(entra: Emulator) -> None:
    with CommunicationIdentityClient.from_connection_string(entra.connection_string) as identity:
        assert identity.create_user().raw_id.startswith("8:acs:")


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        pytest.param({"aud": "https://graph.microsoft.com"}, "audience", id="audience"),
        pytest.param({"aud": None}, "audience", id="no-audience"),
        pytest.param({"iss": "https://evil.example/tenant/"}, "issuer", id="issuer"),
        pytest.param({"iss": "https://sts.windows.net/not-a-guid/"}, "issuer", id="issuer-tenant"),
        pytest.param({"exp": 1_000_000}, "expired", id="expired"),
        pytest.param({"exp": None}, "no expiry", id="no-expiry"),
        pytest.param({"nbf": 4_000_000_000}, "not valid yet", id="not-yet"),
    ],
)
def test_tokens_entra_id_would_not_issue_for_acs_are_refused(
    entra: Emulator, claims: dict[str, object], problem: str
) -> None:
    identity = CommunicationIdentityClient(entra.endpoint, StaticCredential(entra_token(**claims)))
    with identity, pytest.raises(AuthenticationError, match=problem):
        identity.create_user()


def test_v2_issuers_and_audience_lists_are_accepted(entra: Emulator) -> None:
    token = entra_token(
        iss="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
        aud=["https://communication.azure.com/", "api://other"],
    )
    with CommunicationIdentityClient(entra.endpoint, StaticCredential(token)) as identity:
        assert identity.create_user().raw_id.startswith("8:acs:")


def test_not_a_jwt_and_plain_http_are_refused(entra: Emulator) -> None:
    identity = CommunicationIdentityClient(entra.endpoint, StaticCredential("not.a.jwt"))
    with identity, pytest.raises(AuthenticationError, match="not a JWT"):
        identity.create_user()
    assert entra.http_endpoint is not None
    plain = httpx.post(
        f"{entra.http_endpoint}identities?api-version=2023-10-01",
        headers={"Authorization": f"Bearer {entra_token()}"},
        json={},
    )
    assert plain.status_code == 401 and "HTTPS only" in plain.json()["error"]["message"]


def test_off_by_default_the_identity_api_says_how_to_turn_it_on(emulator: Emulator) -> None:
    identity = CommunicationIdentityClient(emulator.endpoint, StaticCredential())
    with identity, pytest.raises(AuthenticationError, match="--oauth basic"):
        identity.create_user()


def test_chatnb_serve_oauth_basic() -> None:
    with Served("--in-memory", "--oauth", "basic") as served:
        assert "signature NOT checked" in served.field("Entra ID")
        context = ssl.create_default_context(cafile=served.ca_cert)
        with CommunicationIdentityClient(
            served.endpoint, StaticCredential(), connection_verify=context
        ) as ids:
            assert ids.create_user().raw_id.startswith("8:acs:")
        with Wire.connect(served.connection_string, served.ca_cert) as wire:
            assert wire.new_user().token
