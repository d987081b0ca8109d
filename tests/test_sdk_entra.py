"""The official identity SDK (azure-communication-identity 1.5.0) with a ``TokenCredential``, as its
Entra ID samples use it (``CommunicationIdentityClient(endpoint, DefaultAzureCredential())``), against
``Emulator(oauth="basic")`` with a static credential: the flows of ``identity_samples.py`` (create a
user, a user and token, get a token, revoke, delete), and the Teams token exchange, which the emulator
answers 501."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest
from azure.communication.chat import ChatClient, CommunicationTokenCredential
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from chatnb.emulator import Emulator
from tests.support.entra import SCOPE, StaticCredential, entra_token

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def entra() -> Iterator[Emulator]:
    with Emulator(oauth="basic") as emulator:
        yield emulator


@pytest.fixture
def credential() -> StaticCredential:
    return StaticCredential()


@pytest.fixture
def identity(entra: Emulator, credential: StaticCredential) -> CommunicationIdentityClient:
    as_sdk_expects = cast(TokenCredential, credential)  # the same protocol; its own NamedTuple of a token
    return CommunicationIdentityClient(entra.endpoint, as_sdk_expects, connection_verify=str(entra.ca_cert))


def test_the_identity_samples_flows_with_a_token_credential(
    entra: Emulator, identity: CommunicationIdentityClient, credential: StaticCredential
) -> None:
    user = identity.create_user()  # sample: create_user
    assert user.properties["id"].startswith("8:acs:")
    created, token = identity.create_user_and_token(
        scopes=[CommunicationTokenScope.CHAT]
    )  # create_user_and_token
    issued = identity.get_token(user, scopes=[CommunicationTokenScope.CHAT])  # get_token
    identity.revoke_tokens(user)  # revoke_tokens
    identity.delete_user(created)  # delete_user
    assert credential.scopes and all(scopes == (SCOPE,) for scopes in credential.scopes)
    chat = ChatClient(
        entra.endpoint, CommunicationTokenCredential(token.token), connection_verify=str(entra.ca_cert)
    )
    with pytest.raises(ClientAuthenticationError):  # the user was deleted with its tokens
        chat.create_chat_thread("gone")
    assert issued.token.count(".") == 2
    chat.close()


def test_the_teams_token_exchange_is_501_not_implemented(identity: CommunicationIdentityClient) -> None:
    with pytest.raises(HttpResponseError) as error:  # sample: get_token_for_teams_user
        identity.get_token_for_teams_user(entra_token(), "00000000-0000-0000-0000-000000000001", "oid")
    assert error.value.status_code == 501
    assert (
        error.value.error is not None
        and error.value.error.code == "NotImplemented"
        and "Teams" in error.value.message
    )


def test_a_wrong_audience_is_refused_through_the_sdk(entra: Emulator) -> None:
    bad = StaticCredential(entra_token(aud="https://management.azure.com"))
    client = CommunicationIdentityClient(
        entra.endpoint, cast(TokenCredential, bad), connection_verify=str(entra.ca_cert)
    )
    with pytest.raises(ClientAuthenticationError, match="audience"):
        client.create_user()
